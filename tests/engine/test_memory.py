"""Pipeline tuning: per-thread read buffers and the collector's thresholds."""

from __future__ import annotations

import gc
import threading

from vaultwatch.engine.memory import ThreadBuffers, rare_young_collections


def test_a_thread_gets_its_buffer_back() -> None:
    buffers = ThreadBuffers(min_size=1024, keep_up_to=4096)
    first = buffers.take(100)
    assert len(first) == 1024  # at least the minimum, so later larger reads fit
    buffers.give_back(first)
    again = buffers.take(1000)
    assert again.obj is first.obj  # the same memory, not a fresh allocation


def test_nested_readers_never_share_a_buffer() -> None:
    buffers = ThreadBuffers(min_size=1024, keep_up_to=4096)
    outer = buffers.take(100)
    inner = buffers.take(100)
    assert inner.obj is not outer.obj


def test_threads_have_their_own_buffers() -> None:
    buffers = ThreadBuffers(min_size=1024, keep_up_to=4096)
    mine = buffers.take(10)
    buffers.give_back(mine)
    theirs: list[memoryview] = []
    worker = threading.Thread(target=lambda: theirs.append(buffers.take(10)))
    worker.start()
    worker.join()
    assert theirs[0].obj is not mine.obj


def test_larger_reads_get_larger_buffers_and_huge_ones_are_not_kept() -> None:
    buffers = ThreadBuffers(min_size=1024, keep_up_to=4096)
    buffers.give_back(buffers.take(10))
    big = buffers.take(3000)
    assert len(big) >= 3000
    buffers.give_back(big)
    assert buffers.take(10).obj is big.obj
    huge = buffers.take(10_000)
    buffers.give_back(huge)
    assert buffers.take(10).obj is not huge.obj  # not held for the thread's lifetime


def test_young_collections_are_rarer_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with rare_young_collections(True, 50_000):
        assert gc.isenabled()  # cycles are still collected, only less often
        assert gc.get_threshold() == (50_000, *before[1:])
    assert gc.get_threshold() == before
    with rare_young_collections(False, 50_000):
        assert gc.get_threshold() == before  # a remote store keeps the defaults
