"""Which snapshots a set's policy keeps: the default thinning, agent additions, holds, time trust."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from vaultwatch.catalog.models import BackupMode, BackupSet
from vaultwatch.engine.manifest import Manifest, Received
from vaultwatch.engine.retention import RetentionPolicy
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.retention.policy import SetPolicy, default_policy, is_held, judge, set_policy
from vaultwatch.retention.vault import trusted_time

START = datetime(2026, 11, 1, tzinfo=UTC)  # a Sunday: the last day of an ISO week


def _every(minutes: int, count: int, start: datetime = START) -> list[Snapshot]:
    return [
        Snapshot(start + timedelta(minutes=minutes * n), b"", ["/srv"], "db1", id=f"{n:064x}")
        for n in range(count)
    ]


def _policy(floor: dict[str, object], requested: dict[str, object] | None = None) -> SetPolicy:
    return SetPolicy(
        RetentionPolicy.from_document(floor),
        "operator",
        RetentionPolicy.from_document(requested) if requested else None,
    )


def test_the_continuous_default_thins_dense_history() -> None:
    snaps = _every(5, 3 * 24 * 12)  # every 5 minutes for three days, newest 11-03 23:55
    verdict = judge(snaps, SetPolicy(default_policy(BackupMode.CONTINUOUS), "default"), tz=UTC)
    kept = {s.time for s in verdict.keep}
    newest = snaps[-1].time
    # Everything of the last two hours...
    assert {s.time for s in snaps if s.time > newest - timedelta(hours=2)} <= kept
    # ...then the newest of each of 48 hours, and of each day (and ISO week) before that.
    hourly = {START + timedelta(hours=h, minutes=55) for h in range(24, 72)}
    assert hourly <= kept
    assert START + timedelta(hours=23, minutes=55) in kept  # day 1, and its ISO week
    assert len(kept) == 24 + 46 + 1
    assert len(verdict.remove) == len(snaps) - len(kept)


def test_the_agent_can_add_retention_but_never_take_it_away() -> None:
    snaps = _every(24 * 60, 10)  # one a day
    more = judge(snaps, _policy({"last": 1}, {"daily": 3}))
    assert [s.id for s in more.keep] == [s.id for s in reversed(snaps[-3:])]
    assert "daily snapshot (agent)" in more.reasons[snaps[-2].id]
    less = judge(snaps, _policy({"last": 5}, {"last": 1}))
    assert len(less.keep) == 5


def test_held_snapshots_are_kept_whatever_the_policy() -> None:
    snaps = _every(60, 5)
    verdict = judge(snaps, _policy({"last": 1}), held=[snaps[0].id, snaps[1].id])
    assert {s.id for s in verdict.keep} == {snaps[0].id, snaps[1].id, snaps[4].id}
    assert verdict.reasons[snaps[0].id] == ["held"]
    assert is_held(START, START + timedelta(hours=1), [START + timedelta(minutes=1)])
    assert is_held(START + timedelta(hours=2), START, [START + timedelta(minutes=1)])
    assert not is_held(START + timedelta(hours=2), START + timedelta(hours=2), [START])


def test_a_claimed_time_far_from_the_gateways_stamp_is_not_believed() -> None:
    def manifest(claimed: datetime) -> Manifest:
        return Manifest(
            "ab" * 32, claimed, "db1", ["/srv"], [], [], received=Received("a", "db1", START)
        )

    assert trusted_time(manifest(START - timedelta(minutes=30))) == START - timedelta(minutes=30)
    assert trusted_time(manifest(START - timedelta(days=400))) == START  # into last year's slot
    assert trusted_time(manifest(START + timedelta(days=1))) == START  # the future
    unstamped = Manifest("ab" * 32, START - timedelta(days=9), "db1", [], [], [])
    assert trusted_time(unstamped) == START - timedelta(days=9)


def test_a_set_gets_the_operator_policy_or_its_modes_default() -> None:
    row = BackupSet(id=uuid.uuid4(), name="db", mode=BackupMode.SCHEDULED, retention={})
    assert set_policy(row).source == "default"
    assert set_policy(row).floor == default_policy(BackupMode.SCHEDULED)
    row.operator_retention = {"daily": 7}
    assert set_policy(row).source == "operator" and set_policy(row).floor.daily == 7
    row.operator_retention = {"daily": "lots"}  # never written by the service; still harmless
    assert set_policy(row).source == "default"
    row.retention = {"weekly": 4}
    requested = set_policy(row).requested
    assert requested is not None and requested.weekly == 4
