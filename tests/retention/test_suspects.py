"""Which unreferenced packs retention may announce, and what it keeps watching."""

from __future__ import annotations

from datetime import UTC, datetime

from vaultwatch.retention.suspects import SuspectGroup, Suspects

P1, P2, P3 = "1" * 64, "2" * 64, "3" * 64
NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def test_a_pack_seen_for_the_first_time_is_only_watched_with_every_lock_live() -> None:
    confirmed, after = Suspects().sift({P1}, {"locks/a"}, {"locks/b"})
    assert confirmed == set()
    assert after.groups == [SuspectGroup(frozenset({"locks/a", "locks/b"}), frozenset({P1}))]


def test_a_watched_pack_is_confirmed_once_its_locks_were_gone_before_the_manifests_were_read() -> (
    None
):
    watched = Suspects([SuspectGroup(frozenset({"locks/a"}), frozenset({P1, P2}))])
    # locks/a is gone at the start; locks/c (taken since) does not hold P1 back.
    confirmed, after = watched.sift({P1}, set(), {"locks/c"})
    assert confirmed == {P1}  # P2 got referenced by the manifest its backup stored
    assert after.groups == []


def test_a_lock_still_live_at_the_start_keeps_its_packs_watched() -> None:
    watched = Suspects([SuspectGroup(frozenset({"locks/a", "locks/b"}), frozenset({P1}))])
    confirmed, after = watched.sift({P1, P3}, {"locks/b"}, set())
    assert confirmed == set()
    assert after.groups == [
        SuspectGroup(frozenset({"locks/b"}), frozenset({P1})),
        SuspectGroup(frozenset({"locks/b"}), frozenset({P3})),
    ]


def test_the_object_round_trips_and_a_malformed_one_reads_as_nothing_watched() -> None:
    watched = Suspects([SuspectGroup(frozenset({"locks/a"}), frozenset({P1, P2}))])
    assert Suspects.from_json(watched.to_json(NOW)) == watched
    assert Suspects.from_json(b"{not json") == Suspects()
    assert Suspects.from_json(b'{"groups": [{"packs": ["../../etc"]}]}') == Suspects()
