"""The alarm store: deduplication, generic clear, re-open, operator actions, housekeeping."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import (
    Alarm,
    AlarmClass,
    AlarmHistory,
    EventSource,
    EventType,
    Severity,
)
from vaultwatch.soc import alarms
from vaultwatch.soc.events import Event
from vaultwatch.soc.ingest import submit_events

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OPERATOR = "user:00000000-0000-0000-0000-0000000000aa"


def _event(**changes: object) -> Event:
    fields: dict[str, object] = {
        "node": "gw1",
        "alert_group": "gateway.down",
        "summary": "gateway gw1 does not answer",
        "severity": Severity.CRITICAL,
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def _alarm(catalog: Catalog, identifier: str = "gw1|gateway.down|") -> Alarm:
    with catalog.session() as session:
        alarm = session.scalars(select(Alarm).where(Alarm.identifier == identifier)).one()
        session.expunge(alarm)
        return alarm


def test_repeats_add_to_one_alarm_and_keep_first_occurrence(catalog: Catalog) -> None:
    with catalog.session() as session:
        first = alarms.raise_events(session, [_event()], now=T0)
    with catalog.session() as session:
        again = alarms.raise_events(
            session, [_event(summary="still down"), _event()], now=T0 + timedelta(minutes=1)
        )
    assert first[0].created and not again[0].created
    assert first[0].id == again[0].id
    alarm = _alarm(catalog)
    assert alarm.tally == 3
    assert alarm.first_occurrence == T0
    assert alarm.last_occurrence == T0 + timedelta(minutes=1)
    assert alarm.severity == Severity.CRITICAL
    assert alarm.alarm_class == AlarmClass.NETWORK
    assert "gateway.down" in alarm.class_reason
    assert alarm.runbook == "docs/runbooks/gateway-down.md"


def test_a_resolution_clears_and_a_repeat_reopens_unacknowledged(catalog: Catalog) -> None:
    with catalog.session() as session:
        (raised,) = alarms.raise_events(session, [_event()], now=T0)
        alarms.acknowledge(session, raised.id, OPERATOR)
    with catalog.session() as session:
        (cleared,) = alarms.raise_events(
            session, [_event(type=EventType.RESOLUTION, summary="gw1 is back")], now=T0
        )
    assert cleared.cleared and cleared.severity == Severity.CLEAR
    alarm = _alarm(catalog)
    assert alarm.cleared_at is not None and alarm.severity == 0 and alarm.tally == 1
    assert alarm.last_problem_severity == Severity.CRITICAL
    with catalog.session() as session:
        (reopened,) = alarms.raise_events(session, [_event()], now=T0 + timedelta(hours=1))
    assert reopened.reopened and not reopened.cleared
    alarm = _alarm(catalog)
    assert alarm.cleared_at is None and not alarm.acknowledged and alarm.tally == 2


def test_a_resolution_without_its_problem_creates_nothing(catalog: Catalog) -> None:
    with catalog.session() as session:
        assert alarms.raise_events(session, [_event(type=EventType.RESOLUTION)]) == []
        assert session.scalar(select(func.count()).select_from(Alarm)) == 0


def test_a_problem_and_its_resolution_in_one_batch_end_cleared(catalog: Catalog) -> None:
    with catalog.session() as session:
        (raised,) = alarms.raise_events(
            session, [_event(), _event(), _event(severity=Severity.CLEAR)], now=T0
        )
    assert raised.cleared and raised.tally == 2


def test_a_retried_delivery_of_the_same_occurrence_is_not_counted(catalog: Catalog) -> None:
    event = _event(occurrence_key="firing:2026-12-01T12:00:00Z", source=EventSource.ALERTMANAGER)
    for _ in range(3):
        with catalog.session() as session:
            alarms.raise_events(session, [event, event])
    assert _alarm(catalog).tally == 1
    with catalog.session() as session:
        alarms.raise_events(session, [_event(occurrence_key="firing:2026-12-01T13:00:00Z")])
    assert _alarm(catalog).tally == 2


def test_one_bad_event_refuses_the_whole_batch(catalog: Catalog) -> None:
    with pytest.raises(ValidationError, match="alert_group"), catalog.session() as session:
        alarms.raise_events(session, [_event(), _event(alert_group="no spaces allowed")])
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Alarm)) == 0


def test_hostile_text_is_stored_as_plain_bounded_text(catalog: Catalog) -> None:
    hostile = "<script>alert(1)</script>\x1b[31m\nred\u202e" + "x" * 5000
    with catalog.session() as session:
        alarms.raise_events(session, [_event(summary=hostile)])
    summary = _alarm(catalog).summary
    assert summary.startswith("<script>alert(1)</script>[31m red")
    assert "\x1b" not in summary and "\u202e" not in summary and "\n" not in summary
    assert len(summary) == 1000


def test_concurrent_senders_of_one_alarm_lose_no_count(catalog: Catalog) -> None:
    senders, each = 20, 10
    errors: list[BaseException] = []

    def send() -> None:
        try:
            for _ in range(each):
                submit_events(catalog, [_event()])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _alarm(catalog).tally == senders * each


def test_operator_actions_are_journalled(catalog: Catalog) -> None:
    with catalog.session() as session:
        (raised,) = alarms.raise_events(session, [_event()])
        alarms.acknowledge(session, raised.id, OPERATOR)
        alarms.assign(session, raised.id, OPERATOR, "network team")
        alarms.add_note(session, raised.id, OPERATOR, "carrier ticket TT-123 opened")
        alarms.clear(session, raised.id, OPERATOR, "fixed by carrier")
    with catalog.session() as session:
        entries = alarms.journal_of(session, raised.id)
        alarm = alarms.get_alarm(session, raised.id)
    assert [e.action for e in entries] == ["acknowledge", "assign", "note", "clear"]
    assert entries[2].text == "carrier ticket TT-123 opened"
    assert alarm.owner == "network team" and alarm.acknowledged_by == OPERATOR
    assert alarm.cleared_at is not None


def test_housekeeping_moves_old_cleared_alarms_to_history_with_their_journal(
    catalog: Catalog,
) -> None:
    with catalog.session() as session:
        (old,) = alarms.raise_events(session, [_event()], now=T0)
        alarms.raise_events(session, [_event(node="gw2")], now=T0)
        alarms.clear(session, old.id, OPERATOR)
    with catalog.session() as session:
        moved = alarms.housekeep(session, cleared_for=timedelta(hours=1), now=T0)
    assert moved == 0
    later = datetime.now(UTC) + timedelta(hours=2)
    with catalog.session() as session:
        moved = alarms.housekeep(session, cleared_for=timedelta(hours=1), now=later)
    assert moved == 1
    with catalog.session() as session:
        live = session.scalars(select(Alarm.node)).all()
        kept = session.get(AlarmHistory, old.id)
        assert live == ["gw2"]
        assert kept is not None and kept.node == "gw1" and kept.tally == 1
        assert [e.action for e in alarms.journal_of(session, old.id)] == ["clear"]


def test_a_late_resend_of_a_resolved_occurrence_does_not_reopen(catalog: Catalog) -> None:
    firing = _event(occurrence_key="startsAt=2026-12-01T12:00:00Z")
    with catalog.session() as session:
        alarms.raise_events(session, [firing])
    with catalog.session() as session:
        alarms.raise_events(session, [replace(firing, type=EventType.RESOLUTION)])
    with catalog.session() as session:
        (again,) = alarms.raise_events(session, [firing])
    assert again.cleared and not again.reopened
    alarm = _alarm(catalog)
    assert alarm.cleared_at is not None and alarm.severity == 0 and alarm.tally == 1


def test_an_alarm_raised_and_cleared_in_one_batch_remembers_how_bad_it_was(
    catalog: Catalog,
) -> None:
    with catalog.session() as session:
        alarms.raise_events(session, [_event(severity=Severity.MINOR)])
    with catalog.session() as session:
        alarms.raise_events(session, [_event(), _event(type=EventType.RESOLUTION)])
    alarm = _alarm(catalog)
    assert alarm.cleared_at is not None and alarm.last_problem_severity == Severity.CRITICAL


def test_a_batch_of_new_alarms_is_one_insert_statement(catalog: Catalog) -> None:
    # Rows differ in which fields are empty (runbook, occurrence key, entity): the batch
    # must still travel as one statement, not one per row or per run of alike rows.
    batch = [
        _event(
            node=f"host-{i}",
            severity=Severity.CRITICAL if i % 2 else Severity.MINOR,
            runbook="https://runbooks.example/disk" if i % 3 == 0 else None,
            occurrence_key=f"k{i}" if i % 5 == 0 else None,
            entity=f"node:host-{i}" if i % 7 == 0 else None,
        )
        for i in range(1000)
    ]
    inserts: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ALARMS"):
            inserts.append(statement)

    sqlalchemy_event.listen(catalog.engine, "before_cursor_execute", note)
    try:
        with catalog.session() as session:
            raised = alarms.raise_events(session, batch, now=T0)
    finally:
        sqlalchemy_event.remove(catalog.engine, "before_cursor_execute", note)
    assert len(inserts) == 1
    assert len(raised) == 1000 and all(r.created for r in raised)
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Alarm)) == 1000
        stored = session.get(
            Alarm, next(r.id for r in raised if r.identifier.startswith("host-3|"))
        )
        assert stored is not None and stored.runbook == "https://runbooks.example/disk"
