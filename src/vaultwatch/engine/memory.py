"""Allocator, buffer, garbage collector and GIL tuning for the backup and restore pipelines.

The pipelines allocate and free many buffers of 8 KiB to 8 MiB from several
threads. glibc's default raises its mmap threshold after the first large
free, so later buffers come from per-thread heaps that fragment and are
rarely returned: peak memory doubled in our benchmarks. The threshold is
therefore fixed, at 1 MiB: chunks (at most 256 KiB), their compressed copies
and small files come from the heap and are reused, while packs and read
buffers stay in mmap, returned as soon as they are freed. At 128 KiB every
chunk above it was a fresh mapping, page-faulted in again: 334,000 faults
and a third of the first backup's system time. Two arenas instead of one
per thread keep freed heap memory shared by the threads, so the heap does
not grow per thread (peak RSS 118-125 MiB against 120-128 MiB before).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 1024 * 1024
_ARENAS = 2

_done = False
_lock = threading.Lock()


def tune_allocator() -> bool:
    """Fix glibc's mmap threshold and arena count once per process; False without glibc."""
    global _done
    with _lock:
        if _done:
            return True
        name = ctypes.util.find_library("c")
        if name is None:
            return False
        try:
            libc = ctypes.CDLL(name)
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        ok = (
            bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))
            and bool(mallopt(_M_TRIM_THRESHOLD, 4 * _MMAP_THRESHOLD))
            and bool(mallopt(_M_ARENA_MAX, _ARENAS))
        )
        _done = ok
        return ok


@contextmanager
def short_gil_slices(interval: float = 0.0005) -> Iterator[None]:
    """Hand the GIL over more often while a pipeline runs.

    Reader threads wake from system calls and must wait for the GIL; with the
    default 5 ms slice a thread busy in Python keeps them idle that long each
    time (a 12 % slower backup in our measurements).
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, interval))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@contextmanager
def rare_young_collections(enabled: bool, threshold: int = 100_000) -> Iterator[None]:
    """Run the cyclic collector's young generation every 100,000 allocations, not 700.

    A backup allocates nodes, tuples and lists by the hundred thousand, nearly
    all freed by reference counting or kept to the end; every 700 the
    collector walked the young ones again (first backup 4.2-4.3 s with it
    paused against 4.5-4.8 s, four alternating pairs). Only when ``enabled``,
    for a store whose calls leave no reference cycles (``leaves_no_cycles``):
    an HTTP request stays in a reference cycle of the client library with its
    body, so a backup through the gateway with rare (or no) young collections
    held every pack it sent: 235 MiB peak instead of 126.
    """
    if not enabled:
        yield
        return
    previous = gc.get_threshold()
    gc.set_threshold(threshold, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


class ThreadBuffers:
    """One reusable buffer per thread, for reads that are consumed before the next one.

    A restore reads every pack span into fresh memory otherwise: with large
    buffers served by mmap, each read page-faults its pages in again (135,000
    faults for the 1 GiB benchmark's 530 MiB of packs).
    """

    def __init__(self, min_size: int, keep_up_to: int) -> None:
        self._local = threading.local()
        self._min_size = min_size
        self._keep_up_to = keep_up_to

    def take(self, size: int) -> memoryview:
        """A buffer of at least ``size`` bytes, this thread's own until given back."""
        buffer: memoryview | None = getattr(self._local, "buffer", None)
        self._local.buffer = None  # a nested reader in this thread gets a buffer of its own
        if buffer is None or len(buffer) < size:
            buffer = memoryview(bytearray(max(size, self._min_size)))
        return buffer

    def give_back(self, buffer: memoryview) -> None:
        """Keep the buffer for this thread's next read, unless it is unusually large."""
        if len(buffer) <= self._keep_up_to:
            self._local.buffer = buffer
