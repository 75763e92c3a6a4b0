"""Rotating and revoking an agent's credentials, and retiring the agent."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from vaultwatch.catalog import Agent, AuditEntry, Catalog, Snapshot
from vaultwatch.catalog.agent_lifecycle import (
    active_credentials,
    find_agent,
    retire_agent,
    rotate_agent_credential,
)
from vaultwatch.catalog.agents import silent_agents
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.enrollment import authenticate_agent
from vaultwatch.catalog.errors import (
    AgentNotFoundError,
    AgentRetiredError,
    InvalidCredentialError,
    ValidationError,
)

from .conftest import ACTOR, add_tenant, enroll


def _actions(catalog: Catalog) -> list[str]:
    with catalog.session() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_rotation_keeps_the_old_credential_until_the_new_one_is_used(
    catalog: Catalog, key: bytes
) -> None:
    enrolled = enroll(catalog, add_tenant(catalog, "Acme"), key)
    with catalog.session() as session:
        rotated = rotate_agent_credential(session, enrolled.agent.id, key=key, actor=ACTOR)
    assert rotated.credential != enrolled.credential
    with catalog.session() as session:  # the agent has not stored it yet: the old one works
        assert authenticate_agent(session, enrolled.credential, key=key).id == enrolled.agent.id
        assert len(active_credentials(session, enrolled.agent.id)) == 2
    with catalog.session() as session:
        assert authenticate_agent(session, rotated.credential, key=key).id == enrolled.agent.id
    with pytest.raises(InvalidCredentialError, match="revoked"), catalog.session() as session:
        authenticate_agent(session, enrolled.credential, key=key)
    with catalog.session() as session:
        (left,) = active_credentials(session, enrolled.agent.id)
        assert not left.pending
        assert authenticate_agent(session, rotated.credential, key=key).id == enrolled.agent.id
    actions = _actions(catalog)
    assert actions.count("agent.credential_rotate") == 1
    assert actions.count("agent.credential_rotated") == 1  # the second use changes nothing


def test_a_second_rotation_revokes_the_unclaimed_first(catalog: Catalog, key: bytes) -> None:
    enrolled = enroll(catalog, add_tenant(catalog, "Acme"), key)
    with catalog.session() as session:
        first = rotate_agent_credential(session, enrolled.agent.id, key=key, actor=ACTOR)
    with catalog.session() as session:
        second = rotate_agent_credential(session, enrolled.agent.id, key=key, actor=ACTOR)
    with pytest.raises(InvalidCredentialError), catalog.session() as session:
        authenticate_agent(session, first.credential, key=key)
    with catalog.session() as session:
        assert authenticate_agent(session, enrolled.credential, key=key)
        assert authenticate_agent(session, second.credential, key=key)
    with pytest.raises(InvalidCredentialError), catalog.session() as session:
        authenticate_agent(session, enrolled.credential, key=key)


def test_retiring_stops_credentials_and_silence_but_keeps_snapshots(
    catalog: Catalog, key: bytes
) -> None:
    from datetime import UTC, datetime, timedelta

    from vaultwatch.catalog import Repository

    tenant = add_tenant(catalog, "Acme")
    enrolled = enroll(catalog, tenant, key)
    with catalog.session() as session:
        repo = Repository(tenant_id=tenant.id, name="vault", primary_location="/srv/v")
        session.add(repo)
        session.flush()
        session.add(
            Snapshot(
                tenant_id=tenant.id,
                repository_id=repo.id,
                agent_id=enrolled.agent.id,
                vault_snapshot_id="ab" * 32,
                hostname="srv1",
                paths=["/srv"],
                started_at=datetime(2026, 1, 1, tzinfo=UTC),
                finished_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
    with catalog.session() as session:
        since = database_now(session) + timedelta(days=1)
        assert [a.id for a in silent_agents(session, since=since)] == [enrolled.agent.id]
        retire_agent(session, enrolled.agent.id, actor=ACTOR)
    with pytest.raises(InvalidCredentialError, match="retired"), catalog.session() as session:
        authenticate_agent(session, enrolled.credential, key=key)
    with catalog.session() as session:
        assert silent_agents(session, since=since) == []
        assert active_credentials(session, enrolled.agent.id) == []
        (snapshot,) = session.scalars(select(Snapshot))
        assert snapshot.agent_id == enrolled.agent.id  # still there, still its agent's
        agent = session.get(Agent, enrolled.agent.id)
        assert agent is not None and agent.retired_at is not None
        retired_at = agent.retired_at
        assert retire_agent(session, agent.id, actor=ACTOR).retired_at == retired_at  # idempotent
        with pytest.raises(AgentRetiredError):
            rotate_agent_credential(session, agent.id, key=key, actor=ACTOR)
    assert _actions(catalog).count("agent.retire") == 1


def test_agents_are_found_by_id_or_hostname_within_the_tenant(catalog: Catalog, key: bytes) -> None:
    acme, globex = add_tenant(catalog, "Acme"), add_tenant(catalog, "Globex")
    one = enroll(catalog, acme, key, hostname="db1")
    enroll(catalog, globex, key, hostname="db1")
    with catalog.session() as session:
        assert find_agent(session, str(one.agent.id)).id == one.agent.id
        assert find_agent(session, "db1", tenant=session.get(type(acme), acme.id)).id == (
            one.agent.id
        )
        with pytest.raises(ValidationError, match="2 active agents"):
            find_agent(session, "db1")
        with pytest.raises(AgentNotFoundError):
            find_agent(session, str(one.agent.id), tenant=session.get(type(globex), globex.id))
    with catalog.session(tenant_id=globex.id) as session, pytest.raises(AgentNotFoundError):
        find_agent(session, str(one.agent.id))
