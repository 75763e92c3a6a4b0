"""The alarm store: deduplicating events into alarms, and what operators do to alarms.

Deduplication is one ``INSERT ... ON CONFLICT (identifier) DO UPDATE`` per
batch, so concurrent senders of the same alarm never lose a count and never
collide (a read-then-write would race into duplicate-key errors). Within a
batch, events of one identifier are folded first, because one statement may
not touch a row twice. A repeat of a cleared alarm re-opens it; a resolution
clears it (generic clear) and never creates an alarm that was not raised.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    column,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now, session_tenant
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.soc_models import (
    Alarm,
    AlarmHistory,
    AlarmJournalEntry,
    EventType,
    Severity,
)
from vaultwatch.soc.classify import classify
from vaultwatch.soc.events import Event, check_event, clean_text
from vaultwatch.soc.runbooks import runbook_for

#: Events accepted in one batch (the HTTP batch API and the receivers stay below it).
MAX_BATCH = 5000
MAX_NOTE = 4000


class AlarmNotFoundError(CatalogError):
    """No live alarm has this id (it may have been archived)."""

    http_status = 404


@dataclass(frozen=True)
class RaisedAlarm:
    """What one identifier's events did to its alarm."""

    id: int
    identifier: str
    tally: int
    severity: Severity
    created: bool
    reopened: bool
    cleared: bool
    incident_id: int | None = None


@dataclass
class _Folded:
    """Every event of one identifier in a batch, folded into one row's change."""

    last: Event
    first_at: datetime
    last_at: datetime
    problems: int = 0
    keys: set[str] = field(default_factory=set)
    any_problem: bool = False
    problem_severity: Severity = Severity.INDETERMINATE


def _fold(events: Sequence[Event], now: datetime) -> dict[str, _Folded]:
    folded: dict[str, _Folded] = {}
    for event in events:
        at = event.occurred_at or now
        identifier = event.dedup_identifier
        item = folded.get(identifier)
        if item is None:
            item = folded[identifier] = _Folded(last=event, first_at=at, last_at=at)
        else:
            item.last = event
            item.first_at = min(item.first_at, at)
            item.last_at = max(item.last_at, at)
        if event.type == EventType.PROBLEM:
            item.any_problem = True
            item.problem_severity = event.severity
            if event.occurrence_key is None:
                item.problems += 1
            elif event.occurrence_key not in item.keys:
                item.keys.add(event.occurrence_key)
                item.problems += 1
    return folded


def _row(identifier: str, item: _Folded, now: datetime, incident_id: int | None) -> dict[str, Any]:
    event = item.last
    alarm_class, reason = classify(event.alert_group, event.summary, event.alarm_class)
    resolved = event.type == EventType.RESOLUTION
    return {
        "identifier": identifier,
        "node": event.node,
        "entity": event.entity_name,
        "alert_group": event.alert_group,
        "alert_key": event.alert_key,
        "severity": int(Severity.CLEAR if resolved else event.severity),
        "last_problem_severity": int(item.problem_severity),
        "type": event.type.value,
        "summary": event.summary,
        "alarm_class": alarm_class.value,
        "class_reason": reason,
        "source": event.source.value,
        "tenant_id": event.tenant_id,
        "agent_id": event.agent_id,
        "tally": item.problems,
        "first_occurrence": item.first_at,
        "last_occurrence": item.last_at,
        "last_occurrence_key": event.occurrence_key,
        "state_change": now,
        "cleared_at": now if resolved else None,
        "acknowledged": False,
        "runbook": event.runbook or runbook_for(event.alert_group),
        "attributes": dict(event.attributes),
        "incident_id": incident_id,
    }


#: Column types of a PostgreSQL batch's rows as `jsonb_to_recordset` reads them (default text).
_PG_TYPES: dict[str, Any] = {
    "severity": Integer,
    "last_problem_severity": Integer,
    "tally": BigInteger,
    "tenant_id": Uuid,
    "agent_id": Uuid,
    "first_occurrence": DateTime(timezone=True),
    "last_occurrence": DateTime(timezone=True),
    "state_change": DateTime(timezone=True),
    "cleared_at": DateTime(timezone=True),
    "acknowledged": Boolean,
    "attributes": JSONB,
    "incident_id": BigInteger,
}


#: The columns of a batch row (`_row`'s keys), in the order the statements name them.
_ROW_COLUMNS: tuple[str, ...] = (
    "identifier",
    "node",
    "entity",
    "alert_group",
    "alert_key",
    "severity",
    "last_problem_severity",
    "type",
    "summary",
    "alarm_class",
    "class_reason",
    "source",
    "tenant_id",
    "agent_id",
    "tally",
    "first_occurrence",
    "last_occurrence",
    "last_occurrence_key",
    "state_change",
    "cleared_at",
    "acknowledged",
    "runbook",
    "attributes",
    "incident_id",
)


def _pg_document(rows: list[dict[str, Any]]) -> str:
    """The batch as one JSON document for ``jsonb_to_recordset``.

    A multi-row VALUES statement of a thousand alarms has 28,000 parameters,
    which psycopg adapts one by one (and rewrites the long query on every
    call); one JSON document is encoded in C here and parsed by the server.
    A batch's rows share a few timestamps (the batch's `now`), so each is
    formatted once.
    """
    formatted: dict[object, str] = {}

    def plain(value: object) -> str:
        text = formatted.get(value)
        if text is None:
            # Datetimes in UTC, UUIDs as text.
            text = value.astimezone(UTC).isoformat() if isinstance(value, datetime) else str(value)
            formatted[value] = text
        return text

    return json.dumps(rows, default=plain, separators=(",", ":"))


def _pg_source() -> Any:
    """``SELECT * FROM jsonb_to_recordset(:p_rows)`` typed as the alarm columns."""
    records = func.jsonb_to_recordset(bindparam("p_rows", type_=Text).cast(JSONB)).table_valued(
        *(column(name, _PG_TYPES.get(name, Text)) for name in _ROW_COLUMNS)
    )
    derived = records.render_derived(name="batch", with_types=True)
    return select(*(derived.c[name] for name in _ROW_COLUMNS))


def _upsert_statement(dialect: str) -> Any:
    """The batch upsert of `dialect`, built once.

    The batch's time is read from the new row (every row's `state_change` is
    the batch's `now`), not bound into the UPDATE clause: a bound parameter
    there makes SQLAlchemy send an executemany one row at a time.
    """
    base: Any
    if dialect == "postgresql":
        base = postgresql.insert(Alarm).from_select(list(_ROW_COLUMNS), _pg_source())
    else:
        base = sqlite.insert(Alarm)
    new = base.excluded
    now = new.state_change
    is_problem = new.type == EventType.PROBLEM.value
    was_cleared = Alarm.cleared_at.is_not(None)
    retry = and_(
        new.last_occurrence_key.is_not(None),
        new.last_occurrence_key == Alarm.last_occurrence_key,
    )
    # A problem delivered again under the occurrence key already stored (a retry, or a
    # late re-send after its own resolution) changes nothing: no count, no re-open.
    stale = and_(is_problem, retry)
    reopen: ColumnElement[bool] = and_(is_problem, was_cleared, ~retry)
    return base.on_conflict_do_update(
        index_elements=[Alarm.identifier],
        set_={
            "tally": Alarm.tally + case((retry, 0), else_=new.tally),
            "last_occurrence": case(
                (new.last_occurrence > Alarm.last_occurrence, new.last_occurrence),
                else_=Alarm.last_occurrence,
            ),
            "last_occurrence_key": new.last_occurrence_key,
            "severity": case((stale, Alarm.severity), else_=new.severity),
            # Every upserted batch holds a problem (resolutions alone go to _clear_only).
            "last_problem_severity": case(
                (stale, Alarm.last_problem_severity), else_=new.last_problem_severity
            ),
            "type": case((stale, Alarm.type), else_=new.type),
            "summary": new.summary,
            "alert_group": case(
                (and_(is_problem, ~retry), new.alert_group), else_=Alarm.alert_group
            ),
            "node": new.node,
            "entity": new.entity,
            "alarm_class": new.alarm_class,
            "class_reason": new.class_reason,
            "state_change": case(
                (reopen, now),
                (and_(~is_problem, ~was_cleared), now),
                else_=Alarm.state_change,
            ),
            "cleared_at": case(
                (stale, Alarm.cleared_at),
                (is_problem, None),
                else_=func.coalesce(Alarm.cleared_at, now),
            ),
            "acknowledged": case((reopen, False), else_=Alarm.acknowledged),
            "acknowledged_by": case((reopen, None), else_=Alarm.acknowledged_by),
            "acknowledged_at": case((reopen, None), else_=Alarm.acknowledged_at),
            "runbook": func.coalesce(new.runbook, Alarm.runbook),
            "attributes": new.attributes,
            "tenant_id": func.coalesce(Alarm.tenant_id, new.tenant_id),
            "agent_id": func.coalesce(new.agent_id, Alarm.agent_id),
        },
    ).returning(
        Alarm.id,
        Alarm.identifier,
        Alarm.tally,
        Alarm.severity,
        Alarm.first_occurrence,
        Alarm.state_change,
        Alarm.cleared_at,
        Alarm.incident_id,
    )


#: Each dialect's upsert, built at its first batch (building one costs more than running it).
_UPSERTS: dict[str, Any] = {}


def _upsert(session: Session, rows: list[dict[str, Any]]) -> list[Any]:
    dialect = session.get_bind().dialect.name
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        stmt = _UPSERTS[dialect] = _upsert_statement(dialect)
    if dialect == "postgresql":
        params = {"p_rows": _pg_document(rows)}
        return list(session.connection().execute(stmt, params).all())
    # One executemany: SQLAlchemy's "insertmanyvalues" sends the rows in a few multi-row
    # statements compiled once (cached), and keeps RETURNING. Through Core, not the ORM:
    # the ORM's bulk insert leaves out a row's None values and splits the batch wherever
    # the next row's set of keys differs.
    return list(session.connection().execute(stmt, rows).all())


def _clear_only(
    session: Session, identifiers: dict[str, _Folded], now: datetime
) -> list[RaisedAlarm]:
    """Resolutions of alarms that may exist: clear them, never create them."""
    results: list[RaisedAlarm] = []
    for identifier, item in identifiers.items():
        row = session.execute(
            update(Alarm)
            .where(Alarm.identifier == identifier, Alarm.cleared_at.is_(None))
            .values(
                severity=int(Severity.CLEAR),
                type=EventType.RESOLUTION.value,
                cleared_at=now,
                state_change=now,
                last_occurrence_key=item.last.occurrence_key,
            )
            .returning(Alarm.id, Alarm.tally)
            .execution_options(synchronize_session=False)
        ).first()
        if row is not None:
            results.append(
                RaisedAlarm(
                    id=row.id,
                    identifier=identifier,
                    tally=row.tally,
                    severity=Severity.CLEAR,
                    created=False,
                    reopened=False,
                    cleared=True,
                )
            )
    return results


IncidentsToJoin = Callable[[Sequence[tuple[str, Event]]], Mapping[str, int]]
"""Given (identifier, last event) of the batch's problems: the open incident each new alarm joins."""


def raise_events(
    session: Session,
    events: Sequence[Event],
    *,
    now: datetime | None = None,
    incidents_to_join: IncidentsToJoin | None = None,
) -> list[RaisedAlarm]:
    """Deduplicate `events` into the alarm store inside the caller's transaction.

    Each event is validated first; one bad event refuses the whole batch, so
    a batch is stored whole or not at all. `incidents_to_join` names the
    incident a new alarm belongs to, which is then written with the alarm
    itself; an alarm already stored keeps its incident here.
    """
    if len(events) > MAX_BATCH:
        raise ValidationError(f"at most {MAX_BATCH} events in one batch")
    if not events:
        return []
    checked = [check_event(event) for event in events]
    tenant = session_tenant(session)
    if tenant is not None and any(e.tenant_id not in (None, tenant) for e in checked):
        raise ValidationError("an event names another tenant")
    now = now or database_now(session)
    folded = _fold(checked, now)
    upserts = {k: v for k, v in folded.items() if v.any_problem}
    clears = {k: v for k, v in folded.items() if not v.any_problem}
    results = _clear_only(session, clears, now) if clears else []
    if upserts:
        joins: Mapping[str, int] = {}
        if incidents_to_join is not None:
            joins = incidents_to_join(
                [(k, v.last) for k, v in upserts.items() if v.last.type == EventType.PROBLEM]
            )
        rows = [
            _row(identifier, item, now, joins.get(identifier))
            for identifier, item in sorted(upserts.items())
        ]
        for returned in _upsert(session, rows):
            item = upserts[returned.identifier]
            created = returned.first_occurrence == item.first_at and returned.tally == item.problems
            cleared = returned.cleared_at is not None
            results.append(
                RaisedAlarm(
                    id=returned.id,
                    identifier=returned.identifier,
                    tally=returned.tally,
                    severity=Severity(returned.severity),
                    created=created,
                    reopened=(not created and not cleared and returned.state_change == now),
                    cleared=cleared,
                    incident_id=returned.incident_id,
                )
            )
    return results


# -- operator actions -------------------------------------------------------------------------


def journal(
    session: Session,
    alarm: Alarm,
    actor: str,
    action: str,
    text: str = "",
    details: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> AlarmJournalEntry:
    """Record one action on an alarm in its journal (same transaction as the action)."""
    entry = AlarmJournalEntry(
        alarm_id=alarm.id,
        tenant_id=alarm.tenant_id,
        at=at or database_now(session),
        actor=actor,
        action=action,
        text=clean_text(text, MAX_NOTE) if text else "",
        details=details or {},
    )
    session.add(entry)
    return entry


def get_alarm(session: Session, alarm_id: int) -> Alarm:
    """The live alarm `alarm_id` (tenant-scoped sessions see only their own)."""
    alarm = session.get(Alarm, alarm_id)
    if alarm is None:
        raise AlarmNotFoundError(f"no alarm {alarm_id}")
    return alarm


def acknowledge(session: Session, alarm_id: int, actor: str, *, acknowledged: bool = True) -> Alarm:
    """Mark an alarm as seen and being handled (or take that back)."""
    alarm = get_alarm(session, alarm_id)
    now = database_now(session)
    alarm.acknowledged = acknowledged
    alarm.acknowledged_by = actor if acknowledged else None
    alarm.acknowledged_at = now if acknowledged else None
    journal(session, alarm, actor, "acknowledge" if acknowledged else "unacknowledge", at=now)
    return alarm


def assign(session: Session, alarm_id: int, actor: str, owner: str | None) -> Alarm:
    """Give an alarm an owner (a person or a team); None takes it back."""
    alarm = get_alarm(session, alarm_id)
    cleaned = clean_text(owner, 200) if owner else None
    alarm.owner = cleaned or None
    journal(session, alarm, actor, "assign", details={"owner": alarm.owner})
    return alarm


def add_note(session: Session, alarm_id: int, actor: str, text: str) -> AlarmJournalEntry:
    """Add a free-text note to an alarm's journal."""
    alarm = get_alarm(session, alarm_id)
    if not text or not clean_text(text, MAX_NOTE):
        raise ValidationError("a note must not be empty")
    return journal(session, alarm, actor, "note", text)


def clear(session: Session, alarm_id: int, actor: str, reason: str = "") -> Alarm:
    """Clear an alarm by hand (the problem is over though no resolution arrived)."""
    alarm = get_alarm(session, alarm_id)
    now = database_now(session)
    if alarm.cleared_at is None:
        alarm.severity = int(Severity.CLEAR)
        alarm.cleared_at = now
        alarm.state_change = now
    journal(session, alarm, actor, "clear", reason, at=now)
    return alarm


def journal_of(session: Session, alarm_id: int) -> list[AlarmJournalEntry]:
    """An alarm's journal, oldest first (live or archived)."""
    return list(
        session.scalars(
            select(AlarmJournalEntry)
            .where(AlarmJournalEntry.alarm_id == alarm_id)
            .order_by(AlarmJournalEntry.at, AlarmJournalEntry.id)
        )
    )


def housekeep(
    session: Session, *, cleared_for: timedelta, now: datetime | None = None, limit: int = 5000
) -> int:
    """Move alarms cleared for longer than `cleared_for` into the kept history; returns how many.

    The move keeps the id, so journal entries still belong to the archived alarm.
    """
    now = now or database_now(session)
    ids = list(
        session.scalars(
            select(Alarm.id)
            .where(Alarm.cleared_at.is_not(None), Alarm.cleared_at <= now - cleared_for)
            .order_by(Alarm.id)
            .limit(limit)
        )
    )
    if not ids:
        return 0
    columns = [c.name for c in Alarm.__table__.columns]
    source = select(*[Alarm.__table__.c[name] for name in columns], literal(now)).where(
        Alarm.id.in_(ids)
    )
    session.execute(
        insert(AlarmHistory).from_select([*columns, "archived_at"], source),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        delete(Alarm).where(Alarm.id.in_(ids)).execution_options(synchronize_session=False)
    )
    return len(ids)
