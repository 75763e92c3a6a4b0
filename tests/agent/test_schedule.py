"""Debouncing and scheduling, driven by a clock the test moves (no sleeps)."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

from tests.agent.conftest import FakeClock, base_doc, config_from
from vaultwatch.agent.client import Backoff
from vaultwatch.agent.config import BackupSetConfig
from vaultwatch.agent.schedule import (
    ChangedDirs,
    Debouncer,
    Scheduler,
    SetTrigger,
    next_daily,
    previous_daily,
)


def continuous(name: str = "www", **kw: float) -> BackupSetConfig:
    return BackupSetConfig(
        name,
        ["/srv"],
        "continuous",
        quiet=kw.get("quiet", 2.0),
        max_delay=kw.get("max_delay", 10.0),
        rescan=kw.get("rescan", 3600.0),
        retry_after=kw.get("retry_after", 300.0),
    )


def test_debouncer_waits_for_quiet() -> None:
    d = Debouncer(quiet=2, max_delay=10)
    assert d.deadline() is None and not d.due(0)
    d.notify(100.0)
    assert d.deadline() == 102.0
    assert not d.due(101.9)
    d.notify(101.0)  # still busy: the quiet period starts again
    assert not d.due(102.5)
    assert d.due(103.0)
    d.take()
    assert not d.pending and d.deadline() is None


def test_debouncer_never_waits_longer_than_max_delay() -> None:
    d = Debouncer(quiet=2, max_delay=10)
    t = 100.0
    d.notify(t)
    while t < 109.5:  # a file rewritten every second
        t += 1.0
        d.notify(t)
        if t < 110:
            assert not d.due(t)
    assert d.deadline() == 110.0
    assert d.due(110.0)


def test_continuous_trigger(clock: FakeClock) -> None:
    trig = SetTrigger(continuous(), clock, last_run=None)
    assert trig.due() == "rescan"  # the first pass at start-up catches changes made while down
    trig.started()
    assert trig.due() is None
    assert trig.seconds_until_due() == 3600.0
    trig.notify_change()
    assert trig.seconds_until_due() == 2.0
    clock.advance(1.0)
    trig.notify_change()
    clock.advance(1.5)
    assert trig.due() is None
    clock.advance(0.5)
    assert trig.due() == "changes"
    trig.started()
    # An event during the run starts a new window: the run itself might have missed it.
    trig.notify_change()
    clock.advance(2.0)
    assert trig.due() == "changes"
    trig.started()
    clock.advance(3600.0)
    assert trig.due() == "rescan"


def test_overflow_rescans_now(clock: FakeClock) -> None:
    trig = SetTrigger(continuous(), clock, last_run=None)
    trig.started()
    assert trig.due() is None
    trig.request_rescan()
    assert trig.due() == "rescan"


def test_failed_run_is_retried_later(clock: FakeClock) -> None:
    trig = SetTrigger(continuous(retry_after=60), clock, last_run=None)
    trig.started()
    trig.notify_change()
    trig.failed()
    clock.advance(30)
    assert trig.due() is None  # changes are pending but the retry delay wins
    clock.advance(30)
    assert trig.due() == "retry"
    trig.started()
    clock.advance(2)
    assert trig.due() is None


def test_interval_schedule(clock: FakeClock, tmp_path: Path) -> None:
    cfg = config_from(
        base_doc(tmp_path, a={"name": "a", "paths": ["/x"], "mode": "scheduled", "interval": "6h"}),
        tmp_path,
    ).backup_sets[0]
    never = SetTrigger(cfg, clock, last_run=None)
    assert never.due() == "schedule"  # never backed up: now
    recent = SetTrigger(cfg, clock, last_run=clock.now().replace(hour=10))
    assert recent.due() is None
    assert recent.seconds_until_due() == 4 * 3600
    clock.advance(4 * 3600)
    assert recent.due() == "schedule"
    recent.started()
    clock.advance(6 * 3600 - 1)
    assert recent.due() is None
    clock.advance(1)
    assert recent.due() == "schedule"


def test_daily_schedule_and_catch_up() -> None:
    clock = FakeClock(datetime(2025, 3, 10, 12, 0).astimezone())  # a Monday
    cfg = BackupSetConfig("db", ["/x"], "scheduled", at=[time(2, 30), time(14, 0)])
    # Last run yesterday evening: the 02:30 run today was missed while the agent was down.
    missed = SetTrigger(cfg, clock, last_run=datetime(2025, 3, 9, 20, 0).astimezone())
    assert missed.due() == "schedule"
    missed.started()
    assert missed.next_due_wall() == datetime(2025, 3, 10, 14, 0).astimezone()
    # Ran at 02:30 today: next is 14:00.
    fine = SetTrigger(cfg, clock, last_run=datetime(2025, 3, 10, 2, 31).astimezone())
    assert fine.due() is None
    assert fine.seconds_until_due() == 2 * 3600
    clock.advance(2 * 3600)
    assert fine.due() == "schedule"
    fine.started()
    assert fine.next_due_wall() == datetime(2025, 3, 11, 2, 30).astimezone()


def test_weekday_schedule() -> None:
    monday = datetime(2025, 3, 10, 12, 0).astimezone()
    assert next_daily(monday, [time(1, 0)], [5]) == datetime(2025, 3, 15, 1, 0).astimezone()
    assert previous_daily(monday, [time(1, 0)], [5]) == datetime(2025, 3, 8, 1, 0).astimezone()
    assert next_daily(monday, [time(12, 0)], []) == datetime(2025, 3, 11, 12, 0).astimezone()


def test_scheduler_runs_one_set_at_a_time_oldest_first(clock: FakeClock) -> None:
    a = SetTrigger(continuous("a"), clock, last_run=None)
    b = SetTrigger(continuous("b"), clock, last_run=None)
    sched = Scheduler([a, b])
    first = sched.next_due()
    assert first is not None and first.reason == "rescan"
    sched.triggers[first.name].started()
    second = sched.next_due()
    assert second is not None and second.name != first.name
    sched.triggers[second.name].started()
    assert sched.next_due() is None
    # Both change; the one whose last run is older goes first, the other waits its turn.
    clock.advance(5)
    sched.notify_change("a")
    sched.notify_change("b")
    assert sched.wake.is_set()
    clock.advance(2)
    due = sched.next_due()
    assert due is not None and due.name == first.name
    sched.notify_change("unknown")  # an event for a set that no longer exists is ignored
    assert sched.seconds_until_next() == 0.0


def test_backoff_is_exponential_with_full_jitter() -> None:
    top = Backoff(1.0, 60.0, rand=lambda: 1.0)
    assert [top.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    top.reset()
    assert top.next_delay() == 1
    bottom = Backoff(1.0, 60.0, rand=lambda: 0.0)
    assert bottom.next_delay() == 0.05  # never a busy loop
    half = Backoff(2.0, 60.0, rand=lambda: 0.5)
    assert [half.next_delay() for _ in range(3)] == [1, 2, 4]


def test_changed_dirs_are_forgotten_only_when_a_snapshot_commits() -> None:
    changes = ChangedDirs()
    changes.add(["/srv/a"])
    assert changes.take() is None  # nothing is known before the first pass: walk everything
    changes.committed()
    changes.add(["/srv/a", "/srv/b"])
    assert changes.take() == {b"/srv/a", b"/srv/b"}
    changes.add(["/srv/c"])  # arrives during the backup
    changes.failed()  # the backup failed: what it took is dirty again, with the new one
    assert changes.dirs() == {"/srv/a", "/srv/b", "/srv/c"}
    assert changes.take() == {b"/srv/a", b"/srv/b", b"/srv/c"}
    changes.add(["/srv/d"])
    changes.committed(retry=["/srv/unreadable"])
    assert changes.dirs() == {"/srv/d", "/srv/unreadable"}
    # a full pass taken and interrupted stays a full pass
    assert changes.take(full=True) is None
    changes.failed()
    assert changes.take() is None
    changes.committed()
    changes.add(["/srv/e"])
    changes.lost()  # events were lost: the next run walks everything
    assert changes.take() is None
    # a run started while the previous one's take was never settled gives it back first
    changes.committed()
    changes.add(["/srv/f"])
    assert changes.take() == {b"/srv/f"}
    assert changes.take() == {b"/srv/f"}
