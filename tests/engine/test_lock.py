"""Repository locks: conflicts, stale detection, refreshing, and giving up before going stale."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vaultwatch.engine import lock as lockmod
from vaultwatch.engine.errors import LockLostError, RepositoryLockedError
from vaultwatch.engine.lock import RepositoryLock, list_locks, locked, remove_stale_locks
from vaultwatch.store.errors import StoreError
from vaultwatch.store.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "repo")
    s.create_if_missing()
    return s


def _write_lock(store: LocalStore, name: str, **fields: object) -> None:
    doc = {"exclusive": False, "hostname": socket.gethostname(), "pid": os.getpid()}
    doc |= {"time": time.time(), "purpose": "backup"} | fields
    store.put(f"locks/{name}", json.dumps(doc).encode())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_exclusive_lock_is_refused_while_a_live_shared_one_is_held(store: LocalStore) -> None:
    with locked(store, exclusive=False, purpose="backup"):
        with locked(store, exclusive=False, purpose="check"):
            pass  # shared locks coexist
        with (
            pytest.raises(RepositoryLockedError, match="shared lock for backup"),
            locked(store, exclusive=True, purpose="prune"),
        ):
            pass
    assert list(store.list("locks/")) == []  # every lock released


def test_stale_locks_are_removed_and_live_ones_kept(store: LocalStore) -> None:
    _write_lock(store, "live")
    _write_lock(store, "old", time=time.time() - lockmod.STALE_AFTER - 1, hostname="elsewhere")
    _write_lock(store, "dead", pid=_dead_pid())
    _write_lock(store, "remote", hostname="another-host", pid=1)  # cannot be judged: kept
    store.put("locks/garbled", b"not json")
    assert remove_stale_locks(store) == 3
    assert sorted(lock.name for lock in list_locks(store)) == ["locks/live", "locks/remote"]


def test_a_held_lock_is_refreshed(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lockmod, "REFRESH_EVERY", 0.05)
    held = RepositoryLock(store, False, "backup")
    held.acquire()
    first = list_locks(store)[0].time
    deadline = time.monotonic() + 10
    while list_locks(store)[0].time == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list_locks(store)[0].time > first
    held.release()


class _OutageStore(LocalStore):
    """A local store whose writes hang (as a gateway store retrying forever does) while down."""

    down = False

    def put(self, name: str, data: bytes, *, overwrite: bool = False) -> None:
        while self.down:
            time.sleep(0.01)
        super().put(name, data, overwrite=overwrite)


class _FailingStore(LocalStore):
    """A local store whose writes fail at once while down (a store that gives up)."""

    down = False

    def put(self, name: str, data: bytes, *, overwrite: bool = False) -> None:
        if self.down:
            raise StoreError("connection refused")
        super().put(name, data, overwrite=overwrite)


@pytest.mark.parametrize("kind", [_OutageStore, _FailingStore])
def test_a_lock_that_cannot_be_refreshed_is_given_up_before_others_call_it_stale(
    kind: type[LocalStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lockmod, "REFRESH_EVERY", 0.1)
    monkeypatch.setattr(lockmod, "RETRY_EVERY", 0.05)
    monkeypatch.setattr(lockmod, "GIVE_UP_AFTER", 0.6)
    store = kind(tmp_path / "repo")
    store.create_if_missing()
    lost_at: list[float] = []
    held = RepositoryLock(store, False, "backup", on_lost=lambda: lost_at.append(time.time()))
    held.acquire()
    time.sleep(0.3)
    assert not held.lost
    held.check()
    last_write = list_locks(store)[0].time
    store.down = True  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while not lost_at and time.monotonic() < deadline:
        time.sleep(0.02)
    assert held.lost and len(lost_at) == 1
    # It gave up within GIVE_UP_AFTER (+ one retry) of the last write others can see.
    assert lost_at[0] - last_write <= lockmod.GIVE_UP_AFTER + 0.3
    with pytest.raises(LockLostError, match="could not be refreshed"):
        held.check()
    store.down = False  # type: ignore[attr-defined]
    held.release()


def test_a_block_stopped_by_a_lost_lock_reports_the_lost_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lockmod, "REFRESH_EVERY", 0.05)
    monkeypatch.setattr(lockmod, "GIVE_UP_AFTER", 0.3)
    store = _FailingStore(tmp_path / "repo")
    store.create_if_missing()
    with pytest.raises(LockLostError), locked(store, exclusive=False, purpose="backup") as held:
        store.down = True
        while not held.lost:
            time.sleep(0.02)
        raise StoreError("the upload failed too")
