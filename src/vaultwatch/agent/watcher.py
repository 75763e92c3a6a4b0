"""File-system change events (inotify through watchdog) for the continuous backup sets.

Only events that change something count: the agent's own reads (open,
close-without-write) would otherwise trigger a backup after every backup.
They are not even asked of the kernel (``CHANGE_EVENT_CLASSES`` sets the
inotify mask): a backup lists every directory and reads changed files, and
on a large tree those events alone overflowed the kernel's queue, so every
rescan caused the next (1,000,000 files: a full rescan every 5 s, never an
incremental backup).
Events under excluded paths and under the agent's state directory are
ignored. When the kernel's event queue overflows, watchdog only logs a
warning; we catch that warning and ask every continuous set for a full
rescan, since some changes were lost.

Each change also names the directories the next backup must list again:
the parent of every path an event names (both sides of a move) and, for a
directory created, deleted or moved, that directory itself. The backup
rescans only those and keeps the rest of the parent snapshot.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from vaultwatch.agent.config import BackupSetConfig
from vaultwatch.engine.backup import Excluder

log = logging.getLogger("vaultwatch.agent.watcher")

CHANGE_EVENTS = frozenset(
    {
        EVENT_TYPE_CREATED,
        EVENT_TYPE_DELETED,
        EVENT_TYPE_MODIFIED,
        EVENT_TYPE_MOVED,
        EVENT_TYPE_CLOSED,
    }
)
CHANGE_EVENT_CLASSES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    DirMovedEvent,
    FileClosedEvent,  # closed after writing only: IN_CLOSE_WRITE
]
"""The events watched, as watchdog classes: no open, access or close-without-write."""
_WATCHDOG_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def dirty_dirs(event: FileSystemEvent) -> list[str]:
    """The directories whose listing or entries this event changed."""
    paths = [os.path.abspath(os.fsdecode(event.src_path))]
    if event.dest_path:
        paths.append(os.path.abspath(os.fsdecode(event.dest_path)))
    out = [os.path.dirname(p) for p in paths]
    if event.is_directory and event.event_type != EVENT_TYPE_MODIFIED:
        out.extend(paths)  # its whole content is new, moved or gone
    return out


class ChangeFilter:
    """Decides whether an event path is a change the set cares about."""

    def __init__(self, roots: list[str], excludes: list[str], ignored: list[str]) -> None:
        self.roots = [os.path.abspath(r) for r in roots]
        self.excluder = Excluder(excludes)
        self.ignored = [os.path.abspath(p) for p in ignored]

    def relevant(self, path: str) -> bool:
        """Whether a change at ``path`` is part of the set (and not excluded)."""
        path = os.path.abspath(path)
        if any(_under(path, i) for i in self.ignored):
            return False
        root = next((r for r in self.roots if _under(path, r)), None)
        if root is None:
            return False
        # The engine skips an excluded directory's whole content: check every level.
        current = root
        rest = path[len(root) :].strip("/")
        for part in [p for p in rest.split("/") if p]:
            current = os.path.join(current, part)
            if self.excluder.excluded(os.fsencode(current), os.fsencode(part)):
                return False
        return True


Notify = Callable[[str, list[str]], None]
"""Called with a set's name and the directories a change made dirty."""


class _Handler(FileSystemEventHandler):
    def __init__(self, name: str, changes: ChangeFilter, notify: Notify) -> None:
        self.name = name
        self.changes = changes
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGE_EVENTS:
            return
        if event.is_directory and event.event_type == EVENT_TYPE_MODIFIED:
            # Sent for the parent of every created or deleted entry, which has its own
            # event (so an excluded file does not count through its directory); a change
            # of a directory's own permissions is found by the next rescan.
            return
        paths = [os.fsdecode(event.src_path)]
        if event.dest_path:
            paths.append(os.fsdecode(event.dest_path))
        if any(self.changes.relevant(p) for p in paths):
            self.notify(self.name, dirty_dirs(event))


class _OverflowHook(logging.Handler):
    """Turns watchdog's 'queue overflowed' warning into a rescan request."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.on_overflow()


class Watcher:
    """Watches the paths of every continuous set."""

    def __init__(
        self,
        sets: list[BackupSetConfig],
        notify: Notify,
        on_overflow: Callable[[], None],
        ignored: list[str],
    ) -> None:
        self.sets = [s for s in sets if s.mode == "continuous"]
        self.notify = notify
        self.ignored = ignored
        self.observer = Observer()
        self.observer.daemon = True
        self._hook = _OverflowHook(on_overflow)
        self.failed: list[str] = []

    def start(self) -> None:
        """Start watching; a path that cannot be watched is logged and left to the rescans."""
        for name in _WATCHDOG_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(self._hook)
            if logger.getEffectiveLevel() > logging.WARNING:
                logger.setLevel(logging.WARNING)
        # Started first: then each schedule() starts its watch at once and a path that
        # cannot be watched fails alone instead of taking every other watch down.
        self.observer.start()
        for s in self.sets:
            handler = _Handler(s.name, ChangeFilter(s.paths, s.excludes, self.ignored), self.notify)
            for path in s.paths:
                try:
                    # A single file: watch its directory, the filter keeps just the file.
                    tree = os.path.isdir(path) and not os.path.islink(path)
                    self.observer.schedule(
                        handler,
                        path if tree else os.path.dirname(path),
                        recursive=tree,
                        event_filter=CHANGE_EVENT_CLASSES,
                    )
                except OSError as exc:
                    self.failed.append(path)
                    log.warning(
                        "cannot watch %s (%s): changes there are found by the periodic rescan",
                        path,
                        exc.strerror or exc,
                    )

    def stop(self) -> None:
        """Stop watching."""
        for name in _WATCHDOG_LOGGERS:
            logging.getLogger(name).removeHandler(self._hook)
        self.observer.stop()
        if self.observer.is_alive():
            self.observer.join(timeout=5)
