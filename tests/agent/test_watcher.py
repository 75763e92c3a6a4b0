"""Change events from the real inotify observer: what triggers a backup and what must not."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from vaultwatch.agent.config import BackupSetConfig
from vaultwatch.agent.watcher import ChangeFilter, Watcher


class Events:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.dirs: set[str] = set()
        self.overflows = 0
        self.cond = threading.Condition()

    def notify(self, name: str, dirs: list[str]) -> None:
        with self.cond:
            self.names.append(name)
            self.dirs.update(dirs)
            self.cond.notify_all()

    def overflow(self) -> None:
        self.overflows += 1

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.names) >= count, timeout)

    def settle(self, seconds: float = 0.5) -> list[str]:
        time.sleep(seconds)
        with self.cond:
            out, self.names = self.names, []
        return out


def test_change_filter(tmp_path: Path) -> None:
    root = str(tmp_path / "srv")
    f = ChangeFilter([root], ["*.tmp", f"{root}/cache"], [f"{root}/state"])
    assert f.relevant(f"{root}/a.txt")
    assert f.relevant(f"{root}/sub/dir/b.txt")
    assert f.relevant(root)
    assert not f.relevant(f"{root}/x.tmp")
    assert not f.relevant(f"{root}/x.tmp/inside")  # below an excluded directory
    assert not f.relevant(f"{root}/cache/y")
    assert f.relevant(f"{root}/cachet/y")
    assert not f.relevant(f"{root}/state/journal.sqlite")
    assert not f.relevant(str(tmp_path / "elsewhere"))


def test_watcher_sees_changes_but_not_reads(tmp_path: Path) -> None:
    srv = tmp_path / "srv"
    (srv / "sub").mkdir(parents=True)
    (srv / "existing.txt").write_text("x")
    single = tmp_path / "single.conf"
    single.write_text("a=1")
    (tmp_path / "neighbour.conf").write_text("b=2")
    sets = [
        BackupSetConfig("www", [str(srv)], "continuous", excludes=["*.tmp"]),
        BackupSetConfig("conf", [str(single)], "continuous"),
        BackupSetConfig("nightly", [str(tmp_path)], "scheduled", interval=60),
    ]
    events = Events()
    watcher = Watcher(sets, events.notify, events.overflow, ignored=[str(srv / "state")])
    watcher.start()
    try:
        time.sleep(0.2)
        (srv / "sub" / "new.txt").write_text("hello")
        assert events.wait_for(1)
        assert set(events.settle()) == {"www"}

        (srv / "existing.txt").unlink()
        assert events.wait_for(1)
        assert set(events.settle()) == {"www"}

        (srv / "sub").rename(srv / "moved")
        assert events.wait_for(1)
        events.settle()

        # Reading (what the backup itself does) is not a change.
        (srv / "moved" / "new.txt").read_text()
        assert events.settle() == []
        # Excluded names and the state directory are not changes either.
        (srv / "junk.tmp").write_text("x")
        (srv / "state").mkdir()
        events.settle()
        (srv / "state" / "journal").write_text("x")
        assert events.settle() == []

        single.write_text("a=2")
        assert events.wait_for(1)
        assert set(events.settle()) == {"conf"}
        (tmp_path / "neighbour.conf").write_text("b=3")  # same directory, other file
        assert events.settle() == []
    finally:
        watcher.stop()


def test_queue_overflow_asks_for_a_rescan(tmp_path: Path) -> None:
    events = Events()
    watcher = Watcher(
        [BackupSetConfig("www", [str(tmp_path)], "continuous")],
        events.notify,
        events.overflow,
        ignored=[],
    )
    watcher.start()
    try:
        # What watchdog logs when the kernel drops events.
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        assert events.overflows == 1
    finally:
        watcher.stop()
    assert not watcher.failed


def test_unwatchable_path_is_left_to_rescans(tmp_path: Path) -> None:
    events = Events()
    missing = tmp_path / "missing"
    watcher = Watcher(
        [BackupSetConfig("www", [str(missing / "x")], "continuous")],
        events.notify,
        events.overflow,
        ignored=[],
    )
    watcher.start()
    watcher.stop()
    assert watcher.failed == [str(missing / "x")]


def test_watcher_names_the_directories_a_change_touched(tmp_path: Path) -> None:
    srv = tmp_path / "srv"
    (srv / "a" / "b").mkdir(parents=True)
    (srv / "c").mkdir()
    (srv / "a" / "b" / "f.txt").write_text("x")
    (srv / "gone" / "inner").mkdir(parents=True)
    events = Events()
    watcher = Watcher(
        [BackupSetConfig("www", [str(srv)], "continuous", excludes=["skip"])],
        events.notify,
        events.overflow,
        ignored=[],
    )
    watcher.start()
    try:
        time.sleep(0.2)
        (srv / "a" / "b" / "f.txt").write_text("changed")
        (srv / "a" / "b" / "f.txt").rename(srv / "c" / "f.txt")  # across directories
        for p in sorted((srv / "gone").rglob("*"), reverse=True):
            p.rmdir()
        (srv / "gone").rmdir()
        (srv / "skip").mkdir()
        (srv / "skip" / "junk").write_text("x")
        assert events.wait_for(4)
        events.settle()
        dirs = events.dirs
        assert {str(srv / "a" / "b"), str(srv / "c")} <= dirs
        assert {str(srv / "gone"), str(srv / "gone" / "inner"), str(srv)} <= dirs
        assert str(srv / "skip") not in dirs
    finally:
        watcher.stop()
