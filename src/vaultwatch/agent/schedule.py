"""When each backup set runs: debounced change events, periodic rescans and schedules.

Everything here takes the time as an argument (or from an injected Clock), so
the timing rules are tested exactly and instantly, without sleeps.

- A continuous set runs once its change events have been quiet for ``quiet``
  seconds, but never later than ``max_delay`` after the first unsaved change
  (a file rewritten every second must still be saved), and at least every
  ``rescan`` seconds even without events (inotify can miss or drop events).
- A scheduled set runs every ``interval`` or at daily times of day (optionally
  on some weekdays only); a run missed while the agent was down is made up at
  the next start.
- A set whose last run failed is retried after ``retry_after``.

A continuous set also remembers which directories its events touched
(:class:`ChangedDirs`), so a change-driven backup lists only those.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Protocol

from vaultwatch.agent.config import BackupSetConfig


class Clock(Protocol):
    """Monotonic seconds for delays, aware wall time for schedules."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps."""
        ...

    def now(self) -> datetime:
        """The local wall time, timezone-aware."""
        ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()

    def now(self) -> datetime:
        """Local time with its UTC offset."""
        return datetime.now().astimezone()


class Debouncer:
    """Collapses a burst of change events into one run.

    Thread-safe: watchdog's thread calls :meth:`notify`, the scheduler the rest.
    """

    def __init__(self, quiet: float, max_delay: float) -> None:
        self.quiet = quiet
        self.max_delay = max_delay
        self._first: float | None = None
        self._last: float | None = None
        self._lock = threading.Lock()

    def notify(self, now: float) -> None:
        """A change was seen at ``now``."""
        with self._lock:
            if self._first is None:
                self._first = now
            self._last = now

    @property
    def pending(self) -> bool:
        """Whether changes wait to be backed up."""
        with self._lock:
            return self._first is not None

    def deadline(self) -> float | None:
        """When the pending changes are due: quiet enough, or waited long enough."""
        with self._lock:
            if self._first is None or self._last is None:
                return None
            return min(self._last + self.quiet, self._first + self.max_delay)

    def due(self, now: float) -> bool:
        """Whether a run should start now."""
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def take(self) -> None:
        """A run starts: it covers every change seen so far, later ones start a new window."""
        with self._lock:
            self._first = self._last = None


class ChangedDirs:
    """Directories with events since the last committed snapshot, or 'walk everything'.

    A run takes the current set and starts a new one for the events that
    arrive meanwhile; only a committed snapshot forgets what it took, a
    failed or interrupted run gives it back. Nothing is known at start-up
    (events before it were not seen), so the first run walks everything.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirs: set[str] = set()
        self._full = True
        self._taken: set[str] | None = None
        self._taking = False

    def add(self, dirs: Iterable[str]) -> None:
        """Events touched these directories."""
        with self._lock:
            self._dirs.update(dirs)

    def lost(self) -> None:
        """Events were lost (queue overflow): the next run walks everything."""
        with self._lock:
            self._full = True

    @property
    def pending(self) -> int:
        """How many directories wait for a backup."""
        with self._lock:
            return len(self._dirs)

    def dirs(self) -> set[str]:
        """The directories that wait for a backup (a copy)."""
        with self._lock:
            return set(self._dirs)

    def take(self, *, full: bool = False) -> set[bytes] | None:
        """What a starting run rescans: the dirty directories, or None for a full walk."""
        with self._lock:
            if self._taking:
                self._give_back()
            taken = None if (full or self._full) else self._dirs
            self._taken, self._taking = taken, True
            self._dirs, self._full = set(), False
        return None if taken is None else {os.fsencode(d) for d in taken}

    def committed(self, retry: Iterable[str] = ()) -> None:
        """The run's snapshot is committed; ``retry`` are directories to list again next time."""
        with self._lock:
            self._taken, self._taking = None, False
            self._dirs.update(retry)

    def failed(self) -> None:
        """The run ended without a snapshot: what it took is dirty again."""
        with self._lock:
            if self._taking:
                self._give_back()

    def _give_back(self) -> None:
        if self._taken is None:
            self._full = True
        else:
            self._dirs.update(self._taken)
        self._taken, self._taking = None, False


def next_daily(after: datetime, times: list[dtime], weekdays: list[int]) -> datetime:
    """The first scheduled moment strictly after ``after`` (local wall time, its timezone)."""
    day = after.date()
    for offset in range(0, 8):
        d = day + timedelta(days=offset)
        if weekdays and d.weekday() not in weekdays:
            continue
        for t in times:
            at = datetime.combine(d, t, tzinfo=after.tzinfo)
            if at > after:
                return at
    raise AssertionError("a weekly schedule always has a next run")  # pragma: no cover


def previous_daily(before: datetime, times: list[dtime], weekdays: list[int]) -> datetime | None:
    """The last scheduled moment at or before ``before``, within the past week."""
    day = before.date()
    for offset in range(0, 8):
        d = day - timedelta(days=offset)
        if weekdays and d.weekday() not in weekdays:
            continue
        for t in reversed(times):
            at = datetime.combine(d, t, tzinfo=before.tzinfo)
            if at <= before:
                return at
    return None


@dataclass
class Due:
    """A set that should run, and why (shown in status and logs)."""

    name: str
    reason: str


class SetTrigger:
    """Decides when one backup set is due."""

    def __init__(self, cfg: BackupSetConfig, clock: Clock, last_run: datetime | None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.debouncer = Debouncer(cfg.quiet, cfg.max_delay)
        self.changes = ChangedDirs()
        self.last_run = last_run
        self._retry_at: float | None = None
        self._rescan_at: float | None = clock.monotonic()  # first pass at start-up
        if cfg.mode == "scheduled":
            self._rescan_at = None
            self._next_wall = self._first_scheduled(last_run)

    # -- scheduled ------------------------------------------------------------------------

    def _first_scheduled(self, last_run: datetime | None) -> datetime:
        now = self.clock.now()
        if self.cfg.interval is not None:
            if last_run is None:
                return now
            return last_run + timedelta(seconds=self.cfg.interval)
        prev = previous_daily(now, self.cfg.at, self.cfg.weekdays)
        if prev is not None and (last_run is None or last_run < prev):
            return now  # missed while the agent was down: make it up now
        return next_daily(now, self.cfg.at, self.cfg.weekdays)

    def _schedule_after(self, started: datetime) -> datetime:
        if self.cfg.interval is not None:
            return started + timedelta(seconds=self.cfg.interval)
        return next_daily(started, self.cfg.at, self.cfg.weekdays)

    # -- both ---------------------------------------------------------------------------------

    def notify_change(self, dirs: Iterable[str] = ()) -> None:
        """A file-system event under this set's paths, touching ``dirs``."""
        if self.cfg.mode == "continuous":
            self.changes.add(dirs)
            self.debouncer.notify(self.clock.monotonic())

    def request_rescan(self) -> None:
        """Run a full pass as soon as possible (events were lost)."""
        if self.cfg.mode == "continuous":
            self.changes.lost()
            self._rescan_at = self.clock.monotonic()

    def seconds_until_due(self) -> float:
        """Seconds until this set is due (0 when due now)."""
        mono = self.clock.monotonic()
        if self._retry_at is not None:
            return max(0.0, self._retry_at - mono)
        if self.cfg.mode == "continuous":
            candidates = [t for t in (self.debouncer.deadline(), self._rescan_at) if t is not None]
            return max(0.0, min(candidates) - mono) if candidates else float("inf")
        return max(0.0, (self._next_wall - self.clock.now()).total_seconds())

    def due(self) -> str | None:
        """Why the set should run now, or None."""
        mono = self.clock.monotonic()
        if self._retry_at is not None:
            return "retry" if mono >= self._retry_at else None
        if self.cfg.mode == "continuous":
            if self._rescan_at is not None and mono >= self._rescan_at:
                return "rescan"
            if self.debouncer.due(mono):
                return "changes"
            return None
        return "schedule" if self.clock.now() >= self._next_wall else None

    def next_due_wall(self) -> datetime | None:
        """The wall time the set is next due, for the status display (None: waiting for changes)."""
        wait = self.seconds_until_due()
        if wait == float("inf"):
            return None
        return self.clock.now() + timedelta(seconds=wait)

    def started(self) -> None:
        """A run starts now: it covers every change and makes the next rescan wait a full period."""
        self.debouncer.take()
        self._retry_at = None
        now = self.clock.now()
        self.last_run = now
        if self.cfg.mode == "continuous":
            self._rescan_at = self.clock.monotonic() + self.cfg.rescan
        else:
            self._next_wall = self._schedule_after(now)

    def failed(self) -> None:
        """The run failed: try again after ``retry_after`` (pending changes stay pending)."""
        self._retry_at = self.clock.monotonic() + self.cfg.retry_after

    def retry_now(self) -> None:
        """What made the last run fail was fixed: a failed set's retry is due at once."""
        if self._retry_at is not None:
            self._retry_at = self.clock.monotonic()


class Scheduler:
    """All sets' triggers; picks the one to run next (one backup at a time per agent)."""

    def __init__(self, triggers: list[SetTrigger]) -> None:
        self.triggers = {t.cfg.name: t for t in triggers}
        self.wake = threading.Event()

    def notify_change(self, name: str, dirs: Iterable[str] = ()) -> None:
        """A change event for set ``name`` (touching ``dirs``); wakes the loop."""
        trigger = self.triggers.get(name)
        if trigger is not None:
            trigger.notify_change(dirs)
            self.wake.set()

    def request_rescan_all(self) -> None:
        """Events were lost somewhere: every continuous set rescans now."""
        for t in self.triggers.values():
            t.request_rescan()
        self.wake.set()

    def next_due(self) -> Due | None:
        """The set to run now; among several, the one whose last run is oldest (no starvation)."""
        due = []
        for name, t in self.triggers.items():
            reason = t.due()
            if reason is not None:
                last = t.last_run.timestamp() if t.last_run is not None else float("-inf")
                due.append((last, name, reason))
        if not due:
            return None
        _, name, reason = min(due)
        return Due(name, reason)

    def seconds_until_next(self) -> float:
        """How long the loop may sleep."""
        waits = [t.seconds_until_due() for t in self.triggers.values()]
        return min(waits) if waits else float("inf")
