"""The lifecycle as an agent meets it over HTTPS: rotation, revocation, retirement, suspension."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

from tests.gateway.harness import ACTOR, GatewayServer, content_name, heartbeat_body, upload
from vaultwatch.catalog.agent_lifecycle import retire_agent
from vaultwatch.catalog.enrollment import revoke_agent_credentials
from vaultwatch.catalog.tenant_lifecycle import delete_tenant, resume_tenant, suspend_tenant

CREDENTIAL = "/api/v1/agents/self/credential"
OBJECTS = "/api/v1/vault/objects"


def _problem_type(response_json: dict[str, object]) -> str:
    return str(response_json["type"]).removeprefix("urn:vaultwatch:problem:")


def test_an_agent_rotates_its_credential_and_the_old_one_stops_on_first_use(
    gateway: GatewayServer,
) -> None:
    agent = gateway.enroll()
    old = gateway.client(agent.credential)
    r = old.post(CREDENTIAL)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["agent_id"] == str(agent.agent_id) and doc["credential"].startswith("vwa_")
    assert old.post("/api/v1/heartbeat", json=heartbeat_body()).status_code == 200  # still works
    new = gateway.client(doc["credential"])
    assert new.get(OBJECTS, params={"limit": 1}).status_code == 200
    refused = old.post("/api/v1/heartbeat", json=heartbeat_body())
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert new.post("/api/v1/heartbeat", json=heartbeat_body()).status_code == 200


def test_rotation_needs_a_valid_credential(gateway: GatewayServer) -> None:
    anonymous = gateway.client().post(CREDENTIAL)
    assert anonymous.status_code == 401
    assert _problem_type(anonymous.json()) == "invalid-credential"


def test_a_revoked_credential_gets_401_saying_so(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    with gateway.catalog.session() as session:
        revoke_agent_credentials(session, agent.agent_id, actor=ACTOR)
    r = client.get(OBJECTS)
    assert r.status_code == 401
    assert _problem_type(r.json()) == "invalid-credential"
    detail = r.json()["detail"]
    assert "credential was revoked" in detail and "enroll" in detail


def test_a_retired_agent_is_refused_but_its_vault_stays_readable_for_the_tenant(
    gateway: GatewayServer,
) -> None:
    tenant = gateway.tenant()
    old = gateway.enroll(tenant, hostname="old-srv")
    pack = os.urandom(4096)
    name = content_name(pack)
    assert upload(gateway.client(old.credential), name, pack).status_code == 201
    with gateway.catalog.session() as session:
        retire_agent(session, old.agent_id, actor=ACTOR)
    refused = gateway.client(old.credential).get(OBJECTS)
    assert refused.status_code == 401 and "retired" in refused.json()["detail"]
    replacement = gateway.client(gateway.enroll(tenant, hostname="new-srv").credential)
    read = replacement.get(f"{OBJECTS}/{name}")
    assert read.status_code == 200 and read.content == pack


def test_a_suspended_tenant_reads_and_heartbeats_but_cannot_upload(
    gateway: GatewayServer,
) -> None:
    tenant = gateway.tenant()
    agent = gateway.enroll(tenant)
    client = gateway.client(agent.credential)
    kept = os.urandom(2048)
    assert upload(client, content_name(kept), kept).status_code == 201
    with gateway.catalog.session() as session:
        suspend_tenant(session, tenant.id, actor=ACTOR, reason="contract ended")
    data = os.urandom(2048)
    refused = upload(client, content_name(data), data)
    assert refused.status_code == 403
    assert _problem_type(refused.json()) == "tenant-suspended"
    assert "suspended" in refused.json()["detail"]
    assert client.post("/api/v1/heartbeat", json=heartbeat_body()).status_code == 200
    assert client.get(f"{OBJECTS}/{content_name(kept)}").content == kept
    token = gateway.client().post(
        "/api/v1/enroll",
        json={
            "token": _token_made_before_suspension(gateway, tenant.id),
            "hostname": "srv2",
            "agent_version": "0.1.0",
            "platform": "linux-x86_64",
        },
    )
    assert token.status_code == 403 and _problem_type(token.json()) == "tenant-suspended"
    with gateway.catalog.session() as session:
        resume_tenant(session, tenant.id, actor=ACTOR)
    assert upload(client, content_name(data), data).status_code == 201


def _token_made_before_suspension(gateway: GatewayServer, tenant_id: uuid.UUID) -> str:
    """A token that was issued while the tenant was active (written straight to the catalog)."""
    from vaultwatch.catalog import EnrollmentToken
    from vaultwatch.catalog.db import database_now
    from vaultwatch.catalog.security import TokenPurpose, new_token, token_prefix

    plaintext, digest = new_token(TokenPurpose.ENROLLMENT, gateway.key)
    with gateway.catalog.session() as session:
        now = database_now(session)
        session.add(
            EnrollmentToken(
                tenant_id=tenant_id,
                prefix=token_prefix(plaintext),
                digest=digest,
                created_by=ACTOR,
                created_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
    return plaintext


def test_a_deleted_tenants_agents_are_refused(gateway: GatewayServer) -> None:
    tenant = gateway.tenant()
    agent = gateway.enroll(tenant)
    with gateway.catalog.session() as session:
        delete_tenant(session, tenant.id, actor=ACTOR)
    r = gateway.client(agent.credential).post("/api/v1/heartbeat", json=heartbeat_body())
    assert r.status_code == 403
    assert _problem_type(r.json()) == "tenant-deleted"


def test_the_agents_store_reports_the_suspension_in_its_error(gateway: GatewayServer) -> None:
    import pytest

    from vaultwatch.store.errors import StorePermissionError

    tenant = gateway.tenant()
    agent = gateway.enroll(tenant)
    with gateway.catalog.session() as session:
        suspend_tenant(session, tenant.id, actor=ACTOR, reason="audit")
    store = gateway.store(agent.credential)
    try:
        with pytest.raises(StorePermissionError, match="is suspended"):
            store.put(f"locks/{uuid.uuid4().hex}", b"lock")
    finally:
        store.close()
