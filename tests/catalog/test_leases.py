"""Leases: one holder at a time, takeover after expiry, races decided by the database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.leases import (
    acquire_lease,
    current_holder,
    get_lease,
    release_lease,
    renew_lease,
)

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)
DUTY = "soc.monitors"


def _acquire(
    catalog: Catalog, holder: str, now: datetime | None = T0, ttl: timedelta = TTL
) -> bool:
    with catalog.session() as session:
        return acquire_lease(session, DUTY, holder, ttl, now=now)


def test_first_acquire_wins_and_others_are_refused(catalog: Catalog) -> None:
    assert _acquire(catalog, "node-a")
    assert not _acquire(catalog, "node-b")
    assert not _acquire(catalog, "node-b", T0 + TTL - timedelta(microseconds=1))
    with catalog.session() as session:
        lease = get_lease(session, DUTY)
        assert lease is not None
        assert (lease.holder, lease.acquired_at, lease.expires_at, lease.epoch) == (
            "node-a",
            T0,
            T0 + TTL,
            1,
        )
        assert current_holder(session, DUTY, now=T0) == "node-a"
        assert get_lease(session, "other.duty") is None


def test_holder_reacquiring_extends_without_changing_epoch(catalog: Catalog) -> None:
    assert _acquire(catalog, "node-a")
    assert _acquire(catalog, "node-a", T0 + timedelta(seconds=20))
    with catalog.session() as session:
        lease = get_lease(session, DUTY)
        assert lease is not None
        assert lease.expires_at == T0 + timedelta(seconds=50)
        assert lease.acquired_at == T0 and lease.epoch == 1


def test_standby_takes_over_after_expiry(catalog: Catalog) -> None:
    assert _acquire(catalog, "node-a")
    expired = T0 + TTL
    assert _acquire(catalog, "node-b", expired)
    with catalog.session() as session:
        lease = get_lease(session, DUTY)
        assert lease is not None
        assert (lease.holder, lease.acquired_at, lease.epoch) == ("node-b", expired, 2)
        # The old holder learns it lost the lease and cannot renew it back.
        assert not renew_lease(session, DUTY, "node-a", TTL, now=expired)
        assert current_holder(session, DUTY, now=expired) == "node-b"
    assert not _acquire(catalog, "node-a", expired + timedelta(seconds=1))


def test_renew_only_while_held(catalog: Catalog) -> None:
    assert _acquire(catalog, "node-a")
    with catalog.session() as session:
        assert renew_lease(session, DUTY, "node-a", TTL, now=T0 + timedelta(seconds=10))
        assert not renew_lease(session, DUTY, "node-b", TTL, now=T0 + timedelta(seconds=10))
        assert not renew_lease(session, "never.taken", "node-a", TTL, now=T0)
        lease = get_lease(session, DUTY)
        assert lease is not None and lease.expires_at == T0 + timedelta(seconds=40)
        # Expired, even if nobody took it: the holder must stop and acquire again.
        assert not renew_lease(session, DUTY, "node-a", TTL, now=T0 + timedelta(seconds=40))
        assert current_holder(session, DUTY, now=T0 + timedelta(seconds=40)) is None


def test_release_frees_the_lease_at_once(catalog: Catalog) -> None:
    assert _acquire(catalog, "node-a")
    with catalog.session() as session:
        assert not release_lease(session, DUTY, "node-b", now=T0 + timedelta(seconds=1))
        assert release_lease(session, DUTY, "node-a", now=T0 + timedelta(seconds=1))
        assert current_holder(session, DUTY, now=T0 + timedelta(seconds=1)) is None
    assert _acquire(catalog, "node-b", T0 + timedelta(seconds=1))
    with catalog.session() as session:
        lease = get_lease(session, DUTY)
        assert lease is not None and (lease.holder, lease.epoch) == ("node-b", 2)


def test_uncommitted_lease_counts_for_nobody(catalog: Catalog) -> None:
    with pytest.raises(RuntimeError), catalog.session() as session:
        assert acquire_lease(session, DUTY, "node-a", TTL, now=T0)
        raise RuntimeError("crash before commit")
    assert _acquire(catalog, "node-b")


def test_database_clock_drives_expiry(catalog: Catalog) -> None:
    short = timedelta(milliseconds=400)
    assert _acquire(catalog, "node-a", now=None, ttl=short)
    assert not _acquire(catalog, "node-b", now=None, ttl=short)
    time.sleep(0.6)
    assert _acquire(catalog, "node-b", now=None, ttl=short)
    with catalog.session() as session:
        lease = get_lease(session, DUTY)
        assert lease is not None and lease.holder == "node-b"
        assert abs(lease.acquired_at - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("name", "holder", "ttl"),
    [("", "a", TTL), ("x" * 201, "a", TTL), ("d", "", TTL), ("d", "a", timedelta(0))],
)
def test_bad_arguments_are_refused(
    catalog: Catalog, name: str, holder: str, ttl: timedelta
) -> None:
    with pytest.raises(ValidationError), catalog.session() as session:
        acquire_lease(session, name, holder, ttl, now=T0)


def _race(catalog: Catalog, contenders: int, attempt: Callable[[str], bool]) -> list[str]:
    barrier = threading.Barrier(contenders)
    winners: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(holder: str) -> None:
        barrier.wait()
        try:
            won = attempt(holder)
        except BaseException as exc:
            with lock:
                failures.append(exc)
            return
        if won:
            with lock:
                winners.append(holder)

    workers = [threading.Thread(target=run, args=(f"node-{n}",)) for n in range(contenders)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    return winners


def test_concurrent_first_acquire_has_exactly_one_winner(catalog: Catalog) -> None:
    winners = _race(catalog, 8, lambda holder: _acquire(catalog, holder))
    assert len(winners) == 1
    with catalog.session() as session:
        lease = get_lease(session, DUTY)
        assert lease is not None and lease.holder == winners[0] and lease.epoch == 1


def test_concurrent_takeover_of_an_expired_lease_has_exactly_one_winner(
    catalog: Catalog,
) -> None:
    assert _acquire(catalog, "old-primary")
    later = T0 + timedelta(minutes=5)
    winners = _race(catalog, 8, lambda holder: _acquire(catalog, holder, later))
    assert len(winners) == 1
    with catalog.session() as session:
        lease = get_lease(session, DUTY)
        assert lease is not None
        assert (lease.holder, lease.epoch) == (winners[0], 2)


def test_repeated_races_never_produce_two_holders(catalog: Catalog) -> None:
    """Each round the lease expires and four nodes race for it; every round one wins.

    The last holder takes part too; when it wins again it keeps its lease and
    epoch, so the epoch counts exactly the rounds won by another node.
    """
    holder, takeovers = "", 0
    for round_number in range(10):
        now = T0 + round_number * (TTL + timedelta(seconds=1))

        def attempt(holder: str, now: datetime = now) -> bool:
            return _acquire(catalog, holder, now)

        winners = _race(catalog, 4, attempt)
        assert len(winners) == 1, f"round {round_number}: {winners}"
        if holder and winners[0] != holder:
            takeovers += 1
        holder = winners[0]
    with catalog.session() as session:
        lease = get_lease(session, DUTY)
        assert lease is not None
        assert (lease.holder, lease.epoch) == (holder, 1 + takeovers)
