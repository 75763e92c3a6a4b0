"""Heartbeats and job reports land in the catalog, scoped to the credential's agent and tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, select

from tests.catalog.conftest import terminate_other_connections
from tests.gateway.harness import (
    EnrolledAgent,
    GatewayServer,
    content_name,
    heartbeat_body,
    upload_snapshot,
)
from vaultwatch.catalog import (
    Agent,
    BackupMode,
    BackupSet,
    Heartbeat,
    Job,
    JobState,
    Snapshot,
    db,
)

PROBLEM = "application/problem+json"


def _sets(gateway: GatewayServer, agent: EnrolledAgent) -> dict[str, BackupSet]:
    with gateway.catalog.session(tenant_id=agent.tenant_id) as session:
        rows = session.execute(select(BackupSet).where(BackupSet.agent_id == agent.agent_id))
        return {bs.name: bs for bs in rows.scalars()}


def test_heartbeat_records_the_retention_a_set_asks_for(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    body = heartbeat_body()
    body["backup_sets"][0]["retention"] = {"daily": 90, "within": "2d"}
    assert client.post("/api/v1/heartbeat", json=body).status_code == 200
    sets = _sets(gateway, agent)
    assert sets["etc"].retention == {"within": "2d", "daily": 90}
    assert sets["db"].retention == {} and sets["etc"].operator_retention is None
    del body["backup_sets"][0]["retention"]  # taken out of the configuration again
    assert client.post("/api/v1/heartbeat", json=body).status_code == 200
    assert _sets(gateway, agent)["etc"].retention == {}
    body["backup_sets"][0]["retention"] = {"daily": 0}  # keeps nothing
    r = client.post("/api/v1/heartbeat", json=body)
    assert r.status_code == 422 and "empty policy" in r.text


def test_heartbeat_records_facts_and_sets(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    r = client.post("/api/v1/heartbeat", json=heartbeat_body())
    assert r.status_code == 200, r.text
    assert r.json()["backup_sets"] == 2
    with gateway.catalog.session(tenant_id=agent.tenant_id) as session:
        row = session.get(Agent, agent.agent_id)
        assert row is not None
        assert row.last_seen_at is not None
        assert datetime.now(UTC) - row.last_seen_at < timedelta(minutes=1)
        assert row.version == "1.2.3"
        assert row.free_disk_bytes == 123456789
        assert row.gateway_reachable is True
        assert row.host_facts["gateways"] == {"https://gw1:8443": True, "https://gw2:8443": False}
        assert row.host_facts["platform"] == "linux-x86_64"
        beats = session.execute(
            select(Heartbeat).where(Heartbeat.agent_id == agent.agent_id)
        ).scalars()
        assert len(list(beats)) == 1
    sets = _sets(gateway, agent)
    assert set(sets) == {"etc", "db"}
    assert sets["etc"].mode == BackupMode.CONTINUOUS and sets["etc"].rpo_target_seconds == 900
    assert sets["db"].schedule == "daily 02:00" and sets["db"].excludes == ["*.tmp"]
    assert all(bs.enabled for bs in sets.values())

    # The agent's config changed: one set gone, one changed.
    second = heartbeat_body(
        backup_sets=[
            {"name": "etc", "paths": ["/etc", "/opt"], "mode": "continuous", "rpo_seconds": 60}
        ],
        gateways={"https://gw1:8443": False},
    )
    assert client.post("/api/v1/heartbeat", json=second).status_code == 200
    sets = _sets(gateway, agent)
    assert sets["etc"].paths == ["/etc", "/opt"] and sets["etc"].rpo_target_seconds == 60
    assert sets["etc"].enabled and not sets["db"].enabled
    with gateway.catalog.session(tenant_id=agent.tenant_id) as session:
        row = session.get(Agent, agent.agent_id)
        assert row is not None and row.gateway_reachable is False
    # Reported again: enabled again, same row.
    db_id = sets["db"].id
    assert client.post("/api/v1/heartbeat", json=heartbeat_body()).status_code == 200
    assert _sets(gateway, agent)["db"].id == db_id
    assert _sets(gateway, agent)["db"].enabled


@contextmanager
def statements_run() -> Iterator[list[str]]:
    """The SQL statements any engine in this process runs meanwhile (the gateway runs in it)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _backup_set_reads(statements: list[str]) -> list[str]:
    return [s for s in statements if s.upper().startswith("SELECT") and "FROM backup_sets" in s]


def test_unchanged_backup_sets_are_not_read_back_at_every_heartbeat(
    gateway: GatewayServer,
) -> None:
    """A heartbeat repeating the sets it reported before skips them; a change is written at once."""
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    assert client.post("/api/v1/heartbeat", json=heartbeat_body()).status_code == 200
    with statements_run() as statements:
        r = client.post("/api/v1/heartbeat", json=heartbeat_body(free_disk_bytes=42))
    assert r.status_code == 200 and r.json()["backup_sets"] == 2
    assert _backup_set_reads(statements) == []
    with gateway.catalog.session(tenant_id=agent.tenant_id) as session:
        row = session.get(Agent, agent.agent_id)
        assert row is not None and row.free_disk_bytes == 42  # the heartbeat itself landed
    changed = heartbeat_body(
        backup_sets=[{"name": "etc", "paths": ["/etc"], "mode": "continuous", "rpo_seconds": 60}]
    )
    with statements_run() as statements:
        r = client.post("/api/v1/heartbeat", json=changed)
    assert r.status_code == 200 and r.json()["backup_sets"] == 1
    assert _backup_set_reads(statements)
    sets = _sets(gateway, agent)
    assert sets["etc"].rpo_target_seconds == 60 and not sets["db"].enabled


def test_a_routine_heartbeat_is_three_statements(gateway: GatewayServer) -> None:
    """Credential check (with the database clock), agent update, history row: nothing else.

    On PostgreSQL one more sets the transaction's commit mode; every statement
    is a round trip, and round trips are what heartbeats wait for under load.
    """
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    assert client.post("/api/v1/heartbeat", json=heartbeat_body()).status_code == 200
    with statements_run() as statements:
        r = client.post("/api/v1/heartbeat", json=heartbeat_body(free_disk_bytes=7))
    assert r.status_code == 200
    verbs = [" ".join(s.split()[:2]).upper() for s in statements]
    expected = ["SELECT AGENT_CREDENTIALS.DIGEST,", "UPDATE AGENTS", "INSERT INTO"]
    if gateway.engine == "postgresql":
        expected.insert(0, "SET LOCAL")
    assert verbs == expected, statements
    with gateway.catalog.session(tenant_id=agent.tenant_id) as session:
        row = session.get(Agent, agent.agent_id)
        assert row is not None and row.free_disk_bytes == 7
        beats = session.execute(select(Heartbeat).where(Heartbeat.agent_id == agent.agent_id))
        assert len(beats.scalars().all()) == 2


def test_heartbeat_validation(gateway: GatewayServer) -> None:
    client = gateway.client(gateway.enroll().credential)
    scheduled_without_schedule = heartbeat_body(
        backup_sets=[{"name": "x", "paths": ["/x"], "mode": "scheduled", "rpo_seconds": 60}]
    )
    r = client.post("/api/v1/heartbeat", json=scheduled_without_schedule)
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM
    duplicate = heartbeat_body(
        backup_sets=[
            {"name": "x", "paths": ["/x"], "mode": "continuous", "rpo_seconds": 60},
            {"name": "x", "paths": ["/y"], "mode": "continuous", "rpo_seconds": 60},
        ]
    )
    assert client.post("/api/v1/heartbeat", json=duplicate).status_code == 400
    for bad in (
        heartbeat_body(free_disk_bytes=-1),
        heartbeat_body(agent_version=""),
        heartbeat_body(
            backup_sets=[{"name": "x", "paths": [], "mode": "continuous", "rpo_seconds": 1}]
        ),
        heartbeat_body(
            backup_sets=[{"name": "x", "paths": ["/"], "mode": "hourly", "rpo_seconds": 1}]
        ),
        heartbeat_body(
            backup_sets=[{"name": "x", "paths": ["/"], "mode": "continuous", "rpo_seconds": 0}]
        ),
        heartbeat_body(tenant_id=str(uuid.uuid4())),
        heartbeat_body(gateways={"u": [1]}),
    ):
        r = client.post("/api/v1/heartbeat", json=bad)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == PROBLEM


def _job(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "backup_set": "etc",
        "kind": "backup",
        "state": "running",
        "bytes_done": 100,
        "bytes_total": 1000,
        "files_done": 1,
        "files_total": 10,
        "rate": 50.5,
        "eta_seconds": 18,
        "errors": [],
        "snapshot": None,
    }
    body.update(changes)
    return body


def _put_job(client: httpx.Client, uid: uuid.UUID, **changes: Any) -> httpx.Response:
    return client.put(f"/api/v1/jobs/{uid}", json=_job(**changes))


def test_job_lifecycle(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    assert client.post("/api/v1/heartbeat", json=heartbeat_body()).status_code == 200
    uid = uuid.uuid4()
    first = _put_job(client, uid, state="queued", bytes_done=0)
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True
    again = _put_job(client, uid, state="queued", bytes_done=0)
    assert again.status_code == 200 and again.json()["created"] is False
    r = _put_job(client, uid, state="waiting_for_network")
    assert r.status_code == 200
    assert r.json()["state"] == "waiting_for_network"
    assert r.json()["catalog_state"] == "waiting_for_network"
    assert _put_job(client, uid, state="running", bytes_done=600).status_code == 200

    # The snapshot must be in the vault before the catalog records it.
    snap_bytes = b"an encrypted snapshot file"
    snap_name = content_name(snap_bytes, "snapshots")
    snap_id = snap_name.split("/")[1]
    now = datetime.now(UTC)
    snapshot = {
        "id": snap_id,
        "hostname": "web-01",
        "paths": ["/etc"],
        "started_at": (now - timedelta(minutes=2)).isoformat(),
        "finished_at": now.isoformat(),
        "tags": ["continuous"],
        "files_total": 10,
        "bytes_total": 1000,
        "files_new": 3,
        "files_changed": 1,
        "bytes_added": 400,
        "bytes_stored": 180,
    }
    missing = _put_job(client, uid, state="succeeded", snapshot=snapshot)
    assert missing.status_code == 400, missing.text
    assert "not in the vault" in missing.json()["detail"]
    upload_snapshot(client, snap_bytes)
    done = _put_job(
        client,
        uid,
        state="partial",
        bytes_done=1000,
        files_done=10,
        errors=["/etc/shadow: permission denied", {"path": "/etc/x", "message": "vanished"}],
        snapshot=snapshot,
    )
    assert done.status_code == 200, done.text
    assert done.json()["snapshot_recorded"] is True
    assert done.json()["catalog_state"] == "partial"
    with gateway.catalog.session(tenant_id=agent.tenant_id) as session:
        job = session.get(Job, uid)
        assert job is not None
        assert job.agent_id == agent.agent_id
        assert job.state == JobState.PARTIAL and job.state.is_final
        assert job.bytes_done == 1000 and job.files_total == 10
        assert job.error_count == 2
        assert job.errors == ["/etc/shadow: permission denied", "/etc/x: vanished"]
        assert job.started_at is not None and job.finished_at is not None
        assert job.backup_set_id == _sets(gateway, agent)["etc"].id
        snap = session.get(Snapshot, job.snapshot_id)
        assert snap is not None
        assert snap.vault_snapshot_id == snap_id
        assert snap.bytes_added == 400 and snap.tags == ["continuous"]
        assert snap.bytes_stored == 180
    # A late duplicate of the final report is fine; reopening or changing the outcome is not.
    assert _put_job(client, uid, state="partial", snapshot=snapshot).status_code == 200
    for later in ("running", "waiting_for_network", "succeeded"):
        reopened = _put_job(client, uid, state=later)
        assert reopened.status_code == 409, later
        assert reopened.headers["content-type"] == PROBLEM


def _stored_job(gateway: GatewayServer, agent: EnrolledAgent, uid: uuid.UUID) -> Job:
    with gateway.catalog.session(tenant_id=agent.tenant_id) as session:
        job = session.get(Job, uid)
        assert job is not None
        session.expunge(job)
        return job


def test_waiting_for_network_then_succeeded_are_stored_as_such(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    assert client.post("/api/v1/heartbeat", json=heartbeat_body()).status_code == 200
    uid = uuid.uuid4()
    assert _put_job(client, uid, state="running", bytes_done=100).status_code == 201

    waiting = _put_job(client, uid, state="waiting_for_network", bytes_done=400)
    assert waiting.status_code == 200, waiting.text
    assert waiting.json()["state"] == waiting.json()["catalog_state"] == "waiting_for_network"
    job = _stored_job(gateway, agent, uid)
    assert job.state is JobState.WAITING_FOR_NETWORK and not job.state.is_final
    assert job.bytes_done == 400 and job.finished_at is None
    with gateway.catalog.session(tenant_id=agent.tenant_id) as session:
        waiting_jobs = session.execute(
            select(Job.id).where(Job.state == JobState.WAITING_FOR_NETWORK)
        ).scalars()
        assert uid in set(waiting_jobs)  # the SOC can find jobs waiting for the network

    # Still retrying (the same report again), then the network is back and the job finishes.
    assert _put_job(client, uid, state="waiting_for_network", bytes_done=400).status_code == 200
    done = _put_job(client, uid, state="succeeded", bytes_done=1000, files_done=10)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == done.json()["catalog_state"] == "succeeded"
    job = _stored_job(gateway, agent, uid)
    assert job.state is JobState.SUCCEEDED and job.finished_at is not None
    assert job.error_count == 0 and job.bytes_done == 1000


def test_job_of_another_agent_or_tenant(gateway: GatewayServer) -> None:
    tenant = gateway.tenant()
    a = gateway.enroll(tenant)
    same_tenant = gateway.enroll(tenant, hostname="srv2")
    other = gateway.enroll()
    uid = uuid.uuid4()
    assert _put_job(gateway.client(a.credential), uid).status_code == 201
    for intruder in (same_tenant, other):
        r = _put_job(gateway.client(intruder.credential), uid, state="failed")
        assert r.status_code == 409, r.text
        assert r.headers["content-type"] == PROBLEM
    with gateway.catalog.session() as session:
        job = session.get(Job, uid)
        assert job is not None and job.state == JobState.RUNNING and job.agent_id == a.agent_id


def test_job_validation(gateway: GatewayServer) -> None:
    client = gateway.client(gateway.enroll().credential)
    for bad in (
        _job(state="exploded"),
        _job(kind="mine-bitcoin"),
        _job(bytes_done=-5),
        _job(rate=-1),
        _job(snapshot={"id": "nothex"}),
        _job(tenant="x"),
    ):
        r = client.put(f"/api/v1/jobs/{uuid.uuid4()}", json=bad)
        assert r.status_code == 422, r.text
    r = client.put("/api/v1/jobs/not-a-uuid", json=_job())
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    # No backup set by that name (yet): the job is kept, unlinked.
    r = client.put(f"/api/v1/jobs/{uuid.uuid4()}", json=_job(backup_set="unknown", kind="restore"))
    assert r.status_code == 201


@pytest.mark.parametrize("gateway", ["postgresql"], indirect=True)
def test_a_lost_catalog_connection_is_a_retryable_503(
    gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database restart between checks fails one request with 503, and the next one succeeds."""
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    assert client.post("/api/v1/heartbeat", json=heartbeat_body()).status_code == 200
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # no connection looks idle
    assert terminate_other_connections(gateway.catalog.engine.url) >= 1
    gateway.catalog.engine.dispose()  # the harness's own connections died too
    r = client.post("/api/v1/heartbeat", json=heartbeat_body())
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["retry-after"] == "5"
    assert r.json()["type"] == "urn:vaultwatch:problem:catalog-unavailable"
    assert client.post("/api/v1/heartbeat", json=heartbeat_body()).status_code == 200
