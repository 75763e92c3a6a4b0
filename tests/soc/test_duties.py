"""The duty runner: one holder runs the duties, standbys take over, late writes are fenced."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.leases import get_lease
from vaultwatch.catalog.soc_models import Alarm, Severity
from vaultwatch.soc.clock import ManualClock
from vaultwatch.soc.duties import Duty, DutyContext, DutyRunner, LeaseLostError
from vaultwatch.soc.events import Event
from vaultwatch.soc.pipeline import process_events

TTL = timedelta(seconds=2)


def _recorder(seen: list[str]) -> Callable[[DutyContext], object]:
    def run(context: DutyContext) -> object:
        seen.append(context.holder)
        return None

    return run


def _runner(
    catalog: Catalog,
    holder: str,
    duties: list[Duty],
    clock: ManualClock | None = None,
    ttl: timedelta = TTL,
) -> DutyRunner:
    return DutyRunner(catalog, duties, node_name=holder, holder=holder, ttl=ttl, clock=clock)


def _wait_for(condition: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
    return time.monotonic() - started


def _alarm(catalog: Catalog, identifier: str) -> Alarm | None:
    with catalog.session() as session:
        alarm = session.scalars(select(Alarm).where(Alarm.identifier == identifier)).first()
        if alarm is not None:
            session.expunge(alarm)
        return alarm


def test_only_one_of_two_runners_runs_the_leased_duties(catalog: Catalog) -> None:
    clock = ManualClock()
    seen: list[str] = []
    everywhere: list[str] = []

    def duties() -> list[Duty]:
        return [
            Duty("count", 1.0, _recorder(seen)),
            Duty("local", 1.0, _recorder(everywhere), leased=False),
        ]

    a = _runner(catalog, "node-a", duties(), clock)
    b = _runner(catalog, "node-b", duties(), clock)
    for _ in range(6):
        a.tick()
        b.tick()
        clock.advance(0.7)  # renewals every ~third of the TTL keep node-a the holder
    assert a.is_leader and not b.is_leader
    assert seen and set(seen) == {"node-a"}
    assert a.runs("count") == len(seen) == 3  # at 0, 1.4 and 2.8 s: every second at most
    assert set(everywhere) == {"node-a", "node-b"}  # unleased duties run on every node


def test_standby_takes_over_when_the_holder_dies_and_the_old_holder_is_fenced(
    catalog: Catalog,
) -> None:
    clock = ManualClock()
    seen: list[str] = []
    contexts: list[DutyContext] = []

    def keep_context(context: DutyContext) -> None:
        contexts.append(context)
        seen.append(context.holder)

    a = _runner(catalog, "node-a", [Duty("work", 0.5, keep_context)], clock)
    b = _runner(catalog, "node-b", [Duty("work", 0.5, keep_context)], clock)
    a.tick()
    b.tick()
    assert a.epoch == 1 and b.epoch is None
    old = contexts[-1]
    clock.advance(1.5)  # node-a now stops renewing: it died (or froze)
    b.tick()
    assert not b.is_leader, "the lease has not expired yet"
    clock.advance(0.6)
    b.tick()
    assert b.is_leader and b.epoch == 2
    assert seen[-1] == "node-b"
    with catalog.session() as session:
        lease = get_lease(session, "soc-duties")
    assert lease is not None and lease.holder == "node-b" and lease.epoch == 2

    # node-a wakes up and writes with its old epoch: refused, nothing stored.
    event = Event(node="x", alert_group="test.fence", summary="late write")
    with pytest.raises(LeaseLostError), old.session() as session:
        process_events(session, [event], now=clock.now())
    assert _alarm(catalog, "x|test.fence|") is None

    # Its next round: the renewal is refused, so it runs nothing and stays a standby.
    runs_before = a.runs("work")
    a.tick()
    assert not a.is_leader and a.runs("work") == runs_before


def test_expired_lease_stops_duties_even_before_the_renewal_answers(catalog: Catalog) -> None:
    clock, seen = ManualClock(), []  # type: ignore[var-annotated]
    a = _runner(catalog, "node-a", [Duty("work", 0.1, _recorder(seen))], clock)
    a.tick()
    assert a.is_leader
    clock.advance(2.5)  # no renewal for longer than the TTL (the lease thread was stuck)
    assert not a.is_leader
    count = len(seen)
    a.run_due()
    assert len(seen) == count


def test_a_failing_duty_raises_duty_failed_and_the_runner_goes_on(catalog: Catalog) -> None:
    clock, seen, broken = ManualClock(), [], [True]  # type: ignore[var-annotated]

    def flaky(_context: DutyContext) -> None:
        if broken[0]:
            raise RuntimeError("disk on fire")

    a = _runner(
        catalog, "node-a", [Duty("flaky", 1.0, flaky), Duty("ok", 1.0, _recorder(seen))], clock
    )
    a.tick()
    alarm = _alarm(catalog, "duty.failed|flaky")
    assert alarm is not None and alarm.cleared_at is None
    assert alarm.severity == Severity.MAJOR and "disk on fire" in alarm.summary
    assert seen == ["node-a"]  # the other duty still ran
    clock.advance(1.1)
    a.tick()
    again = _alarm(catalog, "duty.failed|flaky")
    assert again is not None and again.tally == 1  # the same failure again is not a new one
    assert len(seen) == 2
    broken[0] = False
    clock.advance(1.1)
    a.tick()
    cleared = _alarm(catalog, "duty.failed|flaky")
    assert cleared is not None and cleared.cleared_at is not None


def test_duties_are_checked() -> None:
    with pytest.raises(ValidationError):
        Duty("", 1.0, lambda _c: None)
    with pytest.raises(ValidationError):
        Duty("x", 0, lambda _c: None)


def _threaded(catalog: Catalog, holder: str, seen: list[str], ttl: timedelta) -> DutyRunner:
    return _runner(catalog, holder, [Duty("work", 0.05, _recorder(seen))], ttl=ttl)


def test_a_clean_stop_releases_the_lease_and_the_standby_takes_over_at_once(
    catalog: Catalog,
) -> None:
    ttl = timedelta(seconds=30)
    seen: list[str] = []
    a, b = _threaded(catalog, "node-a", seen, ttl), _threaded(catalog, "node-b", seen, ttl)
    a.start()
    try:
        _wait_for(lambda: a.is_leader, 5)
        b.start()
        time.sleep(0.3)
        assert not b.is_leader
        a.stop()
        took = _wait_for(lambda: b.is_leader, 15)
        # the lease had at least 20 s left: only the release explains a takeover before that
        assert took < 15, f"takeover took {took:.2f}s"
        _wait_for(lambda: "node-b" in seen, 2)
        assert b.epoch == 2
    finally:
        a.stop()
        b.stop()


def test_a_killed_holder_is_replaced_within_the_ttl(catalog: Catalog) -> None:
    ttl = timedelta(seconds=1.5)
    seen: list[str] = []
    lock = threading.Lock()
    a, b = _threaded(catalog, "node-a", seen, ttl), _threaded(catalog, "node-b", seen, ttl)
    a.start()
    try:
        _wait_for(lambda: a.is_leader, 5)
        b.start()
        time.sleep(0.2)
        a.stop(release=False)  # no release: the standby must wait for expiry
        with lock:
            a_runs = a.runs("work")
        took = _wait_for(lambda: b.is_leader, 5)
        assert took <= ttl.total_seconds() + 0.6, f"takeover took {took:.2f}s"
        _wait_for(lambda: b.runs("work") > 0, 2)
        assert a.runs("work") == a_runs  # the dead holder ran nothing more
    finally:
        a.stop()
        b.stop()
