"""The ransomware guard: a snapshot that looks like mass encryption holds the history it threatens.

Run on every snapshot an agent reports. Encryption by ransomware rewrites
many files at once, and what it writes neither deduplicates nor compresses.
Compared with the backup set's own recent history (the median of the last
`HISTORY` snapshots, at least `MIN_HISTORY` of them), a snapshot is suspect when

- the share of files new or changed is above `CHANGED_SHARE` while it
  normally stays below `NORMAL_SHARE`, or
- the share of bytes that are new content (``bytes_added / bytes_total``)
  jumps the same way (one large file, such as a database, encrypted), or
- content that used to compress stops compressing: ``bytes_stored`` (what
  the new content took in packs, compressed and encrypted, as the agent
  reports it) against ``bytes_added``; snapshots from agents too old to
  report it are left out of this rule.

A suspect snapshot raises a CRITICAL ``ransomware.suspected`` alarm for the
agent and backup set, and a `SnapshotHold` keeps every earlier snapshot of the
set from retention until an operator releases the hold (audited).
"""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from vaultwatch.catalog.audit import record, system_actor
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import CatalogError
from vaultwatch.catalog.models import BackupSet, Snapshot
from vaultwatch.catalog.soc_models import EventSource, Severity, SnapshotHold
from vaultwatch.soc.events import Event
from vaultwatch.soc.pipeline import process_events

if TYPE_CHECKING:
    from vaultwatch.soc.duties import Duty, DutyContext

HISTORY = 10
MIN_HISTORY = 3
CHANGED_SHARE = 0.5
NORMAL_SHARE = 0.1
#: Stored/added above this means the new content did not compress.
INCOMPRESSIBLE = 0.95
#: ... while the set's median stayed below this.
NORMAL_COMPRESSION = 0.8
#: Too little new content to judge compression by.
MIN_BYTES_FOR_COMPRESSION = 1 << 20
ALERT_GROUP = "ransomware.suspected"
ACTOR = system_actor("ransomware-guard")


class HoldNotFoundError(CatalogError):
    """No snapshot hold has this id."""

    http_status = 404


class HoldReleasedError(CatalogError):
    """The hold was already released."""

    http_status = 409


@dataclass(frozen=True)
class Verdict:
    """Why a snapshot looks like ransomware, and what the guard did about it."""

    reasons: list[str]
    alarm_id: int
    hold_id: int


def _changed_share(snap: Any) -> float | None:
    if not snap.files_total:
        return None
    return float(min(1.0, (snap.files_new + snap.files_changed) / snap.files_total))


def _bytes_share(snap: Any) -> float | None:
    if not snap.bytes_total:
        return None
    return float(min(1.0, snap.bytes_added / snap.bytes_total))


def _compression(snap: Any) -> float | None:
    stored = snap.bytes_stored
    if stored is None or snap.bytes_added < MIN_BYTES_FOR_COMPRESSION:
        return None
    return float(stored / snap.bytes_added)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) >= MIN_HISTORY else None


def assess(snapshot: Any, history: list[Any]) -> list[str]:
    """The reasons `snapshot` looks like mass encryption next to `history` (empty: it does not)."""
    reasons = []
    for label, measure in (("files new or changed", _changed_share), ("bytes new", _bytes_share)):
        now, usual = measure(snapshot), _median([measure(s) for s in history])
        if now is not None and usual is not None and now > CHANGED_SHARE and usual < NORMAL_SHARE:
            reasons.append(f"{now:.0%} {label} (usually {usual:.0%})")
    ratio, usual = _compression(snapshot), _median([_compression(s) for s in history])
    if (
        ratio is not None
        and usual is not None
        and ratio > INCOMPRESSIBLE > NORMAL_COMPRESSION > usual
    ):
        reasons.append(f"new content stopped compressing ({ratio:.0%} stored, usually {usual:.0%})")
    return reasons


def _history(session: Session, snapshot: Snapshot) -> list[Snapshot]:
    return list(
        session.scalars(
            select(Snapshot)
            .where(
                Snapshot.backup_set_id == snapshot.backup_set_id,
                Snapshot.id != snapshot.id,
                Snapshot.finished_at < snapshot.finished_at,
            )
            .order_by(Snapshot.finished_at.desc())
            .limit(HISTORY)
        )
    )


def guard_snapshot(
    session: Session, snapshot: Snapshot, *, now: datetime | None = None
) -> Verdict | None:
    """Judge one recorded snapshot; when suspect, raise the alarm and hold the set's history.

    Idempotent: the same snapshot reported again adds no second hold and no
    second count to the alarm.
    """
    if snapshot.backup_set_id is None:
        return None
    reasons = assess(snapshot, _history(session, snapshot))
    if not reasons:
        return None
    now = now or database_now(session)
    set_name = session.scalar(select(BackupSet.name).where(BackupSet.id == snapshot.backup_set_id))
    event = Event(
        node=snapshot.hostname or f"agent {snapshot.agent_id}",
        alert_group=ALERT_GROUP,
        alert_key=str(snapshot.backup_set_id),
        summary=f"backup set {set_name or snapshot.backup_set_id}: possible ransomware: "
        + "; ".join(reasons),
        severity=Severity.CRITICAL,
        source=EventSource.INTERNAL,
        entity=f"agent:{snapshot.agent_id}" if snapshot.agent_id else None,
        tenant_id=snapshot.tenant_id,
        agent_id=snapshot.agent_id,
        occurrence_key=f"snapshot:{snapshot.id}",
        attributes={"snapshot": str(snapshot.id), "vault_snapshot": snapshot.vault_snapshot_id},
    )
    (raised,) = process_events(session, [event], now=now)
    hold = session.scalar(
        select(SnapshotHold).where(
            SnapshotHold.backup_set_id == snapshot.backup_set_id,
            SnapshotHold.held_before == snapshot.finished_at,
            SnapshotHold.released_at.is_(None),
        )
    )
    if hold is None:
        hold = SnapshotHold(
            tenant_id=snapshot.tenant_id,
            backup_set_id=snapshot.backup_set_id,
            reason=f"ransomware guard: {'; '.join(reasons)}"[:500],
            held_before=snapshot.finished_at,
            alarm_id=raised.id,
            created_at=now,
            created_by=ACTOR,
        )
        session.add(hold)
        session.flush()
        record(
            session,
            ACTOR,
            "snapshot_hold.create",
            snapshot.tenant_id,
            f"backup_set:{snapshot.backup_set_id}",
            {"hold_id": hold.id, "alarm_id": raised.id, "reasons": reasons},
            at=now,
        )
    return Verdict(reasons=reasons, alarm_id=raised.id, hold_id=hold.id)


def release_hold(
    session: Session, hold_id: int, actor: str, *, now: datetime | None = None
) -> SnapshotHold:
    """An operator lets retention judge the held snapshots again (audited)."""
    hold = session.get(SnapshotHold, hold_id)
    if hold is None:
        raise HoldNotFoundError(f"no snapshot hold {hold_id}")
    if hold.released_at is not None:
        raise HoldReleasedError(f"snapshot hold {hold_id} was released by {hold.released_by}")
    now = now or database_now(session)
    hold.released_at = now
    hold.released_by = actor
    session.flush()
    record(
        session,
        actor,
        "snapshot_hold.release",
        hold.tenant_id,
        f"backup_set:{hold.backup_set_id}",
        {"hold_id": hold.id, "alarm_id": hold.alarm_id},
        at=now,
    )
    return hold


def open_holds(session: Session, backup_set_id: uuid.UUID) -> list[SnapshotHold]:
    """The unreleased holds on a set, including tenant-wide ones (no set)."""
    tenant = select(BackupSet.tenant_id).where(BackupSet.id == backup_set_id).scalar_subquery()
    return list(
        session.scalars(
            select(SnapshotHold).where(
                SnapshotHold.released_at.is_(None),
                or_(
                    SnapshotHold.backup_set_id == backup_set_id,
                    (SnapshotHold.backup_set_id.is_(None)) & (SnapshotHold.tenant_id == tenant),
                ),
            )
        )
    )


def held_snapshot_ids(session: Session, backup_set_id: uuid.UUID) -> set[uuid.UUID]:
    """The set's snapshots retention must keep: those finished before an open hold's moment."""
    holds = open_holds(session, backup_set_id)
    if not holds:
        return set()
    until = max(h.held_before for h in holds)
    return set(
        session.scalars(
            select(Snapshot.id).where(
                Snapshot.backup_set_id == backup_set_id, Snapshot.finished_at < until
            )
        )
    )


#: How far back the guard duty looks for snapshots it has not judged yet (judging is idempotent).
GUARD_LOOKBACK = timedelta(hours=1)


def guard_recent(session: Session, since: datetime) -> int:
    """Judge every snapshot recorded since `since`; returns how many were suspect."""
    suspects = 0
    recent = session.scalars(
        select(Snapshot)
        .where(Snapshot.finished_at >= since, Snapshot.backup_set_id.is_not(None))
        .order_by(Snapshot.finished_at)
    )
    for snapshot in recent:
        if guard_snapshot(session, snapshot) is not None:
            suspects += 1
    return suspects


def guard_duties() -> list[Duty]:
    """The leased duty that judges new snapshots as agents report them.

    It runs in the operations center rather than on the gateway's report
    path, so the gateway knows nothing of the SOC and a slow judgement never
    delays an agent. Each pass looks back `GUARD_LOOKBACK` past the last pass.
    """
    from vaultwatch.soc.duties import Duty as DutyType  # the runner imports the pipeline

    last: dict[str, datetime] = {}

    def run(context: DutyContext) -> object:
        with context.session() as session:
            now = context.now(session)
            since = last.get("pass", now - GUARD_LOOKBACK) - timedelta(minutes=5)
            found = guard_recent(session, since)
        last["pass"] = now
        return found

    return [DutyType("ransomware.guard", 30.0, run)]
