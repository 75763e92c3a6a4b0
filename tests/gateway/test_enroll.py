"""Enrollment and authentication over HTTPS: tokens are single-use and expiring, credentials decide the tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from tests.gateway.harness import ACTOR, GatewayServer, heartbeat_body
from vaultwatch.catalog import Agent, AuditEntry, EnrollmentToken
from vaultwatch.catalog.enrollment import create_enrollment_token, revoke_agent_credentials

PROBLEM = "application/problem+json"


def _enroll_body(token: str, hostname: str = "web-01") -> dict[str, str]:
    return {"token": token, "hostname": hostname, "agent_version": "1.2.3", "platform": "linux"}


def test_enroll_creates_agent_and_vault(gateway: GatewayServer) -> None:
    tenant = gateway.tenant("Enroll Corp " + uuid.uuid4().hex[:6])
    token = gateway.token(tenant)
    r = gateway.client().post("/api/v1/enroll", json=_enroll_body(token))
    assert r.status_code == 201, r.text
    doc = r.json()
    assert set(doc) == {"agent_id", "credential", "tenant", "server_time"}
    assert doc["tenant"] == {"id": str(tenant.id), "name": tenant.name}
    assert doc["credential"].startswith("vwa_")
    server_time = datetime.fromisoformat(doc["server_time"].replace("Z", "+00:00"))
    assert abs(server_time - datetime.now(UTC)) < timedelta(minutes=1)
    with gateway.catalog.session() as session:
        agent = session.get(Agent, uuid.UUID(doc["agent_id"]))
        assert agent is not None
        assert agent.tenant_id == tenant.id
        assert agent.hostname == "web-01"
        assert agent.version == "1.2.3"
        assert agent.host_facts["platform"] == "linux"
        used = session.execute(
            select(EnrollmentToken).where(EnrollmentToken.tenant_id == tenant.id)
        ).scalar_one()
        assert used.used_at is not None and used.agent_id == agent.id
        actions = set(
            session.execute(
                select(AuditEntry.action).where(AuditEntry.tenant_id == tenant.id)
            ).scalars()
        )
    assert {"agent.enroll", "vault.create"} <= actions
    assert gateway.vault_dir(tenant.id).is_dir()
    # The credential works, and nothing of it is stored in clear.
    me = gateway.client(doc["credential"]).get("/api/v1/vault/objects")
    assert me.status_code == 200
    assert me.json() == {"objects": [], "next_cursor": None}


def test_used_token_refused(gateway: GatewayServer) -> None:
    tenant = gateway.tenant()
    token = gateway.token(tenant)
    client = gateway.client()
    assert client.post("/api/v1/enroll", json=_enroll_body(token)).status_code == 201
    again = client.post("/api/v1/enroll", json=_enroll_body(token, "other"))
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert again.json()["type"] == "urn:vaultwatch:problem:enrollment-token-used"
    assert "already used" in again.json()["detail"]


def test_expired_token_refused(gateway: GatewayServer) -> None:
    tenant = gateway.tenant()
    with gateway.catalog.session() as session:
        issued = create_enrollment_token(
            session,
            tenant.id,
            key=gateway.key,
            created_by=ACTOR,
            ttl=timedelta(minutes=5),
            now=datetime.now(UTC) - timedelta(hours=1),
        )
    r = gateway.client().post("/api/v1/enroll", json=_enroll_body(issued.plaintext))
    assert r.status_code == 410
    assert r.json()["type"] == "urn:vaultwatch:problem:enrollment-token-expired"


def test_unknown_and_malformed_tokens_refused(gateway: GatewayServer) -> None:
    client = gateway.client()
    for token in ("vwe_" + "A" * 43, "nonsense", "vwa_" + "B" * 43):
        r = client.post("/api/v1/enroll", json=_enroll_body(token))
        assert r.status_code == 401, r.text
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["status"] == 401


def test_enroll_body_validation(gateway: GatewayServer) -> None:
    client = gateway.client()
    token = gateway.token(gateway.tenant())
    bad_bodies: list[object] = [
        {},
        {"token": token},
        {**_enroll_body(token), "hostname": ""},
        {**_enroll_body(token), "hostname": "x" * 300},
        {**_enroll_body(token), "tenant": "someone-else"},  # unknown fields are refused
        [1, 2, 3],
    ]
    for body in bad_bodies:
        r = client.post("/api/v1/enroll", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["type"] == "urn:vaultwatch:problem:invalid-request"
    broken = client.post(
        "/api/v1/enroll", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.headers["content-type"] == PROBLEM
    # The token survived all of that: still good for one enrollment.
    assert client.post("/api/v1/enroll", json=_enroll_body(token)).status_code == 201


def test_hostname_with_spaces_refused(gateway: GatewayServer) -> None:
    token = gateway.token(gateway.tenant())
    r = gateway.client().post("/api/v1/enroll", json=_enroll_body(token, "two words"))
    assert r.status_code == 400
    assert r.json()["type"] == "urn:vaultwatch:problem:validation"


def test_authentication_required(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    beat = heartbeat_body()
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/api/v1/vault/objects", None),
        ("GET", "/api/v1/vault/objects/config", None),
        ("HEAD", "/api/v1/vault/objects/config", None),
        ("PUT", "/api/v1/vault/objects/config", None),
        ("DELETE", "/api/v1/vault/objects/locks/x", None),
        ("POST", "/api/v1/heartbeat", beat),
        ("POST", "/api/v1/heartbeat", None),  # no body either: a malformed credential goes first
        ("PUT", f"/api/v1/jobs/{uuid.uuid4()}", None),
    ]
    tampered = agent.credential[:-2] + ("AA" if not agent.credential.endswith("AA") else "BB")
    for credential in (None, tampered, "vwe_" + agent.credential[4:], "x" * 500):
        headers = {"Authorization": f"Bearer {credential}"} if credential is not None else {}
        client = gateway.client()
        for method, path, body in calls:
            if credential == tampered and path.endswith("heartbeat") and body is None:
                continue  # a well-formed credential is checked with the body (see the route)
            r = client.request(method, path, headers=headers, json=body)
            assert r.status_code == 401, (method, path, credential, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
            if method != "HEAD":
                assert r.headers["content-type"] == PROBLEM
    basic = gateway.client().get(
        "/api/v1/vault/objects", headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )
    assert basic.status_code == 401


def test_revoked_credential_refused(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    assert client.get("/api/v1/vault/objects").status_code == 200
    with gateway.catalog.session() as session:
        assert revoke_agent_credentials(session, agent.agent_id, actor=ACTOR) == 1
    assert client.get("/api/v1/vault/objects").status_code == 401


def test_ca_and_health_are_public(gateway: GatewayServer) -> None:
    client = gateway.client()
    ca = client.get("/api/v1/ca")
    assert ca.status_code == 200
    assert ca.content == gateway.ca_cert.read_bytes()
    health = client.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert client.get("/healthz").json()["roles"] == ["gateway"]
