"""Retention over the operators' API: dry runs for every SOC role, changes for supervisors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.gateway.conftest import gateway, postgres_server_url
from tests.gateway.harness import GatewayServer
from tests.retention.harness import ManagedVault, random_files
from tests.soc.api.harness import add_user_with_key
from vaultwatch.catalog.models import BackupSet, Role
from vaultwatch.server import build_app

__all__ = ["gateway", "postgres_server_url"]


@pytest.fixture
def vault(gateway: GatewayServer, tmp_path: Path) -> Iterator[ManagedVault]:
    managed = ManagedVault.create(gateway, tmp_path)
    try:
        yield managed
    finally:
        managed.close()


@pytest.fixture
def web(gateway: GatewayServer) -> Iterator[TestClient]:
    with TestClient(build_app(gateway.settings, ("web",), catalog=gateway.catalog)) as client:
        yield client


def _key(gateway: GatewayServer, role: Role, tenant: uuid.UUID | None = None) -> dict[str, str]:
    email = f"{role.value}-{uuid.uuid4().hex[:8]}@example.com"
    key = add_user_with_key(gateway.catalog, gateway.key, email, role, tenant)
    return {"Authorization": f"Bearer {key}"}


def test_operators_dry_run_and_supervisors_apply(
    vault: ManagedVault, web: TestClient, gateway: GatewayServer
) -> None:
    ids = [vault.backup(random_files(f"{n}.bin", size=40_000)).id for n in "abc"]
    with gateway.catalog.session() as session:
        set_id = session.scalars(
            select(BackupSet.id).where(BackupSet.tenant_id == vault.tenant_id)
        ).one()
    operator = _key(gateway, Role.SOC_OPERATOR)
    supervisor = _key(gateway, Role.SOC_SUPERVISOR)
    customer = _key(gateway, Role.CUSTOMER_ADMIN, vault.tenant_id)

    policy = {"policy": {"last": 1}}
    url = f"/api/v1/backup-sets/{set_id}/retention"
    assert web.put(url, json=policy, headers=operator).status_code == 403
    assert web.put(url, json=policy, headers=customer).status_code == 403
    r = web.put(url, json=policy, headers=supervisor)
    assert r.status_code == 200, r.text
    assert r.json()["floor"] == {"last": 1} and r.json()["source"] == "operator"
    bad = web.put(url, json={"policy": {"daily": -5}}, headers=supervisor)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem")
    assert web.get(url, headers=operator).json()["describe"] == "keep last 1 (operator)"

    body = {"tenant_id": str(vault.tenant_id)}
    dry = web.post("/api/v1/retention/runs", json=body, headers=operator)
    assert dry.status_code == 200, dry.text
    (outcome,) = dry.json()["vaults"]
    removed = [s["snapshot"] for s in outcome["sets"][0]["snapshots"] if s["action"] == "remove"]
    assert sorted(removed) == sorted(ids[:2]) and dry.json()["dry_run"]
    assert len(vault.names("snapshots/")) == 3

    real = {**body, "dry_run": False}
    assert web.post("/api/v1/retention/runs", json=real, headers=operator).status_code == 403
    assert web.post("/api/v1/retention/runs", json=body, headers=customer).status_code == 403
    done = web.post("/api/v1/retention/runs", json=real, headers=supervisor)
    assert done.status_code == 200 and done.json()["vaults"][0]["snapshots_removed"] == 2
    assert vault.names("snapshots/") == {f"snapshots/{ids[2]}"}
