"""The alarm change feed: what changed since a mark, late commits, big batches, clocks ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from tests.catalog.conftest import add_tenant
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.soc_models import Alarm, Severity
from vaultwatch.soc import alarms
from vaultwatch.soc.alarm_feed import OVERLAP, AlarmFeed, alarm_changes, parse_mark
from vaultwatch.soc.alarm_list import AlarmFilter
from vaultwatch.soc.events import Event

ACTOR = "user:00000000-0000-0000-0000-000000000001"


def _raise(catalog: Catalog, *events: Event, now: datetime | None = None) -> list[int]:
    with catalog.session() as session:
        return [r.id for r in alarms.raise_events(session, list(events), now=now)]


def _now(catalog: Catalog) -> datetime:
    with catalog.session() as session:
        return database_now(session)


def _event(node: str = "gw1", severity: Severity = Severity.CRITICAL, **kw: Any) -> Event:
    return Event(
        node=node, alert_group="gateway.down", summary=f"{node} down", severity=severity, **kw
    )


def test_new_repeated_and_acted_on_alarms_are_changes(catalog: Catalog) -> None:
    (old,) = _raise(catalog, _event("gw0"))
    mark = _now(catalog)
    (new,) = _raise(catalog, _event("gw1"))
    with catalog.session() as session:
        assert [c.alarm.id for c in alarm_changes(session, mark)] == [new]
    mark = _now(catalog)
    with catalog.session() as session:
        assert alarm_changes(session, mark) == []
        alarms.acknowledge(session, old, ACTOR)  # only its journal says it changed
    _raise(catalog, _event("gw1"))  # a repeat
    with catalog.session() as session:
        changes = alarm_changes(session, mark)
    assert {c.alarm.id for c in changes} == {old, new}
    assert all(c.changed_at > mark for c in changes)
    assert [c.changed_at for c in changes] == sorted(c.changed_at for c in changes)


def test_each_change_says_whether_it_matches_the_filter(catalog: Catalog) -> None:
    mark = _now(catalog)
    critical, minor = _raise(catalog, _event("gw1"), _event("db1", Severity.MINOR))
    with catalog.session() as session:
        alarms.acknowledge(session, critical, ACTOR)
        flt = AlarmFilter(acknowledged=False)
        matches = {c.alarm.id: c.matches for c in alarm_changes(session, mark, flt)}
    assert matches == {critical: False, minor: True}


def test_the_feed_sends_each_state_once_and_again_when_it_changes(catalog: Catalog) -> None:
    feed = AlarmFeed(_now(catalog))
    (alarm_id,) = _raise(catalog, _event())
    with catalog.session() as session:
        assert [c.alarm.id for c in feed.poll(session)] == [alarm_id]
        assert list(feed.poll(session)) == []  # inside the overlap window, already sent
        alarms.assign(session, alarm_id, ACTOR, "noc")
    with catalog.session() as session:
        (change,) = feed.poll(session)
        assert change.alarm.owner == "noc"


def test_a_transaction_committing_late_with_an_earlier_time_is_not_missed(catalog: Catalog) -> None:
    start = _now(catalog)
    feed = AlarmFeed(start)
    _raise(catalog, _event("gw1"))
    with catalog.session() as session:
        feed.poll(session)
    assert feed.mark > start
    # A sender whose transaction began before that poll commits only now.
    (late,) = _raise(catalog, _event("gw2"), now=feed.mark - timedelta(seconds=2))
    with catalog.session() as session:
        assert [c.alarm.id for c in feed.poll(session)] == [late]


def test_a_batch_bigger_than_a_poll_arrives_whole_over_several_polls(catalog: Catalog) -> None:
    feed = AlarmFeed(_now(catalog), limit=100)
    ids = _raise(catalog, *[_event(f"gw{i}") for i in range(250)])  # one time for all 250
    seen: list[int] = []
    with catalog.session() as session:
        for _ in range(5):
            seen += [c.alarm.id for c in feed.poll(session)]
    assert sorted(seen) == sorted(ids)


def test_a_feed_says_when_it_is_behind_and_starts_again_from_a_fresh_page(
    catalog: Catalog,
) -> None:
    burst_at = _now(catalog) - 2 * OVERLAP
    feed = AlarmFeed(burst_at - timedelta(seconds=1), limit=100)
    _raise(catalog, *[_event(f"gw{i}") for i in range(250)], now=burst_at)
    with catalog.session() as session:
        assert len(feed.poll(session)) == 100
        assert feed.behind
        now = database_now(session)
    feed.skip_to(now)
    assert not feed.behind and feed.mark == now and feed.sent == {}
    # Changes after the fresh page arrive; the burst before it is not sent again.
    (later,) = _raise(catalog, _event("gw-late"))
    with catalog.session() as session:
        changes = feed.poll(session)
        assert [c.alarm.id for c in changes] == [later]
        assert not feed.behind


def test_a_sender_clock_ahead_does_not_push_the_mark_into_the_future(catalog: Catalog) -> None:
    feed = AlarmFeed(_now(catalog))
    ahead = datetime.now(UTC) + timedelta(hours=1)
    _raise(catalog, _event("gw1", occurred_at=ahead))
    with catalog.session() as session:
        feed.poll(session)
        assert feed.mark <= database_now(session)
    (later,) = _raise(catalog, _event("gw2"))
    with catalog.session() as session:
        assert later in [c.alarm.id for c in feed.poll(session)]


def test_a_tenant_sees_only_its_own_changes(catalog: Catalog) -> None:
    acme, globex = add_tenant(catalog, "Acme"), add_tenant(catalog, "Globex")
    mark = _now(catalog)
    mine, _theirs = _raise(
        catalog, _event("a1", tenant_id=acme.id), _event("g1", tenant_id=globex.id)
    )
    with catalog.session(tenant_id=acme.id) as session:
        assert [c.alarm.id for c in alarm_changes(session, mark)] == [mine]
    with catalog.session() as session:
        assert len(session.scalars(select(Alarm)).all()) == 2


def test_a_mark_comes_back_from_the_browser_as_text() -> None:
    default = datetime(2026, 1, 1, tzinfo=UTC)
    mark = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
    assert parse_mark(mark.isoformat(), default) == mark
    assert parse_mark("2026-05-04T03:02:01", default).tzinfo is not None
    assert parse_mark("garbage", default) == default
    assert parse_mark(None, default) == default
