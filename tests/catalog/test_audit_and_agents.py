"""The audit log, heartbeats, and finding silent agents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from vaultwatch.catalog import Agent, AuditEntry, Catalog, Heartbeat
from vaultwatch.catalog.agents import prune_heartbeats, record_heartbeat, silent_agents
from vaultwatch.catalog.audit import REDACTED, record, redact, system_actor, user_actor
from vaultwatch.catalog.errors import AgentNotFoundError, ValidationError

from .conftest import add_tenant, enroll

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def test_audit_record_lands_with_the_transaction_and_hides_secrets(catalog: Catalog) -> None:
    tenant = add_tenant(catalog, "Acme")
    actor = user_actor(uuid.uuid4())
    with catalog.session() as session:
        record(
            session,
            actor,
            "user.password_reset",
            tenant.id,
            target="user:42",
            details={
                "new_password": "hunter2",
                "email": "a@acme.example",
                "nested": {"api_key": "vwk_x", "token_prefix": "vwk_abcdefgh", "reason": "lost"},
            },
            at=T0,
        )
    with pytest.raises(RuntimeError), catalog.session() as session:
        record(session, actor, "tenant.delete", tenant.id)
        raise RuntimeError("the action failed, so its audit entry must not remain")
    with catalog.session() as session:
        entries = session.execute(
            select(AuditEntry).where(AuditEntry.action != "tenant.create")
        ).scalars()
        (entry,) = entries
    assert (entry.actor, entry.action, entry.tenant_id, entry.target) == (
        actor,
        "user.password_reset",
        tenant.id,
        "user:42",
    )
    assert entry.occurred_at == T0
    assert entry.details == {
        "new_password": REDACTED,
        "email": "a@acme.example",
        "nested": {"api_key": REDACTED, "token_prefix": "vwk_abcdefgh", "reason": "lost"},
    }


def test_service_wide_audit_entries_have_no_tenant(catalog: Catalog) -> None:
    with catalog.session() as session:
        record(session, system_actor("escalation"), "lease.takeover", None, details={})
    with catalog.session() as session:
        entry = session.execute(select(AuditEntry)).scalar_one()
        assert entry.tenant_id is None and entry.actor == "system:escalation"


def test_redact_keeps_ids_and_prefixes() -> None:
    assert redact({"agent_id": 1, "key_id": 2, "prefix": "p", "secret": "s", "key": "k"}) == {
        "agent_id": 1,
        "key_id": 2,
        "prefix": "p",
        "secret": REDACTED,
        "key": REDACTED,
    }


def test_heartbeat_updates_agent_and_keeps_history(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    agent = enroll(catalog, tenant, key).agent
    facts = {"os": "Debian 12", "cpus": 4, "mounts": ["/", "/srv"]}
    with catalog.session() as session:
        record_heartbeat(
            session,
            agent.id,
            version="1.2.0",
            host_facts=facts,
            free_disk_bytes=50 * 2**30,
            gateway_reachable=True,
            now=T0,
        )
        # A heartbeat that arrives late is kept but does not overwrite newer facts.
        record_heartbeat(
            session,
            agent.id,
            version="1.1.0",
            host_facts={},
            free_disk_bytes=1,
            gateway_reachable=False,
            now=T0 - timedelta(minutes=1),
        )
    with catalog.session() as session:
        stored = session.get(Agent, agent.id)
        assert stored is not None
        assert (stored.last_seen_at, stored.version, stored.host_facts) == (T0, "1.2.0", facts)
        assert stored.free_disk_bytes == 50 * 2**30 and stored.gateway_reachable is True
        history = session.execute(select(Heartbeat).order_by(Heartbeat.received_at)).scalars()
        assert [h.version for h in history] == ["1.1.0", "1.2.0"]


def _beat(catalog: Catalog, agent_id: uuid.UUID, at: datetime) -> None:
    with catalog.session() as session:
        record_heartbeat(
            session,
            agent_id,
            version="1.0",
            host_facts={},
            free_disk_bytes=1,
            gateway_reachable=True,
            now=at,
        )


def _history(catalog: Catalog) -> dict[uuid.UUID, list[datetime]]:
    with catalog.session() as session:
        rows = session.execute(
            select(Heartbeat.agent_id, Heartbeat.received_at).order_by(Heartbeat.received_at)
        )
        found: dict[uuid.UUID, list[datetime]] = {}
        for agent_id, at in rows:
            found.setdefault(agent_id, []).append(at.astimezone(UTC))
        return found


def test_prune_heartbeats_keeps_the_recent_history_of_every_agent(
    catalog: Catalog, key: bytes
) -> None:
    first = enroll(catalog, add_tenant(catalog, "Acme"), key).agent
    second = enroll(catalog, add_tenant(catalog, "Globex"), key).agent
    days = [10, 9, 8, 1, 0]
    for n in days:
        _beat(catalog, first.id, T0 - timedelta(days=n))
    for n in (12, 0):
        _beat(catalog, second.id, T0 - timedelta(days=n))
    cutoff = T0 - timedelta(days=7)

    with catalog.session() as session:  # a bounded batch; the next call takes the rest
        assert prune_heartbeats(session, cutoff, limit=2) == 2
    with catalog.session() as session:
        assert prune_heartbeats(session, cutoff) == 2
    with catalog.session() as session:
        assert prune_heartbeats(session, cutoff) == 0

    assert _history(catalog) == {
        first.id: [T0 - timedelta(days=1), T0],
        second.id: [T0],
    }
    with catalog.session() as session:  # the agents' latest facts are untouched
        stored = session.get(Agent, first.id)
        assert stored is not None and stored.last_seen_at == T0


@pytest.mark.parametrize(
    ("version", "facts", "free", "problem"),
    [
        ("", {}, 0, "version"),
        ("1.0", {}, -1, "negative"),
        ("1.0", {"blob": "x" * 20000}, 0, "at most"),
        ("1.0", {"when": datetime.now(UTC)}, 0, "plain JSON"),
        ("1.0", {"load": float("nan")}, 0, "plain JSON"),
    ],
)
def test_malformed_heartbeats_are_refused(
    catalog: Catalog, key: bytes, version: str, facts: dict[str, object], free: int, problem: str
) -> None:
    agent = enroll(catalog, add_tenant(catalog, "Acme"), key).agent
    with pytest.raises(ValidationError, match=problem), catalog.session() as session:
        record_heartbeat(
            session,
            agent.id,
            version=version,
            host_facts=facts,
            free_disk_bytes=free,
            gateway_reachable=True,
        )


def test_heartbeat_for_another_tenants_agent_is_refused(catalog: Catalog, key: bytes) -> None:
    acme, zeta = add_tenant(catalog, "Acme"), add_tenant(catalog, "Zeta")
    zeta_agent = enroll(catalog, zeta, key).agent
    with pytest.raises(AgentNotFoundError), catalog.session(tenant_id=acme.id) as session:
        record_heartbeat(
            session,
            zeta_agent.id,
            version="1.0",
            host_facts={},
            free_disk_bytes=None,
            gateway_reachable=True,
        )


def test_silent_agents_are_found_oldest_first(catalog: Catalog, key: bytes) -> None:
    acme, zeta = add_tenant(catalog, "Acme"), add_tenant(catalog, "Zeta")
    fresh = enroll(catalog, acme, key, "fresh").agent
    stale = enroll(catalog, acme, key, "stale").agent
    enroll(catalog, zeta, key, "never")
    retired = enroll(catalog, zeta, key, "retired").agent
    with catalog.session() as session:
        for agent, seen in ((fresh, T0), (stale, T0 - timedelta(hours=2)), (retired, T0)):
            record_heartbeat(
                session,
                agent.id,
                version="1.0",
                host_facts={},
                free_disk_bytes=None,
                gateway_reachable=True,
                now=seen,
            )
        retiring = session.get(Agent, retired.id)
        assert retiring is not None
        retiring.retired_at = T0
    since = T0 - timedelta(minutes=5)
    with catalog.session() as session:
        assert [a.hostname for a in silent_agents(session, since=since)] == ["never", "stale"]
    with catalog.session(tenant_id=acme.id) as session:
        assert [a.hostname for a in silent_agents(session, since=since)] == ["stale"]
