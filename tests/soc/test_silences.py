"""Silences and maintenance windows: matching, start, expiry, reminders, cancel, audit, cron."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import AuditEntry
from vaultwatch.catalog.soc_models import Alarm, Severity, Silence
from vaultwatch.soc import silences
from vaultwatch.soc.events import Event
from vaultwatch.soc.pipeline import process_events
from vaultwatch.soc.silences import Cron, SilenceStateError

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OPERATOR = "user:00000000-0000-0000-0000-0000000000aa"


def _event(node: str = "gw1", group: str = "node.disk", **changes: object) -> Event:
    fields: dict[str, object] = {
        "node": node,
        "alert_group": group,
        "summary": f"{group} on {node}",
        "severity": Severity.MAJOR,
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def _raise(catalog: Catalog, events: list[Event], at: datetime) -> list[int]:
    with catalog.session() as session:
        return [r.id for r in process_events(session, events, now=at)]


def _muted_by(catalog: Catalog, alarm_id: int) -> int | None:
    with catalog.session() as session:
        alarm = session.get(Alarm, alarm_id)
        assert alarm is not None
        return alarm.silence_id


def _create(catalog: Catalog, matchers: list[dict[str, str]], **changes: Any) -> int:
    fields: dict[str, Any] = {
        "actor": OPERATOR,
        "comment": "disk replacement on gw1",
        "matchers": matchers,
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=1),
        "now": T0,
    }
    fields.update(changes)
    with catalog.session() as session:
        return silences.create_silence(session, **fields).id


def test_a_silence_starts_mutes_new_alarms_reminds_once_and_expires(catalog: Catalog) -> None:
    (early,) = _raise(catalog, [_event()], T0)
    (other,) = _raise(catalog, [_event(node="gw2")], T0)
    silence = _create(
        catalog,
        [{"field": "node", "op": "=", "value": "gw1"}],
        starts_at=T0 + timedelta(minutes=10),
        ends_at=T0 + timedelta(minutes=70),
    )
    assert _muted_by(catalog, early) is None  # not started yet
    with catalog.session() as session:
        assert silences.silence_tick(session, now=T0 + timedelta(minutes=10)).muted == 1
    assert _muted_by(catalog, early) == silence
    (late,) = _raise(catalog, [_event(group="node.cpu")], T0 + timedelta(minutes=20))
    assert _muted_by(catalog, late) == silence  # muted as it arrives
    assert _muted_by(catalog, other) is None
    with catalog.session() as session:
        assert silences.silence_tick(session, now=T0 + timedelta(minutes=54)).reminded == []
        assert silences.silence_tick(session, now=T0 + timedelta(minutes=56)).reminded == [silence]
    with catalog.session() as session:
        assert silences.silence_tick(session, now=T0 + timedelta(minutes=60)).reminded == []
        reminder = session.scalars(
            select(Alarm).where(Alarm.alert_group == silences.REMINDER_GROUP)
        ).one()
        assert reminder.severity == Severity.INDETERMINATE and reminder.tally == 1
        assert reminder.cleared_at is None
        assert session.get(Silence, silence).reminded_at == T0 + timedelta(minutes=56)  # type: ignore[union-attr]
    with catalog.session() as session:
        result = silences.silence_tick(session, now=T0 + timedelta(minutes=70))
        assert result.unmuted == 2
        reminder = session.scalars(
            select(Alarm).where(Alarm.alert_group == silences.REMINDER_GROUP)
        ).one()
        assert reminder.cleared_at is not None
    assert _muted_by(catalog, early) is None and _muted_by(catalog, late) is None
    (after,) = _raise(catalog, [_event(group="node.mem")], T0 + timedelta(minutes=71))
    assert _muted_by(catalog, after) is None


def test_matchers_regex_negation_and_severity(catalog: Catalog) -> None:
    _raise(
        catalog,
        [
            _event(node="gw1", group="node.disk"),
            _event(node="gw12", group="node.disk", severity=Severity.WARNING),
            _event(node="gw1", group="snmp.linkDown"),
            _event(node="xgw1", group="node.disk"),
        ],
        T0,
    )
    silence = _create(
        catalog,
        [
            {"field": "node", "op": "=~", "value": "gw[0-9]+"},
            {"field": "alert_group", "op": "!=", "value": "snmp.linkDown"},
            {"field": "severity", "op": "=", "value": "MAJOR"},
        ],
    )
    with catalog.session() as session:
        rows = session.execute(select(Alarm.identifier, Alarm.silence_id)).all()
        muted = {identifier: silence_id for identifier, silence_id in rows}
    assert muted == {
        "gw1|node.disk|": silence,
        "gw12|node.disk|": None,
        "gw1|snmp.linkDown|": None,
        "xgw1|node.disk|": None,
    }
    with catalog.session() as session:
        stored = session.get(Silence, silence)
        assert stored is not None
        assert stored.matchers[2] == {"field": "severity", "op": "=", "value": "major"}


BAD_MATCHERS: list[tuple[list[dict[str, str]], str]] = [
    ([], "1 to 20 matchers"),
    ([{"field": "colour", "op": "=", "value": "x"}], "matcher field"),
    ([{"field": "node", "op": "~", "value": "x"}], "matcher op"),
    ([{"field": "node", "op": "=~", "value": "gw[1"}], "does not compile"),
    ([{"field": "node", "op": "=~", "value": "(a+)+b"}], "repeats a repeated group"),
    ([{"field": "node", "op": "=~", "value": "x" * 300}], "at most 256"),
    ([{"field": "node", "op": "!=", "value": "gw1"}], "selects something"),
    ([{"field": "node", "op": "=~", "value": ".*"}], "selects something"),
    ([{"field": "severity", "op": "=", "value": "awful"}], "unknown severity"),
]


BAD_TIMES: list[tuple[dict[str, Any], str]] = [
    ({"ends_at": T0}, "after starts_at"),
    ({"ends_at": T0 + timedelta(days=31)}, "at most 30 days"),
    ({"starts_at": T0 - timedelta(hours=2), "ends_at": T0 - timedelta(hours=1)}, "past"),
    ({"comment": "  "}, "comment"),
    ({"starts_at": datetime(2026, 12, 1, 12, 0)}, "time zone"),
    ({"kind": "maintenance", "recurrence": "0 2 * *", "duration_seconds": 600}, "5 fields"),
    ({"kind": "maintenance", "recurrence": "0 25 * * *", "duration_seconds": 600}, "0-23"),
    ({"kind": "maintenance", "recurrence": "0 2 * * *"}, "both"),
    ({"recurrence": "0 2 * * *", "duration_seconds": 600}, "only a maintenance"),
    ({"kind": "maintenance", "recurrence": "0 2 * * *", "duration_seconds": 90000}, "24 hours"),
]


def test_bad_silences_are_refused_and_nothing_is_stored(catalog: Catalog) -> None:
    for matchers, message in BAD_MATCHERS:
        with pytest.raises(ValidationError, match=message):
            _create(catalog, matchers)
    for changes, message in BAD_TIMES:
        with pytest.raises(ValidationError, match=message):
            _create(catalog, [{"field": "node", "op": "=", "value": "gw1"}], **changes)
    with catalog.session() as session:
        assert session.scalars(select(Silence)).all() == []
        assert session.scalars(select(AuditEntry)).all() == []


def test_a_recurring_maintenance_window_mutes_only_during_its_occurrences(
    catalog: Catalog,
) -> None:
    start = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    window = _create(
        catalog,
        [{"field": "alert_group", "op": "=~", "value": "node\\..*"}],
        kind="maintenance",
        recurrence="0 2 * * *",
        duration_seconds=3600,
        starts_at=start,
        ends_at=start + timedelta(days=90),
        now=start,
    )
    (outside,) = _raise(catalog, [_event(node="gw3")], start + timedelta(hours=1))
    assert _muted_by(catalog, outside) is None
    (inside,) = _raise(catalog, [_event(node="gw4")], start + timedelta(hours=2, minutes=30))
    assert _muted_by(catalog, inside) == window
    with catalog.session() as session:
        silences.silence_tick(session, now=start + timedelta(hours=2, minutes=31))
    assert _muted_by(catalog, outside) == window  # the occurrence started: open alarms too
    with catalog.session() as session:
        assert (
            silences.silence_tick(session, now=start + timedelta(hours=3, minutes=1)).unmuted == 2
        )
        stored = session.get(Silence, window)
        assert stored is not None
        assert silences.state_of(stored, start + timedelta(hours=3, minutes=1)) == "pending"
        assert silences.state_of(stored, start + timedelta(days=1, hours=2)) == "active"
    assert _muted_by(catalog, inside) is None


def test_cancel_unmutes_and_both_actions_are_audited(catalog: Catalog) -> None:
    (alarm,) = _raise(catalog, [_event()], T0)
    first = _create(catalog, [{"field": "node", "op": "=", "value": "gw1"}])
    second = _create(catalog, [{"field": "alert_group", "op": "=", "value": "node.disk"}])
    assert _muted_by(catalog, alarm) == first
    with catalog.session() as session:
        silences.cancel_silence(session, first, OPERATOR, now=T0 + timedelta(minutes=5))
    assert _muted_by(catalog, alarm) == second  # still muted by the other silence
    with catalog.session() as session:
        silences.cancel_silence(session, second, OPERATOR, now=T0 + timedelta(minutes=6))
        with pytest.raises(SilenceStateError):
            silences.cancel_silence(session, second, OPERATOR, now=T0 + timedelta(minutes=7))
    assert _muted_by(catalog, alarm) is None
    with catalog.session() as session:
        audit = session.execute(
            select(AuditEntry.action, AuditEntry.actor, AuditEntry.target).order_by(AuditEntry.id)
        ).all()
        listed = silences.list_silences(session, now=T0 + timedelta(minutes=8))
    assert [tuple(a) for a in audit if a.action.startswith("silence.")] == [
        ("silence.create", OPERATOR, f"silence:{first}"),
        ("silence.create", OPERATOR, f"silence:{second}"),
        ("silence.cancel", OPERATOR, f"silence:{first}"),
        ("silence.cancel", OPERATOR, f"silence:{second}"),
    ]
    assert listed == []


def test_cron_fields_ranges_steps_and_day_rules() -> None:
    every_15 = Cron.parse("*/15 9-17 * * 1-5")
    assert every_15.matches(datetime(2026, 12, 1, 9, 45, tzinfo=UTC))  # a Tuesday
    assert not every_15.matches(datetime(2026, 12, 1, 9, 46, tzinfo=UTC))
    assert not every_15.matches(datetime(2026, 12, 6, 9, 45, tzinfo=UTC))  # Sunday
    either = Cron.parse("0 0 1 * 0")  # the 1st, or any Sunday
    assert either.matches(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    assert either.matches(datetime(2026, 12, 6, 0, 0, tzinfo=UTC))
    assert not either.matches(datetime(2026, 12, 2, 0, 0, tzinfo=UTC))
    assert Cron.parse("0 0 * * 7").matches(datetime(2026, 12, 6, 0, 0, tzinfo=UTC))
    assert Cron.parse("30 2 * * *").last_fire(
        datetime(2026, 12, 1, 3, 0, tzinfo=UTC), timedelta(hours=1)
    ) == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    for bad in ("* * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *", "60 * * * *"):
        with pytest.raises(ValidationError):
            Cron.parse(bad)
