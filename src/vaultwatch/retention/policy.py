"""Which snapshots of a backup set retention keeps, and why.

A set's policy has two parts. The *floor* is what an operator set for it, or
else the service's default for its mode. The agent's configuration may ask
for more: a snapshot is kept when either keeps it. So an agent (or malware
holding its credential) can lengthen retention but never shorten it.

The default for a continuous set thins the dense recent history: everything
of the last two hours, then one snapshot an hour for two days, one a day for
a month, one a week for three months, one a month for two years, one a year
for five. Scheduled sets keep the last 10 and the same daily and longer tiers.
The policy grammar and the keep logic are the engine's
(`vaultwatch.engine.retention`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vaultwatch.catalog import audit
from vaultwatch.catalog.models import Agent, BackupMode, BackupSet
from vaultwatch.engine.errors import PolicyError
from vaultwatch.engine.retention import RetentionPolicy, apply_policy
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.errors import VaultwatchError

DEFAULT_CONTINUOUS: dict[str, Any] = {
    "within": "2h",
    "hourly": 48,
    "daily": 31,
    "weekly": 13,
    "monthly": 24,
    "yearly": 5,
}
DEFAULT_SCHEDULED: dict[str, Any] = {
    "last": 10,
    "daily": 31,
    "weekly": 13,
    "monthly": 24,
    "yearly": 5,
}


class RetentionError(VaultwatchError):
    """Bad input to retention: an unknown tenant or set, or a policy that does not parse."""

    http_status = 404
    exit_code = 2


def default_policy(mode: BackupMode) -> RetentionPolicy:
    """The service's default for a set of this mode."""
    doc = DEFAULT_CONTINUOUS if mode == BackupMode.CONTINUOUS else DEFAULT_SCHEDULED
    return RetentionPolicy.from_document(doc)


@dataclass(frozen=True)
class SetPolicy:
    """The floor (operator's or default) and what the agent's configuration adds."""

    floor: RetentionPolicy
    source: str
    """``operator`` or ``default``."""
    requested: RetentionPolicy | None = None

    def describe(self) -> str:
        """One line for tables and logs."""
        text = f"{self.floor.describe()} ({self.source})"
        if self.requested is not None:
            text += f" + {self.requested.describe()} (agent)"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "floor": self.floor.to_document(),
            "source": self.source,
            "requested": self.requested.to_document() if self.requested else None,
        }


def set_policy(backup_set: BackupSet) -> SetPolicy:
    """The policy that applies to one backup set row.

    A stored document that no longer parses (it was validated when written)
    falls back to the default, and an agent request that does not parse is
    ignored: a bad document must never make retention remove more.
    """
    floor, source = default_policy(backup_set.mode), "default"
    if backup_set.operator_retention:
        with contextlib.suppress(PolicyError):
            floor, source = RetentionPolicy.from_document(backup_set.operator_retention), "operator"
    requested = None
    if backup_set.retention:
        try:
            requested = RetentionPolicy.from_document(backup_set.retention)
        except PolicyError:
            requested = None
    return SetPolicy(floor, source, requested)


@dataclass
class Verdict:
    """One set's snapshots judged: kept (with reasons) and removed, newest first."""

    keep: list[Snapshot] = field(default_factory=list)
    remove: list[Snapshot] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)


def judge(
    snapshots: Sequence[Snapshot],
    policy: SetPolicy,
    *,
    held: Iterable[str] = (),
    tz: tzinfo | None = None,
) -> Verdict:
    """Keep what the floor or the request keeps, and every held snapshot; remove the rest."""
    reasons: dict[str, list[str]] = {s.id: [] for s in snapshots}
    for part, label in ((policy.floor, ""), (policy.requested, " (agent)")):
        if part is None:
            continue
        result = apply_policy(snapshots, part, tz=tz)
        for sid, why in result.reasons.items():
            reasons[sid].extend(f"{w}{label}" for w in why)
    for sid in held:
        if sid in reasons:
            reasons[sid].append("held")
    ordered = sorted(snapshots, key=lambda s: (s.time, s.id), reverse=True)
    verdict = Verdict()
    for snap in ordered:
        if reasons[snap.id]:
            verdict.keep.append(snap)
            verdict.reasons[snap.id] = reasons[snap.id]
        else:
            verdict.remove.append(snap)
    return verdict


def is_held(claimed: datetime, received: datetime | None, held_before: Iterable[datetime]) -> bool:
    """Whether a hold covers a snapshot: made (by either clock) before a hold's instant."""
    made = min(claimed, received) if received is not None else claimed
    return any(made < instant for instant in held_before)


def find_sets(
    session: Session, tenant_id: uuid.UUID, set_name: str, *, hostname: str | None = None
) -> list[BackupSet]:
    """The tenant's backup sets named ``set_name`` (of the server ``hostname`` only, if given)."""
    query = (
        select(BackupSet)
        .join(Agent, Agent.id == BackupSet.agent_id)
        .where(BackupSet.tenant_id == tenant_id, BackupSet.name == set_name)
        .order_by(Agent.hostname)
    )
    if hostname is not None:
        query = query.where(Agent.hostname == hostname)
    rows = list(session.execute(query).scalars())
    if not rows:
        where = f" on {hostname}" if hostname else ""
        raise RetentionError(f"the tenant has no backup set named {set_name!r}{where}")
    return rows


def set_operator_retention(
    session: Session,
    rows: Sequence[BackupSet],
    document: Mapping[str, Any] | None,
    *,
    actor: str,
) -> None:
    """Give backup sets an operator policy (``None``: back to the service's default), audited.

    PolicyError for a document that does not parse or would keep nothing.
    """
    policy = RetentionPolicy.from_document(document) if document is not None else None
    stored = policy.to_document() if policy is not None else None
    for row in rows:
        row.operator_retention = stored
        audit.record(
            session,
            actor,
            "retention.policy",
            row.tenant_id,
            target=f"backup_set:{row.id}",
            details={"backup_set": row.name, "policy": stored},
        )
    session.flush()
