"""Reading, cutting, hashing and compressing small files in worker processes.

A backup of a source tree is tens of thousands of files of a few KiB: per
file the work is a handful of system calls and a few short C calls, each too
short to release the GIL for long, so reader threads kept one core busy
while the other waited. Worker processes do that part on every core.

Each batch is a conversation of two steps with one worker: the worker reads
its files, cuts and hashes them, and answers with every file's chunk ids
(keeping the chunks); the backup reserves the ids (deduplication stays in one
place, the blob writer) and asks back only for the new chunks, which the
worker compresses. A chunk already stored therefore costs read, cut, hash and
one look-up, and never crosses the pipe. Encryption and packing stay in the
backup process, which holds the only copy of the encryption key; a worker
gets the id key and the chunker seed.

The workers are plain ``python -m vaultwatch.engine.filereader`` processes
talking over a socket pair (not multiprocessing's spawn, which would import
the caller's main module again), and end when the socket closes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

import blake3

from vaultwatch.engine.chunker import Chunker
from vaultwatch.engine.compress import compress
from vaultwatch.engine.errors import EngineError

SMALL_FILE = 1024 * 1024
# Files of a batch opened (and their reading started) ahead of the one being read: on
# a cold cache a reader otherwise keeps only one small read in flight.
READ_AHEAD_FILES = 16
#: A file that grew beyond SMALL_FILE since it was listed: read by the caller instead.
TOO_LARGE = "too large for a batch"


@dataclass(frozen=True, slots=True)
class ReaderParams:
    """What a worker needs: the id key and the chunker, never the encryption key."""

    id_key: bytes
    min_size: int
    avg_size: int
    max_size: int
    seed: int
    retries: int = 2


@dataclass(slots=True)
class FileRead:
    """One file of a batch: its chunk ids and size, or why it could not be read."""

    content: list[bytes]
    size: int
    error: str = ""
    warning: str = ""


# -- the worker's side -------------------------------------------------------------


def open_for_reading(path: bytes) -> int:
    """Open a file to back it up: never through a symlink, without touching its atime."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0)
    try:
        return os.open(path, flags)
    except PermissionError:  # O_NOATIME is for the owner (or root) only
        return os.open(path, flags & ~getattr(os, "O_NOATIME", 0))


def open_ahead(path: bytes) -> int | OSError:
    """Open a file that is read soon and ask the kernel to start reading it now."""
    try:
        fd = open_for_reading(path)
    except OSError as exc:
        return exc
    with contextlib.suppress(OSError):  # only a hint: a file system may not take it
        os.posix_fadvise(fd, 0, SMALL_FILE, os.POSIX_FADV_WILLNEED)
    return fd


def read_to_end(fd: int, expected: int) -> bytes:
    """A small file's bytes: one read() of its size plus one byte, to see if it grew.

    Python's buffered readall costs three more system calls a file (fstat,
    lseek and the read that finds the end). A short read on a regular file
    is its end.
    """
    data = os.read(fd, expected + 1)
    if len(data) <= expected:
        return data
    parts = [data]
    while chunk := os.read(fd, SMALL_FILE):
        parts.append(chunk)
    return b"".join(parts)


def _read_one(fd: int) -> tuple[bytes, bool]:
    """(content, whether it changed while read) of an open small file; closes ``fd``."""
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise OSError(errno.EINVAL, "no longer a regular file")
        if before.st_size > SMALL_FILE:
            raise _TooLarge
        data = read_to_end(fd, before.st_size)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    changed = (
        before.st_size != after.st_size
        or before.st_mtime_ns != after.st_mtime_ns
        or before.st_ctime_ns != after.st_ctime_ns
        or len(data) != after.st_size
    )
    return data, changed


class _TooLarge(Exception):
    pass


class BatchReader:
    """Reads a batch of small files into chunks and ids (the worker's state between steps)."""

    def __init__(self, params: ReaderParams) -> None:
        self.params = params
        self.chunker = Chunker(params.min_size, params.avg_size, params.max_size, params.seed)
        self.held: list[bytes] = []  # the last batch's chunks, in the order of their ids

    def _read_with_retries(self, path: bytes, opened: int | OSError) -> tuple[bytes, str]:
        for attempt in range(self.params.retries + 1):
            fd = opened if attempt == 0 else open_for_reading(path)
            if isinstance(fd, OSError):
                raise fd
            data, changed = _read_one(fd)
            if not changed:
                return data, ""
            if attempt < self.params.retries:
                time.sleep(0.05)
        return data, "changed while being read"

    def read(self, paths: list[bytes]) -> list[tuple[str, str, int, list[bytes]]]:
        """(error, warning, size, chunk ids) per file; the chunks are kept for :meth:`take`."""
        key = self.params.id_key
        hasher = blake3.blake3
        cut = self.chunker.cut
        held: list[bytes] = []
        out: list[tuple[str, str, int, list[bytes]]] = []
        ahead: dict[int, int | OSError] = {}
        n = len(paths)
        try:
            for i, path in enumerate(paths):
                for j in range(i, min(i + READ_AHEAD_FILES, n)):
                    if j not in ahead:
                        ahead[j] = open_ahead(paths[j])
                try:
                    data, warning = self._read_with_retries(path, ahead.pop(i))
                except _TooLarge:
                    out.append((TOO_LARGE, "", 0, []))
                    continue
                except OSError as exc:
                    out.append((exc.strerror or str(exc), "", 0, []))
                    continue
                chunks = cut(data)
                held.extend(chunks)
                out.append(
                    (
                        "",
                        warning,
                        len(data),
                        [hasher(c, key=key).digest() for c in chunks],
                    )
                )
        finally:
            for fd in ahead.values():
                if isinstance(fd, int):
                    os.close(fd)
        self.held = held
        return out

    def take(self, wanted: list[int]) -> list[tuple[bytes, int]]:
        """(compressed body, raw length) of the held chunks at these positions; drops the batch."""
        held, self.held = self.held, []
        return [(compress(held[i]), len(held[i])) for i in wanted]


def serve(conn: Connection) -> None:
    """A worker's loop: ``("read", paths)`` and ``("take", positions)`` until the socket closes."""
    params = conn.recv()
    if not isinstance(params, ReaderParams):
        raise SystemExit("vaultwatch file reader: bad start message")
    reader = BatchReader(params)
    while True:
        try:
            op, arg = conn.recv()
        except (EOFError, OSError):
            return
        if op == "read":
            conn.send(reader.read(arg))
        elif op == "take":
            conn.send(reader.take(arg))
        else:
            raise SystemExit(f"vaultwatch file reader: unknown request {op!r}")


# -- the backup's side ----------------------------------------------------------------


Reserve = Callable[[list[bytes]], list[bool]]
"""Reserves blob ids with the writer: True for each the caller must store."""
Store = Callable[[bytes, bytes, int], None]
"""Hands a reserved blob (id, compressed body, raw length) to the writer."""


class _Worker:
    def __init__(self, params: ReaderParams) -> None:
        mine, theirs = socket.socketpair()
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vaultwatch.engine.filereader", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        finally:
            theirs.close()
        self.conn = Connection(mine.detach())
        self.conn.send(params)

    def close(self) -> None:
        self.conn.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ReaderPool:
    """Worker processes for batches of small files; thread-safe (one batch per worker at once)."""

    def __init__(self, params: ReaderParams, workers: int) -> None:
        self._workers: list[_Worker] = []
        try:
            for _ in range(max(1, workers)):
                self._workers.append(_Worker(params))
        except OSError:
            self.close()
            raise
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        for w in self._workers:
            self._idle.put(w)

    def read_batch(self, paths: list[bytes], reserve: Reserve, store: Store) -> list[FileRead]:
        """Read, cut and hash the files; store their new chunks; each file's outcome.

        A file whose outcome has the error :data:`TOO_LARGE` grew since it
        was listed and is left to the caller.
        """
        worker = self._idle.get()
        try:
            try:
                worker.conn.send(("read", paths))
                answers: list[tuple[str, str, int, list[bytes]]] = worker.conn.recv()
                ids = [bid for _, _, _, content in answers for bid in content]
                new = reserve(ids) if ids else []
                wanted = [i for i, is_new in enumerate(new) if is_new]
                if wanted:
                    worker.conn.send(("take", wanted))
                    bodies: list[tuple[bytes, int]] = worker.conn.recv()
            except (EOFError, OSError) as exc:
                raise EngineError(f"a file reader process failed: {exc}") from None
            if wanted:
                for i, (body, size) in zip(wanted, bodies, strict=True):
                    store(ids[i], body, size)
        finally:
            self._idle.put(worker)
        return [
            FileRead(content, size, error, warning) for error, warning, size, content in answers
        ]

    def close(self) -> None:
        """End the worker processes."""
        for w in self._workers:
            w.close()

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LazyReaderPool:
    """A ReaderPool started only once a backup has enough small files to be worth it.

    Starting two interpreters costs about a second of CPU (and their
    shutdown waits for them): a continuous snapshot that reads a handful of
    changed files would spend more on the pool than on the files.
    """

    def __init__(self, params: ReaderParams, workers: int, after_files: int) -> None:
        self._params, self._workers, self.after_files = params, workers, after_files
        self._pool: ReaderPool | None = None
        self._failed = False
        self._lock = threading.Lock()

    def get(self, files_so_far: int) -> ReaderPool | None:
        """The pool once ``files_so_far`` small files were listed; None before (or if it cannot start)."""
        if files_so_far < self.after_files or self._failed:
            return None
        with self._lock:
            if self._pool is None and not self._failed:
                try:
                    self._pool = ReaderPool(self._params, self._workers)
                except OSError:  # the interpreter cannot be started (a sandbox, dropped privileges)
                    self._failed = True
            return self._pool

    def close(self) -> None:
        """End the worker processes, if they were started."""
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> LazyReaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    """Entry point of a worker process: serve on the inherited socket descriptor."""
    # Run as __main__, this module is a second copy: serve with the package's own, whose
    # classes are the ones the backup pickles.
    from vaultwatch.engine import filereader

    filereader.serve(Connection(int(sys.argv[1])))


if __name__ == "__main__":
    main()
