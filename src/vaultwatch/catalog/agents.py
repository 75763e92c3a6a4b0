"""Agents after enrollment: heartbeats, and finding the ones that went silent.

Each heartbeat is kept (for trends such as free disk over time) and its facts
are copied onto the agent, so "which agents are silent" is one indexed query
on `agents.last_seen_at`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import AgentNotFoundError, ValidationError
from vaultwatch.catalog.models import Agent, Heartbeat

#: Host facts larger than this (as JSON) are refused: they come from the network.
MAX_HOST_FACTS_BYTES = 16 * 1024
MAX_VERSION_LENGTH = 64


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
) -> Heartbeat:
    """Store a heartbeat and bring the agent's latest facts and `last_seen_at` up to date."""
    _check_heartbeat(version, host_facts, free_disk_bytes)
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise AgentNotFoundError(f"no agent with id {agent_id}")
    now = now or database_now(session)
    heartbeat = Heartbeat(
        tenant_id=agent.tenant_id,
        agent_id=agent.id,
        received_at=now,
        version=version,
        host_facts=host_facts,
        free_disk_bytes=free_disk_bytes,
        gateway_reachable=gateway_reachable,
    )
    session.add(heartbeat)
    if agent.last_seen_at is None or agent.last_seen_at < now:
        agent.last_seen_at = now
        agent.version = version
        agent.host_facts = host_facts
        agent.free_disk_bytes = free_disk_bytes
        agent.gateway_reachable = gateway_reachable
    session.flush()
    return heartbeat


def agent_and_now(session: Session, agent_id: uuid.UUID) -> tuple[Agent, datetime]:
    """The agent and the database's time, in one round trip on PostgreSQL.

    A heartbeat needs both; asking for the clock with the row saves a
    statement on the hot path (see `database_now` for why the database's clock).
    """
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(
            select(Agent, func.clock_timestamp()).where(Agent.id == agent_id)
        ).one_or_none()
        if row is None:
            raise AgentNotFoundError(f"no agent with id {agent_id}")
        agent, now = row
        assert isinstance(now, datetime)
        return agent, now.astimezone(UTC)
    found = session.get(Agent, agent_id)
    if found is None:
        raise AgentNotFoundError(f"no agent with id {agent_id}")
    return found, database_now(session)


def silent_agents(session: Session, *, since: datetime) -> list[Agent]:
    """Active agents not heard from since `since` (never-seen ones included), oldest first."""
    statement = (
        select(Agent)
        .where(Agent.retired_at.is_(None))
        .where(or_(Agent.last_seen_at.is_(None), Agent.last_seen_at < since))
        .order_by(Agent.last_seen_at.asc().nulls_first(), Agent.id)
    )
    return list(session.execute(statement).scalars())
