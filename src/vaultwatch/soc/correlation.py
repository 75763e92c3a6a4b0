"""Root cause and symptoms: an open alarm that something is down explains the alarms below it.

A *root* is an open alarm of severity MAJOR or worse whose alert group says
its entity is down or unreachable (`ROOT_ALERT_GROUPS`). Every open alarm on an
entity *below* a root in the topology (a strict descendant) is its
*symptom*: ``suppressed_by`` names the root and the journal says so. When
several open roots sit above one alarm, the highest (farthest up) wins: a
site being down explains its gateways being down, and all of them point at
the one alarm worth working on. A root is itself a symptom of a higher root.

`correlate` runs on every batch, on the alarms the batch changed, with a
handful of set-based statements; it returns at once when no root is open and
no alarm is suppressed (one cheap query).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.soc_models import ROOT_ALERT_GROUPS, Alarm, AlarmJournalEntry, Severity
from vaultwatch.soc.alarms import RaisedAlarm
from vaultwatch.soc.topology import MAX_DEPTH, _walk, ancestor_map

ROOT_SEVERITY = Severity.MAJOR
ACTOR = "system:correlation"

_ALARMS = cast(Table, Alarm.__table__)
_JOURNAL = cast(Table, AlarmJournalEntry.__table__)
_c = _ALARMS.c


def _is_root_condition() -> Any:
    """Open root alarms, worded as `ix_alarms_open_roots` is partial on.

    The groups are written into the statement (not bound), so the planner of
    either engine can see the condition implies the index's and read it.
    """
    groups: BindParameter[list[str]] = bindparam(
        "root_groups", list(ROOT_ALERT_GROUPS), expanding=True, literal_execute=True
    )
    return (
        _c.cleared_at.is_(None) & _c.alert_group.in_(groups) & (_c.severity >= int(ROOT_SEVERITY))
    )


def symptom_count(session: Session, alarm_id: int, *, include_cleared: bool = False) -> int:
    """How many alarms `alarm_id` explains (open ones unless `include_cleared`)."""
    stmt = select(func.count()).select_from(_ALARMS).where(_c.suppressed_by == alarm_id)
    if not include_cleared:
        stmt = stmt.where(_c.cleared_at.is_(None))
    return int(session.execute(stmt).scalar_one())


def symptoms_of(session: Session, alarm_id: int) -> list[int]:
    """The ids of the open alarms `alarm_id` explains."""
    return list(
        session.scalars(
            select(_c.id)
            .where(_c.suppressed_by == alarm_id, _c.cleared_at.is_(None))
            .order_by(_c.id)
        )
    )


def state_query() -> Any:
    """(a root is open, the first symptom's root or NULL): the one query every batch pays.

    Both halves read an index that holds only roots or only symptoms, so the
    query costs one probe each however many alarms are open.
    """
    any_root = exists().where(_is_root_condition())
    # ``> 0`` rather than IS NOT NULL: SQLite searches the index for a range, not for NOT NULL.
    # min() rather than EXISTS: both engines take a minimum from the front of the ordered
    # `ix_alarms_suppressed`, while for EXISTS PostgreSQL, with statistics a storm had
    # outdated, chose a scan of the whole table "likely to stop early" at a symptom that
    # was not there.
    first_symptom = select(func.min(_c.suppressed_by)).where(_c.suppressed_by > 0)
    return select(any_root, first_symptom.scalar_subquery())


def _state(session: Session) -> tuple[bool, bool]:
    """(a root is open, some alarm is suppressed)."""
    row = session.execute(state_query()).one()
    return bool(row[0]), row[1] is not None


def _release(session: Session, former_roots: Sequence[int]) -> list[int]:
    """The symptoms of alarms that are no longer roots (cleared or demoted): to re-evaluate."""
    if not former_roots:
        return []
    return list(session.scalars(select(_c.id).where(_c.suppressed_by.in_(former_roots))))


def _candidates(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, int | None]]:
    """id -> (entity, suppressed_by) for the open alarms among `ids`."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(_c.id, _c.entity, _c.suppressed_by).where(_c.id.in_(wanted), _c.cleared_at.is_(None))
    ).all()
    return {row.id: (row.entity, row.suppressed_by) for row in rows}


def _below_new_roots(session: Session, root_ids: Sequence[int]) -> set[int]:
    """Open alarms on entities below the roots among `root_ids`."""
    if not root_ids:
        return set()
    entities = set(
        session.scalars(select(_c.entity).where(_c.id.in_(root_ids), _is_root_condition()))
    )
    if not entities:
        return set()
    below = _walk(session, entities, False, MAX_DEPTH)
    if not below:
        return set()
    return set(
        session.scalars(select(_c.id).where(_c.entity.in_(sorted(below)), _c.cleared_at.is_(None)))
    )


def _open_roots(session: Session, entities: Iterable[str]) -> dict[str, int]:
    """entity -> its oldest open root alarm, for the entities that have one."""
    wanted = sorted(set(entities))
    if not wanted:
        return {}
    rows = session.execute(
        select(_c.entity, func.min(_c.id))
        .where(_c.entity.in_(wanted), _is_root_condition())
        .group_by(_c.entity)
    ).all()
    return {entity: int(root_id) for entity, root_id in rows}


def _journal_rows(
    session: Session, changes: dict[int, tuple[int | None, int | None]], now: datetime
) -> None:
    tenants = dict(
        session.execute(select(_c.id, _c.tenant_id).where(_c.id.in_(sorted(changes)))).all()
    )
    rows = []
    for alarm_id, (before, after) in sorted(changes.items()):
        if after is not None:
            action, text = "suppress", f"symptom of alarm {after}"
        else:
            action, text = "unsuppress", f"alarm {before} is no longer a root cause"
        rows.append(
            {
                "alarm_id": alarm_id,
                "tenant_id": tenants.get(alarm_id),
                "at": now,
                "actor": ACTOR,
                "action": action,
                "text": text,
                "details": {"root": after, "previous_root": before},
            }
        )
    session.execute(insert(_JOURNAL), rows)


def correlate(
    session: Session, raised: Sequence[RaisedAlarm], now: datetime | None = None
) -> dict[int, int | None]:
    """Suppress or release the alarms `raised` touches; returns alarm id -> new suppressor.

    Looks at: the batch's open alarms (a new symptom under an open root is
    suppressed at once), alarms below roots that opened in the batch, and
    symptoms of batch alarms that stopped being roots (cleared or demoted),
    which are released or moved to another open root.
    """
    if not raised:
        return {}
    root_open, any_suppressed = _state(session)
    if not root_open and not any_suppressed:
        return {}
    former = [r.id for r in raised if r.cleared or r.severity < ROOT_SEVERITY]
    released = _release(session, former) if any_suppressed else []
    if not root_open and not released:
        return {}
    ids = {r.id for r in raised if not r.cleared} | set(released)
    if root_open:
        ids |= _below_new_roots(session, [r.id for r in raised if r.severity >= ROOT_SEVERITY])
    candidates = _candidates(session, ids)
    if not candidates:
        return {}
    ancestry = ancestor_map(session, {entity for entity, _ in candidates.values()})
    roots = _open_roots(session, {a for found in ancestry.values() for a in found})
    changes: dict[int, tuple[int | None, int | None]] = {}
    for alarm_id, (entity, current) in candidates.items():
        above = [(depth, a) for a, depth in ancestry.get(entity, {}).items() if a in roots]
        target = roots[max(above)[1]] if above else None
        if target == alarm_id:
            target = None
        if target != current:
            changes[alarm_id] = (current, target)
    if not changes:
        return {}
    by_target: dict[int | None, list[int]] = defaultdict(list)
    for alarm_id, (_, target) in changes.items():
        by_target[target].append(alarm_id)
    for target, alarm_ids in by_target.items():
        session.execute(
            update(_ALARMS).where(_c.id.in_(sorted(alarm_ids))).values(suppressed_by=target)
        )
    _journal_rows(session, changes, now or database_now(session))
    return {alarm_id: after for alarm_id, (_, after) in changes.items()}
