"""Repository locks: shared for backups, exclusive for prune, with stale-lock detection.

A lock is an object ``locks/<random id>`` holding JSON (host, pid, time,
exclusive). A holder refreshes it every few minutes; a lock not refreshed for
``STALE_AFTER`` seconds, or held by a dead process on this host, is stale and
is removed by whoever needs the repository.

A holder that cannot refresh (the network is down) retries every
``RETRY_EVERY`` seconds; once ``GIVE_UP_AFTER`` seconds have passed since its
last successful refresh it declares the lock lost and stops its operation, a
full refresh period before anyone else may call the lock stale, so a prune
elsewhere never deletes packs a still-running backup relies on.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from vaultwatch.engine.errors import LockLostError, RepositoryLockedError
from vaultwatch.store.base import Store
from vaultwatch.store.errors import ObjectNotFoundError, StoreError

STALE_AFTER = 30 * 60
REFRESH_EVERY = 5 * 60
RETRY_EVERY = 15
GIVE_UP_AFTER = STALE_AFTER - REFRESH_EVERY


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says about its holder."""

    name: str
    exclusive: bool
    hostname: str
    pid: int
    time: float
    purpose: str

    def is_stale(self, now: float) -> bool:
        """Not refreshed for too long, or its process on this very host is gone."""
        if now - self.time > STALE_AFTER:
            return True
        if self.hostname == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def describe(self) -> str:
        """One line for an error message."""
        kind = "exclusive" if self.exclusive else "shared"
        age = int(time.time() - self.time)
        return f"{kind} lock for {self.purpose} by pid {self.pid} on {self.hostname}, refreshed {age}s ago"


def list_locks(store: Store) -> list[LockInfo]:
    """Every lock present now (unparseable ones count as stale)."""
    out = []
    for obj in store.list("locks/"):
        try:
            doc = json.loads(store.get(obj.name))
            out.append(
                LockInfo(
                    obj.name,
                    bool(doc["exclusive"]),
                    str(doc["hostname"]),
                    int(doc["pid"]),
                    float(doc["time"]),
                    str(doc.get("purpose", "")),
                )
            )
        except ObjectNotFoundError:
            continue
        except (ValueError, KeyError, TypeError):
            out.append(LockInfo(obj.name, False, "?", 0, 0.0, "unreadable"))
    return out


def remove_stale_locks(store: Store) -> int:
    """Delete stale locks; returns how many."""
    now = time.time()
    removed = 0
    for lock in list_locks(store):
        if lock.is_stale(now):
            try:
                store.delete(lock.name)
                removed += 1
            except ObjectNotFoundError:
                pass
    return removed


class RepositoryLock:
    """A held lock, refreshed by a daemon thread until released."""

    def __init__(
        self,
        store: Store,
        exclusive: bool,
        purpose: str,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.exclusive = exclusive
        self.purpose = purpose
        self.name = f"locks/{secrets.token_hex(16)}"
        #: Called once, from the refresh thread, when the lock is lost (e.g. Progress.cancel).
        self.on_lost = on_lost
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._refreshed = time.monotonic()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps(
            {
                "exclusive": self.exclusive,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "time": time.time(),
                "purpose": self.purpose,
            }
        ).encode()

    def acquire(self) -> None:
        """Write the lock, then make sure no conflicting live lock exists (else back off)."""
        now = time.time()
        for other in list_locks(self.store):
            if (self.exclusive or other.exclusive) and not other.is_stale(now):
                raise RepositoryLockedError(f"repository is locked: {other.describe()}")
        self.store.put(self.name, self._body())
        self._refreshed = time.monotonic()
        # Someone may have locked between our check and our write: check again.
        for other in list_locks(self.store):
            if other.name == self.name or other.is_stale(time.time()):
                continue
            if self.exclusive or other.exclusive:
                self.release()
                raise RepositoryLockedError(f"repository is locked: {other.describe()}")
        self._thread = threading.Thread(target=self._refresh, name="lock-refresh", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        """Refresh every REFRESH_EVERY; after a failure retry sooner, until GIVE_UP_AFTER.

        Each write runs in its own thread because a store that retries forever
        (an agent's gateway store during an outage) would otherwise never let
        this loop notice that the deadline passed.
        """
        wait = REFRESH_EVERY
        while not self._stop.wait(wait):
            written, finished = threading.Event(), threading.Event()
            threading.Thread(
                target=self._write, args=(written, finished), name="lock-write", daemon=True
            ).start()
            finished.wait(max(0.0, self._refreshed + GIVE_UP_AFTER - time.monotonic()))
            if written.is_set():
                self._refreshed, wait = time.monotonic(), REFRESH_EVERY
            elif self._expired():
                if not self._stop.is_set():
                    self._lose()
                return
            else:
                wait = min(RETRY_EVERY, REFRESH_EVERY)

    def _write(self, written: threading.Event, finished: threading.Event) -> None:
        try:
            self.store.put(self.name, self._body(), overwrite=True)
            written.set()
        except StoreError:
            pass
        finally:
            finished.set()

    def _expired(self) -> bool:
        return time.monotonic() - self._refreshed >= GIVE_UP_AFTER

    def _lose(self) -> None:
        self._lost.set()
        if self.on_lost is not None:
            self.on_lost()

    @property
    def lost(self) -> bool:
        """Whether refreshing failed for so long that the operation had to stop."""
        return self._lost.is_set() or (self._thread is not None and self._expired())

    def check(self) -> None:
        """LockLostError once the lock is lost: called before committing what the lock guards."""
        if self.lost:
            raise LockLostError(
                f"the repository lock could not be refreshed for {GIVE_UP_AFTER} s; the "
                f"{self.purpose} stopped before the lock could be taken for stale (nothing "
                "half-written is referenced; run it again when the repository is reachable)"
            )

    def release(self) -> None:
        """Stop refreshing and delete the lock."""
        self._stop.set()
        with suppress(ObjectNotFoundError):
            self.store.delete(self.name)


@contextmanager
def locked(
    store: Store,
    *,
    exclusive: bool,
    purpose: str,
    on_lost: Callable[[], None] | None = None,
) -> Iterator[RepositoryLock]:
    """Hold a lock for the duration of a block; a block ended by a lost lock says so."""
    remove_stale_locks(store)
    lock = RepositoryLock(store, exclusive, purpose, on_lost)
    lock.acquire()
    try:
        yield lock
    except Exception:
        lock.check()  # a cancel or store error caused by the outage: report the lost lock
        raise
    finally:
        lock.release()
