"""Agents after enrollment: heartbeats, and finding the ones that went silent.

Each heartbeat is kept for a while (for trends such as free disk over time;
`prune_heartbeats` bounds the history) and its facts are copied onto the
agent, so "which agents are silent" is one indexed query on
`agents.last_seen_at`.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Result, delete, or_, select, update
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now, session_tenant
from vaultwatch.catalog.errors import AgentNotFoundError, ValidationError
from vaultwatch.catalog.models import Agent, Heartbeat

#: Host facts larger than this (as JSON) are refused: they come from the network.
MAX_HOST_FACTS_BYTES = 16 * 1024
MAX_VERSION_LENGTH = 64
#: How long heartbeats are kept: a week of trends (an agent sends about 3,000 a day).
HEARTBEATS_KEPT = timedelta(days=7)


def _check_heartbeat(version: str, host_facts: dict[str, Any], free_disk_bytes: int | None) -> None:
    if not version or len(version) > MAX_VERSION_LENGTH or not version.isprintable():
        raise ValidationError(
            f"agent version must be 1 to {MAX_VERSION_LENGTH} printable characters"
        )
    if free_disk_bytes is not None and free_disk_bytes < 0:
        raise ValidationError("free disk space cannot be negative")
    try:
        encoded = json.dumps(host_facts, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"host facts must be plain JSON: {exc}") from exc
    if len(encoded.encode()) > MAX_HOST_FACTS_BYTES:
        raise ValidationError(f"host facts must be at most {MAX_HOST_FACTS_BYTES} bytes of JSON")


def record_heartbeat(
    session: Session,
    agent_id: uuid.UUID,
    *,
    version: str,
    host_facts: dict[str, Any],
    free_disk_bytes: int | None,
    gateway_reachable: bool,
    now: datetime | None = None,
    gateway_node: str | None = None,
) -> Heartbeat:
    """Store a heartbeat and bring the agent's latest facts and `last_seen_at` up to date.

    Two statements without loading the agent (an UPDATE that only moves
    `last_seen_at` forward, then the INSERT): this runs for every agent every
    30 seconds. A late heartbeat is kept but leaves the newer facts alone. In
    a tenant-scoped session an agent of another tenant is not found.
    """
    _check_heartbeat(version, host_facts, free_disk_bytes)
    now = now or database_now(session)
    moved = session.execute(
        update(Agent)
        .where(Agent.id == agent_id)
        .where(or_(Agent.last_seen_at.is_(None), Agent.last_seen_at < now))
        .values(
            last_seen_at=now,
            version=version,
            host_facts=host_facts,
            free_disk_bytes=free_disk_bytes,
            gateway_reachable=gateway_reachable,
            **({"gateway_node": gateway_node[:200]} if gateway_node else {}),
        )
        .execution_options(synchronize_session="fetch")
    )
    tenant_id = session_tenant(session)
    if tenant_id is None or not _rowcount(moved):
        tenant_id = session.execute(
            select(Agent.tenant_id).where(Agent.id == agent_id)
        ).scalar_one_or_none()
        if tenant_id is None:
            raise AgentNotFoundError(f"no agent with id {agent_id}")
    heartbeat = Heartbeat(
        tenant_id=tenant_id,
        agent_id=agent_id,
        received_at=now,
        version=version,
        host_facts=host_facts,
        free_disk_bytes=free_disk_bytes,
        gateway_reachable=gateway_reachable,
    )
    session.add(heartbeat)
    session.flush()
    return heartbeat


def _rowcount(result: Result[Any]) -> int:
    return int(getattr(result, "rowcount", 0))


def silent_agents(session: Session, *, since: datetime) -> list[Agent]:
    """Active agents not heard from since `since` (never-seen ones included), oldest first."""
    statement = (
        select(Agent)
        .where(Agent.retired_at.is_(None))
        .where(or_(Agent.last_seen_at.is_(None), Agent.last_seen_at < since))
        .order_by(Agent.last_seen_at.asc().nulls_first(), Agent.id)
    )
    return list(session.execute(statement).scalars())


def prune_heartbeats(session: Session, older_than: datetime, *, limit: int = 50_000) -> int:
    """Delete heartbeats received before `older_than`, at most `limit`; returns how many.

    Agent by agent, so each delete is a range of the (agent_id, received_at)
    index rather than a scan of the whole table; `limit` bounds one
    transaction, and a later call removes the rest.
    """
    removed = 0
    for agent_id in list(session.scalars(select(Agent.id).order_by(Agent.id))):
        if removed >= limit:
            break
        oldest = (
            select(Heartbeat.id)
            .where(Heartbeat.agent_id == agent_id, Heartbeat.received_at < older_than)
            .order_by(Heartbeat.received_at)
            .limit(limit - removed)
        )
        result = session.execute(
            delete(Heartbeat)
            .where(Heartbeat.id.in_(oldest.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        removed += _rowcount(result)
    return removed
