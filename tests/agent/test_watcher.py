"""Change events from the real inotify observer: what triggers a backup and what must not."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
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


def watch_one_set(root: Path, events: Events) -> Watcher:
    """A watcher (not started) of one continuous set protecting ``root``."""
    return Watcher(
        [BackupSetConfig("www", [str(root)], "continuous")],
        events.notify,
        events.overflow,
        ignored=[],
    )


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
    watcher = watch_one_set(tmp_path, events)
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


IN_ACCESS, IN_CLOSE_NOWRITE, IN_OPEN = 0x1, 0x10, 0x20
IN_MODIFY, IN_CLOSE_WRITE, IN_CREATE, IN_DELETE = 0x2, 0x8, 0x100, 0x200
IN_MOVED_FROM, IN_MOVED_TO = 0x40, 0x80


def inotify_masks() -> list[int]:
    """The event mask of every inotify watch this process holds, as the kernel reports it."""
    masks = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if os.readlink(fd) != "anon_inode:inotify":
                continue
            info = (Path("/proc/self/fdinfo") / fd.name).read_text()
        except OSError:
            continue
        masks += [int(m, 16) for m in re.findall(r"^inotify .*\bmask:([0-9a-f]+)", info, re.M)]
    return masks


def test_the_kernel_is_asked_for_changes_only_never_for_reads(tmp_path: Path) -> None:
    (tmp_path / "srv" / "sub").mkdir(parents=True)
    (tmp_path / "one.conf").write_text("a=1")
    sets = [
        BackupSetConfig("www", [str(tmp_path / "srv")], "continuous"),
        BackupSetConfig("conf", [str(tmp_path / "one.conf")], "continuous"),
    ]
    before = len(inotify_masks())
    watcher = Watcher(sets, Events().notify, Events().overflow, ignored=[])
    watcher.start()
    try:
        masks = inotify_masks()
        assert len(masks) - before >= 3  # srv, srv/sub and the single file's directory
        changes = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
        for mask in masks[before:]:
            assert mask & (IN_ACCESS | IN_OPEN | IN_CLOSE_NOWRITE) == 0, hex(mask)
            assert mask & changes == changes, hex(mask)
    finally:
        watcher.stop()


def test_reading_more_files_than_the_kernel_queue_holds_loses_no_event(tmp_path: Path) -> None:
    # A backup reads every changed file and lists every directory. With open and
    # close-without-write in the mask, that alone overflowed the queue on a large tree.
    queue = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    files = [tmp_path / f"f{i:06d}" for i in range(queue + 100)]
    for f in files:
        f.write_bytes(b"x")
    events = Events()
    watcher = watch_one_set(tmp_path, events)
    watcher.start()
    interval = sys.getswitchinterval()
    try:
        time.sleep(0.2)
        # Another process reads every file (two events each with reads in the mask: twice
        # the queue) while this one keeps the GIL, as a busy agent does: the watcher's
        # thread cannot drain the kernel's queue meanwhile.
        sys.setswitchinterval(2.0)
        reader = subprocess.Popen(
            ["cat", *(f.name for f in files)], cwd=tmp_path, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            pass
        sys.setswitchinterval(interval)
        assert reader.wait(timeout=30) == 0
        assert events.settle(1.0) == []
        assert events.overflows == 0
        files[0].write_bytes(b"changed")  # and a change still arrives
        assert events.wait_for(1)
    finally:
        sys.setswitchinterval(interval)
        watcher.stop()


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
