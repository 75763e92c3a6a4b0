"""The forget policy: restic's keep rules, their edge cases and their invariants."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.maint_helpers import make_repo, snapshot_files
from vaultwatch.engine.errors import PolicyError, RepositoryLockedError, SnapshotNotFoundError
from vaultwatch.engine.retention import (
    Duration,
    GroupKey,
    RetentionPolicy,
    apply_policy,
    forget,
    forget_snapshots,
    parse_duration,
    plan_forget,
    select_snapshots,
)
from vaultwatch.engine.snapshot import Snapshot

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def snap(
    time: datetime,
    *,
    host: str = "h",
    paths: tuple[str, ...] = ("/data",),
    tags: tuple[str, ...] = (),
    n: int = 0,
) -> Snapshot:
    s = Snapshot(time, b"\0" * 32, list(paths), host, "u", list(tags))
    s.id = hashlib.sha256(f"{time.isoformat()}|{host}|{paths}|{tags}|{n}".encode()).hexdigest()
    return s


def kept_times(snaps: list[Snapshot], policy: RetentionPolicy) -> list[str]:
    result = apply_policy(snaps, policy, tz=UTC)
    return [s.time.strftime("%Y-%m-%d %H:%M") for s in result.keep]


# -- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1y2mo3d4h", Duration(1, 2, 3, 4)),
        ("2w", Duration(days=14)),
        ("4h", Duration(hours=4)),
        ("3d1y", Duration(years=1, days=3)),
        (" 10d ", Duration(days=10)),
        ("0d", Duration()),
    ],
)
def test_parse_duration(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("5", "has no unit"),
        ("5x", "unknown unit 'x'"),
        ("1d2d", "appears more than once"),
        ("-1d", "must not be negative"),
        ("d", "expected a number"),
        ("1.5d", "whole numbers"),
        ("2m", "ambiguous here; write 'mo' for months"),
    ],
)
def test_parse_duration_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_duration(text)


def test_duration_before_uses_the_calendar() -> None:
    t = datetime(2024, 3, 31, 12, tzinfo=UTC)
    assert Duration(months=1).before(t, UTC) == datetime(2024, 2, 29, 12, tzinfo=UTC)
    assert Duration(years=1, months=1).before(t, UTC) == datetime(2023, 2, 28, 12, tzinfo=UTC)
    assert Duration(days=1, hours=13).before(t, UTC) == datetime(2024, 3, 29, 23, tzinfo=UTC)
    assert str(Duration(1, 0, 3, 0)) == "1y3d"


# -- policy validation -----------------------------------------------------------------------


def test_an_empty_policy_is_refused() -> None:
    with pytest.raises(PolicyError, match="empty policy"):
        RetentionPolicy().validate()
    with pytest.raises(PolicyError, match="empty policy"):
        apply_policy([snap(T0)], RetentionPolicy())
    with pytest.raises(PolicyError, match="empty policy"):
        RetentionPolicy.from_options(last=0, daily=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"last": -2}, "keep-last must be a count"),
        ({"last": 1, "group_by": "host,color"}, "cannot group by 'color'"),
        ({"within": "0d"}, "longer than zero"),
        ({"keep_tags": [" , "]}, "names no tag"),
        ({"within": "2m"}, "'m' is ambiguous here"),
    ],
)
def test_policy_options_are_validated(options: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        RetentionPolicy.from_options(**options)  # type: ignore[arg-type]


def test_from_options_and_describe() -> None:
    p = RetentionPolicy.from_options(
        last=3, daily=-1, within="1mo", keep_tags=["a,b", "c"], group_by="host"
    )
    assert p.tags == (frozenset({"a", "b"}), frozenset({"c"}))
    assert p.group_by == ("host",)
    assert p.describe() == "keep last 3, daily all, within 1mo, tagged a,b, tagged c"


# -- the rules -------------------------------------------------------------------------------


def test_keep_last_keeps_the_newest() -> None:
    snaps = [snap(T0 + timedelta(hours=i)) for i in range(6)]
    result = apply_policy(snaps, RetentionPolicy(last=2), tz=UTC)
    assert [s.time for s in result.keep] == [snaps[5].time, snaps[4].time]
    assert len(result.remove) == 4
    assert result.reasons[snaps[5].id] == ["last snapshot"]


def test_keep_daily_keeps_the_newest_of_each_day_with_snapshots() -> None:
    # two snapshots a day on days 0, 1, 2, then nothing until day 10
    times = [T0 + timedelta(days=d, hours=h) for d in (0, 1, 2, 10) for h in (9, 18)]
    snaps = [snap(t) for t in times]
    assert kept_times(snaps, RetentionPolicy(daily=3)) == [
        "2024-01-11 18:00",
        "2024-01-03 18:00",
        "2024-01-02 18:00",
    ]


def test_keep_hourly_weekly_monthly_yearly() -> None:
    times = [
        datetime(2022, 6, 1, tzinfo=UTC),
        datetime(2023, 12, 31, 23, tzinfo=UTC),  # ISO week 52 of 2023
        datetime(2024, 1, 1, 1, tzinfo=UTC),  # ISO week 1 of 2024 (a Monday)
        datetime(2024, 1, 7, 8, tzinfo=UTC),  # still week 1
        datetime(2024, 1, 7, 8, 30, tzinfo=UTC),
        datetime(2024, 2, 3, tzinfo=UTC),
    ]
    snaps = [snap(t) for t in times]
    assert kept_times(snaps, RetentionPolicy(hourly=2)) == ["2024-02-03 00:00", "2024-01-07 08:30"]
    assert kept_times(snaps, RetentionPolicy(weekly=3)) == [
        "2024-02-03 00:00",
        "2024-01-07 08:30",
        "2023-12-31 23:00",
    ]
    assert kept_times(snaps, RetentionPolicy(monthly=3)) == [
        "2024-02-03 00:00",
        "2024-01-07 08:30",
        "2023-12-31 23:00",
    ]
    assert kept_times(snaps, RetentionPolicy(yearly=5)) == [
        "2024-02-03 00:00",
        "2023-12-31 23:00",
        "2022-06-01 00:00",
    ]


def test_buckets_follow_the_local_time_of_each_snapshot() -> None:
    late = snap(datetime(2024, 5, 1, 23, 30, tzinfo=UTC))
    early = snap(datetime(2024, 5, 2, 0, 30, tzinfo=UTC))
    policy = RetentionPolicy(daily=5)
    assert len(apply_policy([late, early], policy, tz=UTC).keep) == 2
    # two hours east both are on May 2nd: one day, one snapshot kept
    plus2 = timezone(timedelta(hours=2))
    assert [s.id for s in apply_policy([late, early], policy, tz=plus2).keep] == [early.id]


def test_unlimited_count_keeps_one_per_bucket_forever() -> None:
    snaps = [snap(T0 + timedelta(days=d, hours=h)) for d in range(40) for h in (1, 2)]
    result = apply_policy(snaps, RetentionPolicy(daily=-1), tz=UTC)
    assert len(result.keep) == 40
    assert all(s.time.hour == 2 for s in result.keep)


def test_keep_within_counts_back_from_the_newest_snapshot_not_from_now() -> None:
    old = datetime(2020, 6, 15, tzinfo=UTC)
    snaps = [snap(old - timedelta(days=d)) for d in range(10)]
    result = apply_policy(snaps, RetentionPolicy(within=parse_duration("3d")), tz=UTC)
    # strictly newer than newest - 3 days: days 0, 1, 2
    assert [s.time for s in result.keep] == [old - timedelta(days=d) for d in range(3)]
    assert result.reasons[result.keep[0].id] == ["within 3d"]


def test_keep_tag_needs_every_tag_of_a_set() -> None:
    a = snap(T0, tags=("daily", "db"))
    b = snap(T0 + timedelta(hours=1), tags=("db",))
    c = snap(T0 + timedelta(hours=2), tags=("web",))
    policy = RetentionPolicy.from_options(keep_tags=["daily,db"])
    result = apply_policy([a, b, c], policy, tz=UTC)
    assert [s.id for s in result.keep] == [a.id]
    assert result.reasons[a.id] == ["tagged daily,db"]


def test_reasons_collect_every_rule_that_kept_a_snapshot() -> None:
    snaps = [snap(T0 + timedelta(days=d)) for d in range(3)]
    result = apply_policy(snaps, RetentionPolicy(last=1, daily=2, monthly=1), tz=UTC)
    assert result.reasons[snaps[2].id] == ["last snapshot", "daily snapshot", "monthly snapshot"]
    assert result.reasons[snaps[1].id] == ["daily snapshot"]
    assert [s.id for s in result.remove] == [snaps[0].id]


def test_groups_by_host_and_paths_by_default() -> None:
    snaps = [
        snap(T0, host="a"),
        snap(T0 + timedelta(hours=1), host="a"),
        snap(T0, host="b"),
        snap(T0 + timedelta(hours=2), host="a", paths=("/etc",)),
    ]
    groups = plan_forget(snaps, RetentionPolicy(last=1), tz=UTC)
    assert {g.key: len(g.keep) for g in groups} == {
        GroupKey("a", ("/data",)): 1,
        GroupKey("a", ("/etc",)): 1,
        GroupKey("b", ("/data",)): 1,
    }
    everything = plan_forget(snaps, RetentionPolicy(last=1, group_by=()), tz=UTC)
    assert len(everything) == 1
    assert [s.id for s in everything[0].keep] == [snaps[3].id]
    by_tags = plan_forget(snaps, RetentionPolicy(last=1, group_by=("tags",)), tz=UTC)
    assert by_tags[0].key == GroupKey(None, None, ())


def test_select_snapshots() -> None:
    a = snap(T0, host="a", paths=("/x", "/y"), tags=("t1", "t2"))
    b = snap(T0, host="b", paths=("/x",), tags=("t1",))
    assert select_snapshots([a, b], hosts=["a"]) == [a]
    assert select_snapshots([a, b], paths=["/y"]) == [a]
    assert select_snapshots([a, b], tags=["t1,t2"]) == [a]
    assert select_snapshots([a, b], tags=["t1"]) == [a, b]


# -- invariants ------------------------------------------------------------------------------

counts = st.sampled_from([-1, 0, 0, 1, 2, 3, 5])


@st.composite
def policies(draw: st.DrawFn) -> RetentionPolicy:
    within = draw(
        st.none()
        | st.builds(
            Duration,
            st.integers(0, 1),
            st.integers(0, 3),
            st.integers(0, 10),
            st.integers(0, 30),
        ).filter(lambda d: not d.is_zero)
    )
    policy = RetentionPolicy(
        last=draw(counts),
        hourly=draw(counts),
        daily=draw(counts),
        weekly=draw(counts),
        monthly=draw(counts),
        yearly=draw(counts),
        within=within,
        tags=tuple(
            draw(st.lists(st.sampled_from([frozenset({"a"}), frozenset({"a", "b"})]), max_size=1))
        ),
        group_by=draw(st.sampled_from([("host", "paths"), ("host",), ()])),
    )
    # a rule other than tags: only then must the newest snapshot survive
    counted = [
        policy.last,
        policy.hourly,
        policy.daily,
        policy.weekly,
        policy.monthly,
        policy.yearly,
    ]
    if all(c == 0 for c in counted) and within is None:
        policy = RetentionPolicy(last=1, tags=policy.tags, group_by=policy.group_by)
    return policy


@st.composite
def snapshot_lists(draw: st.DrawFn) -> list[Snapshot]:
    offsets = draw(st.lists(st.integers(0, 3 * 365 * 24 * 60), min_size=1, max_size=40))
    out = []
    for i, minutes in enumerate(offsets):
        out.append(
            snap(
                T0 + timedelta(minutes=minutes),
                host=draw(st.sampled_from(["a", "b"])),
                paths=draw(st.sampled_from([("/data",), ("/etc",)])),
                tags=tuple(draw(st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True))),
                n=i,
            )
        )
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot_lists(), policies())
def test_policy_invariants(snaps: list[Snapshot], policy: RetentionPolicy) -> None:
    groups = plan_forget(snaps, policy, tz=UTC)
    kept = [s.id for g in groups for s in g.keep]
    removed = [s.id for g in groups for s in g.remove]
    # kept and removed partition the snapshots
    assert sorted(kept + removed) == sorted(s.id for s in snaps)
    assert not set(kept) & set(removed)
    for g in groups:
        members = sorted(g.keep + g.remove, key=lambda s: (s.time, s.id), reverse=True)
        keep_ids = {s.id for s in g.keep}
        # every kept snapshot has a reason, no removed one has
        assert set(g.reasons) == keep_ids
        assert all(g.reasons[i] for i in keep_ids)
        # the newest snapshot of a group is never removed
        assert members[0].id in keep_ids
        # keep-last N keeps the N newest
        n = len(members) if policy.last == -1 else policy.last
        assert {s.id for s in members[:n]} <= keep_ids
        # keep-within keeps everything inside the window
        if policy.within is not None:
            edge = policy.within.before(members[0].time, UTC)
            assert {s.id for s in members if s.time > edge} <= keep_ids
        # tagged snapshots stay
        for s in members:
            if any(t <= set(s.tags) for t in policy.tags):
                assert s.id in keep_ids
        # applying the policy to what it kept keeps all of it (forget twice = forget once)
        again = apply_policy(g.keep, policy, key=g.key, tz=UTC)
        assert not again.remove


# -- forget on a repository ------------------------------------------------------------------


def test_forget_deletes_what_the_policy_does_not_keep(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    made = [
        snapshot_files(repo, {"/data/f": f"v{i}".encode()}, time=T0 + timedelta(days=i))
        for i in range(5)
    ]
    result = forget(repo, RetentionPolicy(last=2), tz=UTC)
    assert sorted(result.removed) == sorted(s.id for s in made[:3])
    assert sorted(result.kept) == sorted(s.id for s in made[3:])
    assert sorted(repo.snapshot_ids()) == sorted(s.id for s in made[3:])
    doc = result.to_dict()
    assert doc["groups"][0]["reasons"][0]["matches"] == ["last snapshot"]
    assert not list(repo.store.list("locks/"))


def test_forget_dry_run_deletes_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for i in range(3):
        snapshot_files(repo, {"/data/f": f"v{i}".encode()}, time=T0 + timedelta(days=i))
    before = sorted(repo.snapshot_ids())
    result = forget(repo, RetentionPolicy(last=1), dry_run=True)
    assert result.dry_run and result.removed == []
    assert sum(len(g.remove) for g in result.groups) == 2
    assert sorted(repo.snapshot_ids()) == before


def test_forget_refuses_an_empty_policy_and_deletes_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    snapshot_files(repo, {"/data/f": b"x"})
    with pytest.raises(PolicyError):
        forget(repo, RetentionPolicy())
    assert len(repo.snapshot_ids()) == 1


def test_forget_filters_and_groups(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    a = [
        snapshot_files(
            repo, {"/data/f": f"a{i}".encode()}, time=T0 + timedelta(days=i), hostname="a"
        )
        for i in range(3)
    ]
    b = [
        snapshot_files(
            repo, {"/data/f": f"b{i}".encode()}, time=T0 + timedelta(days=i), hostname="b"
        )
        for i in range(3)
    ]
    result = forget(repo, RetentionPolicy(last=1), hosts=["a"])
    assert sorted(result.removed) == sorted(s.id for s in a[:2])
    assert set(repo.snapshot_ids()) == {a[2].id, *(s.id for s in b)}


def test_forget_fails_while_someone_else_holds_a_lock(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    snapshot_files(repo, {"/data/f": b"1"}, time=T0)
    snapshot_files(repo, {"/data/f": b"2"}, time=T0 + timedelta(hours=1))
    with repo.lock(exclusive=False, purpose="backup"), pytest.raises(RepositoryLockedError):
        forget(repo, RetentionPolicy(last=1))
    assert len(repo.snapshot_ids()) == 2


def test_forget_snapshots_by_prefix(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    s1 = snapshot_files(repo, {"/data/f": b"1"})
    s2 = snapshot_files(repo, {"/data/f": b"2"})
    assert forget_snapshots(repo, [s1.id[:8]], dry_run=True) == [s1.id]
    assert len(repo.snapshot_ids()) == 2
    assert forget_snapshots(repo, [s1.id[:8], s1.id]) == [s1.id]
    assert repo.snapshot_ids() == [s2.id]
    with pytest.raises(SnapshotNotFoundError):
        forget_snapshots(repo, ["abcdef"])
    with pytest.raises(PolicyError):
        forget_snapshots(repo, [])
