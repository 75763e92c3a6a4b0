"""Exponential backoff: the bound doubles to its cap; full jitter draws below it."""

from __future__ import annotations

import random

from vaultwatch.backoff import backoff_bound, full_jitter


def test_bound_doubles_from_initial_up_to_the_cap() -> None:
    assert [backoff_bound(n, 0.5, 10.0) for n in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert backoff_bound(-3, 0.5, 10.0) == 0.5  # before the first attempt: the initial wait
    assert backoff_bound(10**9, 0.5, 10.0) == 10.0  # no overflow, however long the outage


def test_full_jitter_is_the_draw_times_the_bound() -> None:
    assert full_jitter(3, 1.0, 60.0, lambda: 0.5) == 4.0
    assert full_jitter(3, 1.0, 60.0, lambda: 0.0) == 0.0
    assert full_jitter(3, 1.0, 60.0, lambda: 0.0, minimum=0.05) == 0.05
    assert full_jitter(9, 1.0, 60.0, lambda: 0.99) == 0.99 * 60


def test_full_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(3)
    delays = [full_jitter(20, 0.5, 8.0, rng.random) for _ in range(500)]
    assert all(0 <= d < 8.0 for d in delays)
    assert min(delays) < 1.0 and max(delays) > 7.0
