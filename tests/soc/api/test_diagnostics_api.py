"""Diagnostics through the API: real checks against a real server, the report kept in the journal."""

from __future__ import annotations

from pathlib import Path

from tests.catalog.conftest import enroll
from tests.soc.api.harness import SocApi
from vaultwatch import __version__
from vaultwatch.catalog import Tenant
from vaultwatch.catalog.agents import record_heartbeat
from vaultwatch.catalog.soc_models import ServerNode
from vaultwatch.soc import alarms
from vaultwatch.soc.events import Event


def _checks(report: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in report["checks"]}  # type: ignore[attr-defined, index, union-attr]


def test_diagnose_an_agent_and_keep_the_report_with_the_alarm(api: SocApi) -> None:
    with api.catalog.session() as session:
        tenant = session.get(Tenant, api.tenant_id)
        assert tenant is not None
    agent = enroll(api.catalog, tenant, api.token_key, hostname="db1")
    with api.catalog.session() as session:
        record_heartbeat(
            session,
            agent.agent.id,
            version="0.0.9",
            host_facts={"os": "Debian 12"},
            free_disk_bytes=10 * 1024**3,
            gateway_reachable=False,
        )
        (raised,) = alarms.raise_events(
            session,
            [
                Event(
                    node="db1",
                    alert_group="agent.heartbeat",
                    summary="silent",
                    agent_id=agent.agent.id,
                )
            ],
        )
    answer = api.client.post(
        "/api/v1/diagnostics",
        json={"kind": "agent", "name": "DB1", "alarm_id": raised.id},
        headers=api.as_(api.operator_key),
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    checks = _checks(report)
    assert checks["heartbeat"]["status"] == "ok"
    assert checks["agent version"]["status"] == "warn"
    assert "0.0.9" in str(checks["agent version"]["detail"]) and __version__ in str(
        checks["agent version"]["detail"]
    )
    assert checks["gateway reachability"]["status"] == "fail"
    assert checks["open alarms"]["status"] == "warn"
    assert report["status"] == "fail"
    journal = api.client.get(
        f"/api/v1/alarms/{raised.id}/journal", headers=api.as_(api.operator_key)
    ).json()
    assert journal[-1]["action"] == "diagnose"
    assert journal[-1]["details"]["checks"] == report["checks"]


def test_diagnose_a_node_checks_reachability_database_and_store(
    api: SocApi, tmp_path: Path
) -> None:
    with api.catalog.session() as session:
        session.add(
            ServerNode(
                name="gw-down",
                roles=["gateway"],
                url="https://127.0.0.1:1",
                version=__version__,
                health={"disks": [{"role": "data", "total_bytes": 1000, "free_bytes": 50}]},
            )
        )
    answer = api.client.post(
        "/api/v1/diagnostics",
        json={"kind": "gateway", "name": "gw-down"},
        headers=api.as_(api.operator_key),
    )
    assert answer.status_code == 200, answer.text
    checks = _checks(answer.json())
    assert checks["last report"]["status"] == "fail"
    assert checks["tls handshake"]["status"] == "fail"
    assert checks["health endpoint"]["status"] == "fail"
    assert checks["free disk (data)"]["status"] == "warn"
    assert checks["database"]["status"] == "ok"
    assert checks["store read and write"]["status"] == "ok"
    assert checks["version"]["status"] == "ok"


def test_diagnose_refuses_unknown_targets_and_customers(api: SocApi) -> None:
    h = api.as_(api.operator_key)
    missing = api.client.post(
        "/api/v1/diagnostics", json={"kind": "agent", "name": "nope"}, headers=h
    )
    assert missing.status_code == 404
    bad_kind = api.client.post("/api/v1/diagnostics", json={"kind": "moon", "name": "x"}, headers=h)
    assert bad_kind.status_code == 422
    no_alarm = api.client.post(
        "/api/v1/diagnostics", json={"kind": "tenant", "name": "Acme", "alarm_id": 12345}, headers=h
    )
    assert no_alarm.status_code == 404
    customer = api.client.post(
        "/api/v1/diagnostics",
        json={"kind": "tenant", "name": "Acme"},
        headers=api.as_(api.customer_key),
    )
    assert customer.status_code == 403


def test_diagnose_a_tenant_finds_a_missing_vault(api: SocApi) -> None:
    answer = api.client.post(
        "/api/v1/diagnostics",
        json={"kind": "tenant", "name": "acme"},
        headers=api.as_(api.operator_key),
    )
    assert answer.status_code == 200, answer.text
    checks = _checks(answer.json())
    assert checks["agents"]["detail"] == "0 active, 0 silent"
    vault = checks["vault"]
    assert vault["status"] == "fail"  # the test's tenants were never provisioned a vault
    assert str(api.tenant_id) in str(vault["detail"]) and "no repository" in str(vault["detail"])
