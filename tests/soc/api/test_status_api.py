"""The status API through the real web app: what each key sees, paging, problems, tenant scoping."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from tests.soc.api.harness import SocApi
from tests.soc.test_status import EXPECTED, Fleet, build_fleet
from vaultwatch.catalog.agent_reports import JobReport, report_job
from vaultwatch.catalog.models import Agent, BackupSet, JobKind, JobState
from vaultwatch.catalog.soc_models import ServerNode

ENDPOINTS = [
    "/api/v1/status",
    "/api/v1/agents",
    f"/api/v1/agents/{uuid.uuid4()}",
    "/api/v1/jobs?running=true",
    f"/api/v1/jobs/{uuid.uuid4()}",
    f"/api/v1/backup-sets/{uuid.uuid4()}/snapshots",
    "/api/v1/nodes",
]


@pytest.fixture
def fleet(api: SocApi) -> Fleet:
    fleet = build_fleet(api.catalog, tenants=(api.tenant_id, api.other_tenant_id))
    with api.catalog.session() as session:
        session.add(ServerNode(name="gw1", site="dc1", roles=["gateway"], last_seen_at=fleet.now))
    return fleet


def _get(api: SocApi, path: str, key: str, **params: Any) -> Any:
    answer = api.client.get(path, headers=api.as_(key), params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_every_status_endpoint_needs_a_key(api: SocApi) -> None:
    for path in ENDPOINTS:
        answer = api.client.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_staff_see_every_tenant(api: SocApi, fleet: Fleet) -> None:
    summary = _get(api, "/api/v1/status", api.operator_key)
    assert summary["agents"] == len(EXPECTED)
    assert summary["states"]["unprotected"] == 5 and summary["states"]["maintenance"] == 1
    assert {t["tenant_name"] for t in summary["tenants"]} == {"Acme", "Globex"}
    assert summary["nodes"] == 1 and summary["nodes_down"] == 0
    page = _get(api, "/api/v1/agents", api.operator_key, limit=500)
    assert {a["hostname"]: a["state"] for a in page["items"]} == {
        host: state.value for host, (state, _) in EXPECTED.items()
    }
    assert {a["hostname"]: a["reason"] for a in page["items"]}["d-failed"] == "last_job_failed"
    nodes = _get(api, "/api/v1/nodes", api.operator_key)
    assert [(n["name"], n["up"]) for n in nodes] == [("gw1", True)]


def test_a_customer_key_sees_only_its_tenant_and_404_for_others(api: SocApi, fleet: Fleet) -> None:
    summary = _get(api, "/api/v1/status", api.customer_key)
    assert summary["agents"] == len(EXPECTED) - 1
    assert [t["tenant_name"] for t in summary["tenants"]] == ["Acme"]
    assert summary["nodes"] is None
    hosts = {a["hostname"] for a in _get(api, "/api/v1/agents", api.customer_key)["items"]}
    assert "z-globex" not in hosts and "a-protected" in hosts
    # Asking for the other tenant by filter finds nothing rather than leaking it.
    other = _get(api, "/api/v1/agents", api.customer_key, tenant=str(fleet.globex))
    assert other["items"] == []
    jobs = _get(api, "/api/v1/jobs", api.customer_key, limit=500)
    assert jobs and all(j["tenant_id"] == str(fleet.acme) for j in jobs)

    foreign = [
        f"/api/v1/agents/{fleet.agents['z-globex']}",
        f"/api/v1/jobs/{fleet.jobs['z-globex:ok']}",
        f"/api/v1/backup-sets/{fleet.sets['z-globex']}/snapshots",
    ]
    for path in foreign:
        answer = api.client.get(path, headers=api.as_(api.customer_key))
        assert answer.status_code == 404, path
        assert answer.json()["status"] == 404
        assert api.client.get(path, headers=api.as_(api.other_customer_key)).status_code == 200
    own = _get(api, f"/api/v1/agents/{fleet.agents['a-protected']}", api.customer_key)
    assert own["state"] == "protected" and own["backup_sets"][0]["name"] == "home"
    assert api.client.get("/api/v1/nodes", headers=api.as_(api.customer_key)).status_code == 403


def test_a_key_with_neither_tenant_nor_soc_role_is_refused(api: SocApi, fleet: Fleet) -> None:
    answer = api.client.get("/api/v1/status", headers=api.as_(api.technician_key))
    assert answer.status_code == 403


def test_agents_page_by_cursor_and_offset_and_filter_by_state(api: SocApi, fleet: Fleet) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 5}
    while True:
        page = _get(api, "/api/v1/agents", api.operator_key, **params)
        seen += [a["hostname"] for a in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == sorted(EXPECTED)
    by_offset = _get(api, "/api/v1/agents", api.operator_key, limit=2, offset=2)
    assert [a["hostname"] for a in by_offset["items"]] == sorted(EXPECTED)[2:4]
    at_risk = _get(api, "/api/v1/agents", api.operator_key, state="at_risk")
    assert [a["hostname"] for a in at_risk["items"]] == ["b-at-risk", "j-new"]
    only = _get(api, "/api/v1/agents", api.operator_key, tenant=str(fleet.globex))
    assert [a["hostname"] for a in only["items"]] == ["z-globex"]


def test_bad_query_input_is_a_problem_not_a_crash(api: SocApi, fleet: Fleet) -> None:
    cases = [
        ("/api/v1/agents", {"limit": 0}, 422),
        ("/api/v1/agents", {"limit": 100000}, 422),
        ("/api/v1/agents", {"state": "happy"}, 422),
        ("/api/v1/agents", {"cursor": "!!!"}, 400),
        ("/api/v1/agents", {"cursor": "abc", "offset": 3}, 400),
        ("/api/v1/agents/not-a-uuid", {}, 422),
        ("/api/v1/jobs", {"limit": -1}, 422),
    ]
    for path, params, code in cases:
        answer = api.client.get(path, headers=api.as_(api.operator_key), params=params)
        assert answer.status_code == code, (path, params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_running_jobs_and_snapshots(api: SocApi, fleet: Fleet) -> None:
    job_id = uuid.uuid4()
    with api.catalog.session() as session:
        agent = session.get(Agent, fleet.agents["b-at-risk"])
        bs = session.get(BackupSet, fleet.sets["b-at-risk"])
        assert agent is not None and bs is not None
        report_job(
            session,
            agent,
            job_id,
            JobReport(
                JobKind.BACKUP,
                JobState.WAITING_FOR_NETWORK,
                backup_set="home",
                bytes_done=600,
                bytes_total=800,
                phase="backing up",
                resumed_bytes=400,
            ),
            repository_id=bs.repository_id,
            now=fleet.now - timedelta(seconds=3),
        )
    running = _get(api, "/api/v1/jobs", api.customer_key, running="true")
    assert [
        (j["id"], j["state"], j["phase"], j["resumed_bytes"], j["percent"]) for j in running
    ] == [(str(job_id), "waiting_for_network", "backing up", 400, 75.0)]
    assert _get(api, "/api/v1/jobs", api.other_customer_key, running="true") == []
    one = _get(api, f"/api/v1/jobs/{fleet.jobs['d-failed:last']}", api.customer_key)
    assert one["state"] == "failed" and one["errors"][-1] == "gateway refused the pack"
    snaps = _get(api, f"/api/v1/backup-sets/{fleet.sets['b-at-risk']}/snapshots", api.customer_key)
    assert len(snaps) == 1 and snaps[0]["bytes_added"] == 200


def test_the_status_api_is_in_the_published_schema(api: SocApi) -> None:
    paths = api.client.get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/api/v1/status",
        "/api/v1/agents",
        "/api/v1/agents/{agent_id}",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/backup-sets/{backup_set_id}/snapshots",
        "/api/v1/nodes",
    ):
        assert "get" in paths[path], path
