"""Progress counters the engine updates and any front end (CLI bar, agent job report) polls.

Polling a shared object keeps the engine free of UI code and costs the hot
path nothing but an integer addition.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from vaultwatch.engine.errors import CancelledError


@dataclass
class Progress:
    """Totals are None until known (a backup learns them while it scans)."""

    phase: str = "starting"
    bytes_total: int | None = None
    files_total: int | None = None
    bytes_done: int = 0
    files_done: int = 0
    errors: int = 0
    current: str = ""
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        """Ask the work to stop soon (Ctrl-C, an agent shutting down); safe from any thread."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise CancelledError when cancelled: called by the engine between units of work."""
        if self._cancel.is_set():
            raise CancelledError("cancelled")

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        """Count work done (thread-safe)."""
        with self._lock:
            self.bytes_done += nbytes
            self.files_done += files

    def add_total(self, nbytes: int = 0, files: int = 0) -> None:
        """Grow the totals while a scan discovers work (thread-safe)."""
        with self._lock:
            self.bytes_total = (self.bytes_total or 0) + nbytes
            self.files_total = (self.files_total or 0) + files

    @property
    def elapsed(self) -> float:
        """Seconds since the work started."""
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        return self.bytes_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, when the total is known."""
        if self.bytes_total is None or self.rate <= 0:
            return None
        return max(0.0, (self.bytes_total - self.bytes_done) / self.rate)
