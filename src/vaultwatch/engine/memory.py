"""Allocator and GIL tuning for the backup and restore pipelines.

The pipelines allocate and free many buffers of 64 KiB to 8 MiB from several
threads. glibc's default raises its mmap threshold after the first large
free, so later buffers come from per-thread heaps that fragment and are
rarely returned: peak memory doubled and page-fault time rose in our
benchmarks. Fixing the threshold at 128 KiB keeps large buffers in mmap,
returned to the system as soon as they are freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 128 * 1024

_done = False
_lock = threading.Lock()


def tune_allocator() -> bool:
    """Fix glibc's mmap threshold once per process; False where there is no glibc."""
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
        ok = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
            mallopt(_M_TRIM_THRESHOLD, 4 * _MMAP_THRESHOLD)
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
