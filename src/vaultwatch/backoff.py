"""Waiting between retries: one definition of exponential backoff, with and without jitter.

The bound doubles from ``initial`` with each attempt up to ``maximum``. Clients
of the gateways (agents, their vault store) draw each wait uniformly below
that bound ("full jitter"), so a fleet that lost the same gateway does not
come back at the same moment; a single queue worker may wait the bound itself.
"""

from __future__ import annotations

from collections.abc import Callable

_MAX_DOUBLINGS = 30  # far beyond any cap, and 2**30 keeps the float finite


def backoff_bound(attempt: int, initial: float, maximum: float) -> float:
    """``initial * 2**attempt`` (attempt 0 first), capped at ``maximum``."""
    return float(min(maximum, initial * (2 ** min(max(attempt, 0), _MAX_DOUBLINGS))))


def full_jitter(
    attempt: int,
    initial: float,
    maximum: float,
    draw: Callable[[], float],
    *,
    minimum: float = 0.0,
) -> float:
    """A wait uniform in [0, bound): ``draw()`` (in [0, 1)) times the bound, at least ``minimum``."""
    return float(max(minimum, backoff_bound(attempt, initial, maximum) * draw()))
