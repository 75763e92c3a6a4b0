"""An enrolled agent's later life: credential rotation and revocation, retirement.

Rotation hands the agent a new credential while the old one keeps working;
the new one is *pending* until its first use, which proves the agent stored
it and revokes the others (see `authenticate_agent`). A crash between the
two leaves the agent with a working credential either way.

Retiring a server stops its credentials and takes it out of the active
fleet (the SOC's monitors skip retired agents and clear their alarms); its
snapshots stay in the vault and in the catalog, restorable like any other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from vaultwatch.catalog import audit
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.enrollment import issue_agent_credential, revoke_agent_credentials
from vaultwatch.catalog.errors import AgentNotFoundError, AgentRetiredError, ValidationError
from vaultwatch.catalog.models import Agent, AgentCredential, Tenant


@dataclass(frozen=True)
class RotatedCredential:
    """A new credential for an agent: the plaintext only this once."""

    agent_id: uuid.UUID
    credential: str
    created_at: datetime


def find_agent(session: Session, ref: str, *, tenant: Tenant | None = None) -> Agent:
    """The agent `ref` names: its id, or its hostname (among active agents, within `tenant`).

    A hostname that several active agents share is refused: the id decides.
    """
    ref = ref.strip()
    try:
        agent = session.get(Agent, uuid.UUID(ref))
    except ValueError:
        statement = select(Agent).where(Agent.hostname == ref, Agent.retired_at.is_(None))
        if tenant is not None:
            statement = statement.where(Agent.tenant_id == tenant.id)
        rows = list(session.execute(statement).scalars())
        if len(rows) > 1:
            raise ValidationError(
                f"{len(rows)} active agents are called {ref!r}: give the agent's id"
            ) from None
        agent = rows[0] if rows else None
    if agent is None or (tenant is not None and agent.tenant_id != tenant.id):
        raise AgentNotFoundError(f"no agent {ref!r}")
    return agent


def rotate_agent_credential(
    session: Session, agent_id: uuid.UUID, *, key: bytes, actor: str, now: datetime | None = None
) -> RotatedCredential:
    """Issue a pending credential for the agent; its first use revokes the others.

    An earlier pending credential that was never used is revoked here, so
    repeated rotations never leave several unclaimed secrets behind.
    """
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise AgentNotFoundError(f"no agent with id {agent_id}")
    if agent.retired_at is not None:
        raise AgentRetiredError(f"agent {agent.hostname} is retired")
    now = now or database_now(session)
    stale = session.execute(
        update(AgentCredential)
        .where(
            AgentCredential.agent_id == agent_id,
            AgentCredential.pending.is_(True),
            AgentCredential.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(stale, CursorResult)
    plaintext = issue_agent_credential(session, agent, key=key, now=now, pending=True)
    audit.record(
        session,
        actor,
        "agent.credential_rotate",
        agent.tenant_id,
        target=f"agent:{agent.id}",
        details={"unused_pending_revoked": stale.rowcount},
        at=now,
    )
    return RotatedCredential(agent.id, plaintext, now)


def retire_agent(
    session: Session, agent_id: uuid.UUID, *, actor: str, now: datetime | None = None
) -> Agent:
    """Retire the agent: its credentials stop working and it leaves the active fleet.

    Snapshots, jobs and backup sets are kept (restores still work); the
    SOC's monitors resolve its heartbeat and RPO alarms. Retiring a retired
    agent changes nothing.
    """
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise AgentNotFoundError(f"no agent with id {agent_id}")
    if agent.retired_at is not None:
        return agent
    now = now or database_now(session)
    revoke_agent_credentials(session, agent.id, actor=actor, now=now)
    agent.retired_at = now
    audit.record(
        session,
        actor,
        "agent.retire",
        agent.tenant_id,
        target=f"agent:{agent.id}",
        details={"hostname": agent.hostname},
        at=now,
    )
    session.flush()
    return agent


def active_credentials(session: Session, agent_id: uuid.UUID) -> list[AgentCredential]:
    """The agent's credentials that still authenticate, oldest first."""
    statement = (
        select(AgentCredential)
        .where(AgentCredential.agent_id == agent_id, AgentCredential.revoked_at.is_(None))
        .order_by(AgentCredential.created_at, AgentCredential.id)
    )
    return list(session.execute(statement).scalars())
