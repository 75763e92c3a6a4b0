"""The forget policy: which snapshots to keep, with restic's semantics.

Snapshots are grouped (by host and paths unless told otherwise) and each
group is judged on its own, newest first:

- ``last`` N keeps the N newest snapshots;
- ``hourly``/``daily``/``weekly``/``monthly``/``yearly`` N keep the newest
  snapshot of each of the N newest hours/days/ISO weeks/months/years that
  *have* a snapshot (local time of each snapshot), so a machine that was off
  for a month does not lose its history;
- ``within`` keeps everything newer than the duration before the group's
  newest snapshot (not before now: a host that stopped backing up keeps it);
- ``tags`` keeps every snapshot carrying all tags of any listed tag set.

A count of -1 means unlimited. A policy without any rule is refused:
forgetting is the only destructive command, and an empty policy would
remove everything.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from vaultwatch.durations import DurationError, parse_calendar
from vaultwatch.engine.errors import PolicyError
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.store.errors import ObjectNotFoundError

GROUP_FIELDS = ("host", "paths", "tags")
#: The keys of a policy document (``RetentionPolicy.from_document``).
DOCUMENT_KEYS = ("within", "last", "hourly", "daily", "weekly", "monthly", "yearly")


@dataclass(frozen=True)
class Duration:
    """A calendar duration (years and months vary in length, so they are not seconds)."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @property
    def is_zero(self) -> bool:
        """True when every part is zero."""
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:
        parts = [(self.years, "y"), (self.months, "mo"), (self.days, "d"), (self.hours, "h")]
        return "".join(f"{n}{u}" for n, u in parts if n) or "0h"

    def before(self, moment: datetime, tz: tzinfo | None = None) -> datetime:
        """``moment`` minus this duration, on the local calendar (the 31st clamps to month end)."""
        local = moment.astimezone(tz)
        month_index = local.year * 12 + (local.month - 1) - self.years * 12 - self.months
        year, month = divmod(month_index, 12)
        month += 1
        if year < 1:
            return datetime.min.replace(tzinfo=local.tzinfo)
        day = min(local.day, calendar.monthrange(year, month)[1])
        shifted = local.replace(year=year, month=month, day=day)
        try:
            return shifted - timedelta(days=self.days, hours=self.hours)
        except OverflowError:
            return datetime.min.replace(tzinfo=local.tzinfo)


def parse_duration(text: str) -> Duration:
    """Parse ``1y2mo3d4h``: the product's calendar durations (see vaultwatch.durations)."""
    try:
        parts = parse_calendar(text)
    except DurationError as exc:
        raise PolicyError(f"duration {exc}") from None
    return Duration(parts.years, parts.months, parts.days, parts.hours)


@dataclass(frozen=True)
class RetentionPolicy:
    """What to keep. Counts of 0 are off, -1 is unlimited."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration | None = None
    tags: tuple[frozenset[str], ...] = ()
    group_by: tuple[str, ...] = ("host", "paths")

    @classmethod
    def from_options(
        cls,
        *,
        last: int = 0,
        hourly: int = 0,
        daily: int = 0,
        weekly: int = 0,
        monthly: int = 0,
        yearly: int = 0,
        within: str | None = None,
        keep_tags: Iterable[str] = (),
        group_by: str | Sequence[str] = ("host", "paths"),
    ) -> RetentionPolicy:
        """Build from CLI-style options: ``within`` as text, tag sets as ``"a,b"``, group_by as ``"host,paths"``."""
        if isinstance(group_by, str):
            group_by = [g.strip() for g in group_by.split(",") if g.strip()]
        tag_sets = []
        for spec in keep_tags:
            tags = frozenset(t.strip() for t in spec.split(",") if t.strip())
            if not tags:
                raise PolicyError(f"keep-tag {spec!r} names no tag")
            tag_sets.append(tags)
        policy = cls(
            last=last,
            hourly=hourly,
            daily=daily,
            weekly=weekly,
            monthly=monthly,
            yearly=yearly,
            within=parse_duration(within) if within is not None else None,
            tags=tuple(tag_sets),
            group_by=tuple(group_by),
        )
        policy.validate()
        return policy

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], *, where: str = "retention") -> RetentionPolicy:
        """Build from a stored or configured document ``{"within": "2d", "daily": 7, ...}``.

        The document form of a policy (agent configuration, catalog, API):
        the keys of ``DOCUMENT_KEYS``, counts as whole numbers (-1 unlimited).
        Grouping is left to the caller (the service judges each backup set alone).
        """
        if not isinstance(doc, Mapping):
            raise PolicyError(f"{where} must be a table of keep rules")
        unknown = sorted(set(doc) - set(DOCUMENT_KEYS))
        if unknown:
            raise PolicyError(
                f"{where}: unknown rule {unknown[0]!r} (use {', '.join(DOCUMENT_KEYS)})"
            )
        counts: dict[str, int] = {}
        for name in DOCUMENT_KEYS[1:]:
            value = doc.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int):
                raise PolicyError(f"{where}.{name} must be a whole number (-1 for unlimited)")
            counts[name] = value
        within = doc.get("within")
        if within is not None and not isinstance(within, str):
            raise PolicyError(f'{where}.within must be a duration such as "2d" or "36h"')
        try:
            return cls.from_options(
                last=counts["last"],
                hourly=counts["hourly"],
                daily=counts["daily"],
                weekly=counts["weekly"],
                monthly=counts["monthly"],
                yearly=counts["yearly"],
                within=within,
                group_by=(),
            )
        except PolicyError as exc:
            raise PolicyError(f"{where}: {exc}") from None

    def to_document(self) -> dict[str, Any]:
        """The document form (rules that are off are left out)."""
        doc: dict[str, Any] = {}
        if self.within is not None:
            doc["within"] = str(self.within)
        doc.update({name: n for name, n in self._counts() if n})
        return doc

    def _counts(self) -> list[tuple[str, int]]:
        return [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ]

    @property
    def empty(self) -> bool:
        """True when no rule keeps anything."""
        return (
            all(n == 0 for _, n in self._counts())
            and (self.within is None or self.within.is_zero)
            and not self.tags
        )

    def validate(self) -> None:
        """PolicyError for a policy that is malformed or would keep nothing."""
        for name, n in self._counts():
            if n < -1:
                raise PolicyError(f"keep-{name} must be a count, or -1 for unlimited (got {n})")
        for g in self.group_by:
            if g not in GROUP_FIELDS:
                raise PolicyError(
                    f"cannot group by {g!r}: use any of {', '.join(GROUP_FIELDS)} (or nothing)"
                )
        if self.within is not None and self.within.is_zero:
            raise PolicyError("keep-within must be longer than zero")
        if self.empty:
            raise PolicyError(
                "refusing to forget with an empty policy: it would remove every snapshot; "
                "give at least one keep rule (last, hourly, daily, weekly, monthly, yearly, within, tag)"
            )

    def describe(self) -> str:
        """The policy in one line, for logs and confirmations."""
        parts = [f"{name} {'all' if n == -1 else n}" for name, n in self._counts() if n]
        if self.within is not None:
            parts.append(f"within {self.within}")
        parts.extend(f"tagged {','.join(sorted(t))}" for t in self.tags)
        return "keep " + ", ".join(parts)


@dataclass(frozen=True)
class GroupKey:
    """What the snapshots of a group share (None for a field not grouped by)."""

    hostname: str | None = None
    paths: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "hostname": self.hostname,
            "paths": list(self.paths) if self.paths is not None else None,
            "tags": list(self.tags) if self.tags is not None else None,
        }


def group_key(snapshot: Snapshot, group_by: Sequence[str]) -> GroupKey:
    """The group a snapshot falls into."""
    return GroupKey(
        snapshot.hostname if "host" in group_by else None,
        tuple(sorted(snapshot.paths)) if "paths" in group_by else None,
        tuple(sorted(snapshot.tags)) if "tags" in group_by else None,
    )


def group_snapshots(
    snapshots: Iterable[Snapshot], group_by: Sequence[str]
) -> dict[GroupKey, list[Snapshot]]:
    """Snapshots by group key, each group newest first."""
    groups: dict[GroupKey, list[Snapshot]] = {}
    for s in snapshots:
        groups.setdefault(group_key(s, group_by), []).append(s)
    for members in groups.values():
        members.sort(key=lambda s: (s.time, s.id), reverse=True)
    return groups


@dataclass
class GroupResult:
    """The verdict for one group: keep and remove lists (newest first) and why each was kept."""

    key: GroupKey
    keep: list[Snapshot] = field(default_factory=list)
    remove: list[Snapshot] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for ``forget --json``."""
        return {
            "group": self.key.to_dict(),
            "keep": [s.id for s in self.keep],
            "remove": [s.id for s in self.remove],
            "reasons": [{"snapshot": s.id, "matches": self.reasons[s.id]} for s in self.keep],
        }


def _buckets(tz: tzinfo | None) -> list[tuple[str, Callable[[datetime, int], object]]]:
    def local(t: datetime) -> datetime:
        return t.astimezone(tz)

    return [
        ("last snapshot", lambda t, nr: nr),
        ("hourly snapshot", lambda t, nr: local(t).strftime("%Y-%m-%d %H")),
        ("daily snapshot", lambda t, nr: local(t).date()),
        ("weekly snapshot", lambda t, nr: local(t).isocalendar()[:2]),
        ("monthly snapshot", lambda t, nr: (local(t).year, local(t).month)),
        ("yearly snapshot", lambda t, nr: local(t).year),
    ]


def apply_policy(
    snapshots: Sequence[Snapshot],
    policy: RetentionPolicy,
    *,
    key: GroupKey | None = None,
    tz: tzinfo | None = None,
) -> GroupResult:
    """Judge one group. ``tz`` is the zone whose calendar forms the buckets (default: local)."""
    policy.validate()
    ordered = sorted(snapshots, key=lambda s: (s.time, s.id), reverse=True)
    result = GroupResult(key or GroupKey())
    if not ordered:
        return result
    counts = [n for _, n in policy._counts()]
    last_seen: list[object] = [None] * len(counts)
    buckets = _buckets(tz)
    threshold = None
    if policy.within is not None:
        threshold = policy.within.before(ordered[0].time, tz)
    for nr, snap in enumerate(ordered):
        reasons: list[str] = []
        for tag_set in policy.tags:
            if tag_set <= set(snap.tags):
                reasons.append(f"tagged {','.join(sorted(tag_set))}")
        if threshold is not None and snap.time > threshold:
            reasons.append(f"within {policy.within}")
        for i, (reason, bucket) in enumerate(buckets):
            if counts[i] == 0:
                continue
            value = bucket(snap.time, nr)
            if value != last_seen[i]:
                last_seen[i] = value
                if counts[i] > 0:
                    counts[i] -= 1
                reasons.append(reason)
        if reasons:
            result.keep.append(snap)
            result.reasons[snap.id] = reasons
        else:
            result.remove.append(snap)
    return result


def plan_forget(
    snapshots: Iterable[Snapshot], policy: RetentionPolicy, *, tz: tzinfo | None = None
) -> list[GroupResult]:
    """The verdict for every group, groups in a stable order."""
    policy.validate()
    groups = group_snapshots(snapshots, policy.group_by)
    ordered = sorted(groups.items(), key=lambda kv: repr(kv[0]))
    return [apply_policy(members, policy, key=k, tz=tz) for k, members in ordered]


def select_snapshots(
    snapshots: Iterable[Snapshot],
    *,
    hosts: Sequence[str] | None = None,
    paths: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
) -> list[Snapshot]:
    """The snapshots of any of ``hosts``, that include every one of ``paths``, carrying any tag set ``"a,b"``."""
    tag_sets = [frozenset(t for t in spec.split(",") if t) for spec in tags or []]
    out = []
    for s in snapshots:
        if hosts and s.hostname not in hosts:
            continue
        if paths and not set(paths) <= set(s.paths):
            continue
        if tag_sets and not any(ts <= set(s.tags) for ts in tag_sets):
            continue
        out.append(s)
    return out


@dataclass
class ForgetResult:
    """What forget decided and, unless a dry run, removed."""

    groups: list[GroupResult]
    removed: list[str]
    dry_run: bool

    @property
    def kept(self) -> list[str]:
        """Ids of every snapshot kept."""
        return [s.id for g in self.groups for s in g.keep]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "dry_run": self.dry_run,
            "groups": [g.to_dict() for g in self.groups],
            "removed": self.removed,
        }


def _delete(repo: Repository, snapshot_ids: Iterable[str]) -> list[str]:
    removed = []
    for sid in snapshot_ids:
        try:
            repo.delete_snapshot(sid)
        except ObjectNotFoundError:
            continue  # already gone: someone else forgot it
        removed.append(sid)
    return removed


def forget(
    repo: Repository,
    policy: RetentionPolicy,
    dry_run: bool = False,
    *,
    hosts: Sequence[str] | None = None,
    paths: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    tz: tzinfo | None = None,
) -> ForgetResult:
    """Apply the policy to the (selected) snapshots and delete the ones it does not keep.

    Deleting runs under the exclusive lock, so it never races a prune that is
    deciding what data the snapshots still need. A dry run only reads.
    Data stays in the repository until prune.
    """
    policy.validate()
    if dry_run:
        snaps = select_snapshots(repo.snapshots(), hosts=hosts, paths=paths, tags=tags)
        return ForgetResult(plan_forget(snaps, policy, tz=tz), [], True)
    with repo.lock(exclusive=True, purpose="forget"):
        snaps = select_snapshots(repo.snapshots(), hosts=hosts, paths=paths, tags=tags)
        groups = plan_forget(snaps, policy, tz=tz)
        removed = _delete(repo, [s.id for g in groups for s in g.remove])
    return ForgetResult(groups, removed, False)


def forget_snapshots(repo: Repository, refs: Sequence[str], dry_run: bool = False) -> list[str]:
    """Remove snapshots named by id or unique prefix; returns the full ids (resolved before any delete)."""
    if not refs:
        raise PolicyError("name at least one snapshot to forget")
    if dry_run:
        return [repo.find_snapshot(r).id for r in refs]
    with repo.lock(exclusive=True, purpose="forget"):
        victims = dict.fromkeys(repo.find_snapshot(r).id for r in refs)
        return _delete(repo, victims)
