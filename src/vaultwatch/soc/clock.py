"""Clocks for the server's background duties: the real one, and one tests move by hand.

The agent has its own clock (local wall time for schedules); the server side
needs UTC instants it can hand to the catalog, and a test clock that several
threads may read while a test advances it.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds for intervals, aware UTC time for what is stored."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps."""
        ...

    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()

    def now(self) -> datetime:
        """datetime.now(UTC)."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (thread-safe), for exact timing tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._offset = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        """Seconds advanced so far."""
        with self._lock:
            return self._offset

    def now(self) -> datetime:
        """The start instant plus the seconds advanced."""
        with self._lock:
            return self._start + timedelta(seconds=self._offset)

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._offset += seconds
