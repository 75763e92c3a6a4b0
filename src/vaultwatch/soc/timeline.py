"""Protection over time: when each backup set got a snapshot, and when its RPO was breached.

A set is breached at a moment when more than its RPO has passed since its
last good snapshot before that moment (or since the set was created, before
its first snapshot). A disabled set is paused, never breached. A server is
breached whenever any of its enabled sets is. Like `vaultwatch.soc.status`,
everything is derived from snapshots on every read and works in the
caller's session, so a tenant-scoped session sees only its own servers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import Agent, BackupSet, Snapshot

#: The windows the portal offers, by name.
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
MAX_WINDOW = timedelta(days=31)

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class SetTimeline:
    """One backup set over the window: its snapshots' finish times and its breached intervals."""

    id: uuid.UUID
    name: str
    enabled: bool
    rpo_seconds: int
    snapshots: list[datetime]
    gaps: list[Interval]


@dataclass(frozen=True)
class AgentTimeline:
    """One server over the window: its sets, every snapshot tick, and when any set was breached."""

    agent_id: uuid.UUID
    hostname: str
    start: datetime
    end: datetime
    sets: list[SetTimeline] = field(default_factory=list)

    @property
    def snapshots(self) -> list[datetime]:
        """Every snapshot of every set, in time order."""
        return sorted(t for s in self.sets for t in s.snapshots)

    @property
    def gaps(self) -> list[Interval]:
        """When at least one enabled set was breached (merged intervals)."""
        return merge_intervals(g for s in self.sets for g in s.gaps)

    @property
    def breached_seconds(self) -> float:
        """How long, in the window, the server had a breached set."""
        return sum((b - a).total_seconds() for a, b in self.gaps)


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Overlapping or touching intervals joined, in time order."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def breach_gaps(
    reference: datetime,
    snapshots: Sequence[datetime],
    rpo: timedelta,
    start: datetime,
    end: datetime,
) -> list[Interval]:
    """The intervals of [start, end] in which more than `rpo` had passed since the last snapshot.

    `reference` is the last snapshot before the window (or the set's creation
    when it had none); `snapshots` are the finish times inside the window.
    """
    gaps: list[Interval] = []
    points = [reference, *sorted(t for t in snapshots if start <= t <= end)]
    for index, last in enumerate(points):
        following = points[index + 1] if index + 1 < len(points) else end
        breached_from = max(last + rpo, start)
        if breached_from < following:
            gaps.append((breached_from, min(following, end)))
    return [g for g in gaps if g[0] < g[1]]


def _window(window: timedelta) -> timedelta:
    if not timedelta(0) < window <= MAX_WINDOW:
        raise ValidationError(f"a timeline window must be between 0 and {MAX_WINDOW.days} days")
    return window


def protection_timelines(
    session: Session,
    agent_ids: Sequence[uuid.UUID] | None = None,
    *,
    window: timedelta = WINDOWS["24h"],
    now: datetime | None = None,
) -> list[AgentTimeline]:
    """The timelines of `agent_ids` (every active agent the session sees when None), by hostname.

    Three queries whatever the number of servers: sets, the last snapshot
    before the window per set, and the snapshots inside it.
    """
    end = now or database_now(session)
    start = end - _window(window)
    agents = select(Agent.id, Agent.hostname).where(Agent.retired_at.is_(None))
    if agent_ids is not None:
        if not agent_ids:
            return []
        agents = agents.where(Agent.id.in_(list(agent_ids)))
    rows = list(session.execute(agents.order_by(Agent.hostname, Agent.id)))
    if not rows:
        return []
    ids = [r.id for r in rows]
    sets = list(
        session.execute(
            select(
                BackupSet.id,
                BackupSet.agent_id,
                BackupSet.name,
                BackupSet.enabled,
                BackupSet.rpo_target_seconds,
                BackupSet.created_at,
            )
            .where(BackupSet.agent_id.in_(ids))
            .order_by(BackupSet.name)
        )
    )
    set_ids = [s.id for s in sets]
    before: dict[uuid.UUID, datetime] = {}
    inside: dict[uuid.UUID, list[datetime]] = {i: [] for i in set_ids}
    if set_ids:
        before = {
            set_id: at
            for set_id, at in session.execute(
                select(Snapshot.backup_set_id, func.max(Snapshot.finished_at))
                .where(Snapshot.backup_set_id.in_(set_ids), Snapshot.finished_at < start)
                .group_by(Snapshot.backup_set_id)
            )
            if set_id is not None
        }
        for set_id, at in session.execute(
            select(Snapshot.backup_set_id, Snapshot.finished_at)
            .where(
                Snapshot.backup_set_id.in_(set_ids),
                Snapshot.finished_at >= start,
                Snapshot.finished_at <= end,
            )
            .order_by(Snapshot.finished_at)
        ):
            if set_id is not None:
                inside[set_id].append(at)
    by_agent: dict[uuid.UUID, list[SetTimeline]] = {i: [] for i in ids}
    for s in sets:
        rpo = timedelta(seconds=s.rpo_target_seconds)
        # Before the set existed nothing was expected of it.
        set_start = max(start, s.created_at)
        earlier = [t for t in inside[s.id] if t < set_start]
        if s.id in before:
            earlier.append(before[s.id])
        reference = max(earlier) if earlier else s.created_at
        gaps = breach_gaps(reference, inside[s.id], rpo, set_start, end) if s.enabled else []
        by_agent[s.agent_id].append(
            SetTimeline(s.id, s.name, s.enabled, s.rpo_target_seconds, inside[s.id], gaps)
        )
    return [AgentTimeline(r.id, r.hostname, start, end, by_agent[r.id]) for r in rows]


__all__ = [
    "WINDOWS",
    "AgentTimeline",
    "SetTimeline",
    "breach_gaps",
    "merge_intervals",
    "protection_timelines",
]
