"""Console: operations in progress (page and live stream), the fleet drill-downs, diagnostics."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.soc.api.harness import SocApi
from tests.soc.test_status import build_fleet
from tests.web.harness import CUSTOMER, login, page_token
from vaultwatch.catalog import AuditEntry
from vaultwatch.catalog.agent_reports import JobReport, report_job
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.models import Agent, BackupSet, Job, JobKind, JobState
from vaultwatch.catalog.soc_models import AlarmJournalEntry, Severity
from vaultwatch.server import is_control_request
from vaultwatch.soc import alarms
from vaultwatch.soc.apikeys import Principal, authenticate_api_key
from vaultwatch.soc.events import Event
from vaultwatch.web import console, console_ops, sse

HOSTILE = '<script>alert("job")</script>'


@dataclass
class Seeded:
    agents: dict[str, uuid.UUID]
    running: uuid.UUID
    stalled: uuid.UUID
    check: uuid.UUID


def _report(api: SocApi, agent_id: uuid.UUID, job_id: uuid.UUID, report: JobReport) -> None:
    with api.catalog.session() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        repo = session.scalar(select(BackupSet.repository_id).where(BackupSet.agent_id == agent_id))
        assert repo is not None
        report_job(session, agent, job_id, report, repository_id=repo)


@pytest.fixture(scope="module")
def seeded(web_api: SocApi) -> Seeded:
    """The status tests' fleet in the web app's tenants, with running and stalled jobs."""
    fleet = build_fleet(web_api.catalog, tenants=(web_api.tenant_id, web_api.other_tenant_id))
    running, stalled, check = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    _report(
        web_api,
        fleet.agents["a-protected"],
        running,
        JobReport(
            JobKind.BACKUP,
            JobState.RUNNING,
            backup_set="home",
            bytes_done=400 * 1024**2,
            bytes_total=1000 * 1024**2,
            files_done=40,
            files_total=100,
            rate=8 * 1024**2,
            eta_seconds=75,
            phase="uploading",
            current_file="/srv/" + HOSTILE,
            resumed_bytes=64 * 1024**2,
        ),
    )
    _report(
        web_api,
        fleet.agents["b-at-risk"],
        stalled,
        JobReport(
            JobKind.RESTORE, JobState.RUNNING, bytes_done=10, bytes_total=100, phase="restoring"
        ),
    )
    _report(web_api, fleet.agents["z-globex"], check, JobReport(JobKind.CHECK, JobState.RUNNING))
    with web_api.catalog.session() as session:
        old = database_now(session) - timedelta(minutes=20)
        session.execute(update(Job).where(Job.id == stalled).values(updated_at=old))
    return Seeded(fleet.agents, running, stalled, check)


def _row(html: str, job_id: uuid.UUID) -> str:
    match = re.search(rf'<tr id="job-{job_id}".*?</tr>', html, re.S)
    assert match, f"no row for job {job_id}"
    return match.group(0)


def test_customers_get_the_forbidden_page_on_every_console_page(
    api: SocApi, seeded: Seeded
) -> None:
    login(api.client, CUSTOMER)
    agent = seeded.agents["a-protected"]
    for path in (
        "/console/operations",
        "/console/operations/stream",
        "/console/fleet",
        f"/console/tenants/{api.tenant_id}",
        f"/console/agents/{agent}",
    ):
        page = api.client.get(path)
        assert page.status_code == 403, path
        assert "operations center" in page.text and "<html" in page.text
    assert api.client.post(f"/console/agents/{agent}/diagnose", data={}).status_code == 403


def test_operations_show_running_backups_and_restores_with_progress_and_stalls(
    api: SocApi, seeded: Seeded
) -> None:
    login(api.client)
    page = api.client.get("/console/operations")
    assert page.status_code == 200
    running = _row(page.text, seeded.running)
    assert 'value="40.0"' in running and "40.0 %" in running
    assert "400.0 MiB of 1000.0 MiB" in running and "40 of 100 files" in running
    assert "8.0 MiB/s" in running and "1 m 15 s" in running and "64.0 MiB" in running
    assert "uploading" in running and "a-protected" in running
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(&#34;job&#34;)" in running
    stalled = _row(page.text, seeded.stalled)
    assert 'class="job stalled"' in stalled and "restore" in stalled and "stalled" in stalled
    # Stalled first, and the check job is not an operation on customers' data.
    assert page.text.index(f"job-{seeded.stalled}") < page.text.index(f"job-{seeded.running}")
    assert f"job-{seeded.check}" not in page.text
    assert 'id="ops-count">2<' in page.text and 'id="ops-stalled">1<' in page.text
    assert "ops.js" in page.text and 'data-stream="/console/operations/stream"' in page.text


def _events(body: str) -> list[dict[str, str]]:
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.partition(": ")[::2] for line in block.splitlines())
        if "event" in fields:
            events.append(fields)
    return events


def test_the_operations_stream_sends_the_rows_and_then_only_changes(
    api: SocApi, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "STREAM_SECONDS", 1.0)
    monkeypatch.setattr(console_ops, "POLL_SECONDS", 0.1)
    login(api.client)
    agent = seeded.agents["a-protected"]
    progress = JobReport(
        JobKind.BACKUP,
        JobState.RUNNING,
        backup_set="home",
        bytes_done=750,
        bytes_total=1000,
        phase="uploading",
    )
    _report(api, agent, seeded.running, progress)
    answer = api.client.get("/console/operations/stream")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(
        "text/event-stream"
    )
    assert answer.text.startswith(f"retry: {sse.RETRY_MS}\n\n")
    events = [e for e in _events(answer.text) if e["event"] == "jobs"]
    assert len(events) == 1  # nothing moved after the first: no repeats
    data = json.loads(events[0]["data"])
    assert data["count"] == 2 and data["stalled"] == 1
    rows = {r["id"]: r["html"] for r in data["rows"]}
    assert 'value="75.0"' in rows[str(seeded.running)]
    # A poll after a new report carries the moved bar; an unchanged poll sends nothing.
    stream = console_ops._OperationsStream(api.catalog, _staff(api))
    assert stream.poll() is not None and stream.poll() is None
    _report(api, agent, seeded.running, JobReport(**{**progress.__dict__, "bytes_done": 900}))
    moved = stream.poll()
    assert moved is not None and 'value=\\"90.0\\"' in moved


def _staff(api: SocApi) -> Principal:

    with api.catalog.session() as session:
        return authenticate_api_key(session, api.operator_key, key=api.token_key)


def test_the_operations_stream_is_not_control_traffic() -> None:
    assert not is_control_request({"path": "/console/operations/stream"})
    assert not is_control_request({"path": "/console/operations"})
    assert is_control_request({"path": "/api/v1/jobs/x"})


def test_the_fleet_counts_each_tenants_agents_by_state(api: SocApi, seeded: Seeded) -> None:
    login(api.client)
    page = api.client.get("/console/fleet")
    assert page.status_code == 200
    acme = re.search(rf'<tr id="tenant-{api.tenant_id}".*?</tr>', page.text, re.S)
    assert acme
    cells = re.findall(r'<td class="num">(.*?)</td>', acme.group(0))
    assert cells[0] == "12"  # agents
    counts = [int(re.sub(r"<[^>]+>", "", c)) for c in cells[1:]]
    # protected, at risk, unprotected, not configured, paused, maintenance
    assert counts == [2, 2, 5, 1, 1, 1]
    assert f'href="/console/tenants/{api.tenant_id}"' in page.text
    assert 'data-state-count="unprotected">5<' in page.text


def test_the_tenant_page_lists_agents_with_reasons_alarms_and_incidents(
    api: SocApi, seeded: Seeded
) -> None:
    from vaultwatch.soc import incidents

    with api.catalog.session() as session:
        (raised,) = alarms.raise_events(
            session,
            [
                Event(
                    "c-breached",
                    "backup.overdue",
                    "home overdue <b>",
                    Severity.MAJOR,
                    tenant_id=api.tenant_id,
                )
            ],
        )
        incident = incidents.open_incident(
            session,
            title="Acme backups late",
            severity="major",
            actor="system:test",
            tenant_ids=[api.tenant_id],
        )
        incident_id = incident.id
    login(api.client)
    page = api.client.get(f"/console/tenants/{api.tenant_id}")
    assert page.status_code == 200
    row = re.search(rf'<tr id="agent-{seeded.agents["d-failed"]}".*?</tr>', page.text, re.S)
    assert row and "Unprotected" in row.group(0) and "the last backup failed" in row.group(0)
    assert f'id="alarm-{raised.id}"' in page.text and "home overdue &lt;b&gt;" in page.text
    assert (
        f'href="/console/incidents/{incident_id}"' in page.text and "Acme backups late" in page.text
    )
    assert "z-globex" not in page.text
    assert api.client.get(f"/console/tenants/{uuid.uuid4()}").status_code == 404
    assert api.client.get("/console/tenants/not-a-uuid").status_code in (400, 422)


def test_the_agent_page_shows_facts_sets_snapshots_jobs_and_alarms(
    api: SocApi, seeded: Seeded
) -> None:
    agent = seeded.agents["a-protected"]
    with api.catalog.session() as session:
        (raised,) = alarms.raise_events(
            session,
            [
                Event(
                    "a-protected", "agent.disk", "disk almost full", Severity.MINOR, agent_id=agent
                )
            ],
        )
    login(api.client)
    page = api.client.get(f"/console/agents/{agent}")
    assert page.status_code == 200
    assert "<h1>a-protected</h1>" in page.text and "Protected" in page.text
    assert "<dt>os</dt><dd>linux</dd>" in page.text and "1.2.3" in page.text
    assert "home" in page.text and "RPO 1 h 00 m" in page.text
    assert re.search(r"<code>[0-9a-f]{12}</code>", page.text)  # the last snapshot
    assert f'id="job-{seeded.running}"' in page.text
    assert f'id="alarm-{raised.id}"' in page.text and "disk almost full" in page.text
    assert f'<option value="{raised.id}">alarm {raised.id}: disk almost full</option>' in page.text
    assert api.client.get(f"/console/agents/{uuid.uuid4()}").status_code == 404


def test_diagnostics_need_the_csrf_token_and_keep_the_report_in_the_alarm(
    api: SocApi, seeded: Seeded
) -> None:
    agent = seeded.agents["d-failed"]
    with api.catalog.session() as session:
        (raised,) = alarms.raise_events(
            session,
            [Event("d-failed", "job.failed", "backup failed", Severity.MAJOR, agent_id=agent)],
        )
    login(api.client)
    refused = api.client.post(f"/console/agents/{agent}/diagnose", data={"alarm": str(raised.id)})
    assert refused.status_code == 403 and "expired" in refused.text
    token = page_token(api.client, f"/console/agents/{agent}")
    page = api.client.post(
        f"/console/agents/{agent}/diagnose", data={"csrf_token": token, "alarm": str(raised.id)}
    )
    assert page.status_code == 200
    assert "Diagnostics of agent" in page.text and "recent job errors" in page.text
    assert "permission denied" in page.text and "check-row-warn" in page.text
    assert 'id="report-status">fail<' in page.text  # the major alarm is still open
    assert f'href="/console/alarms/{raised.id}"' in page.text
    with api.catalog.session() as session:
        entry = session.scalars(
            select(AlarmJournalEntry).where(
                AlarmJournalEntry.alarm_id == raised.id, AlarmJournalEntry.action == "diagnose"
            )
        ).one()
        assert entry.details["kind"] == "agent" and entry.details["status"] == "fail"
        audited = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "diagnostics.run")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert audited is not None and audited.target == f"agent:{agent}"
    bad = api.client.post(
        f"/console/agents/{agent}/diagnose", data={"csrf_token": token, "alarm": "x1"}
    )
    assert bad.status_code == 400 and "alarm number" in bad.text


def test_the_alarm_drill_down_runs_diagnostics_of_its_agent(api: SocApi, seeded: Seeded) -> None:
    agent = seeded.agents["e-silent"]
    with api.catalog.session() as session:
        (raised,) = alarms.raise_events(
            session,
            [Event("e-silent", "agent.heartbeat", "silent", Severity.MAJOR, agent_id=agent)],
        )
    login(api.client)
    drill = api.client.get(f"/console/alarms/{raised.id}").text
    assert f'action="/console/alarms/{raised.id}/diagnose"' in drill and "Run diagnostics" in drill
    assert api.client.post(f"/console/alarms/{raised.id}/diagnose").status_code == 403
    token = page_token(api.client, f"/console/alarms/{raised.id}")
    page = api.client.post(f"/console/alarms/{raised.id}/diagnose", data={"csrf_token": token})
    assert page.status_code == 200 and f"Diagnostics of agent {agent}" in page.text
    assert "heartbeat" in page.text and 'id="report-status">fail<' in page.text
    journal = api.client.get(f"/console/alarms/{raised.id}").text
    assert "diagnostics of agent" in journal


def test_an_alarm_about_a_gateway_is_diagnosed_as_that_node() -> None:
    from vaultwatch.catalog.soc_models import Alarm

    assert console_ops.alarm_target(Alarm(entity="gateway:gw1", node="gw1")) == ("gateway", "gw1")
    assert console_ops.alarm_target(Alarm(entity="site:fra", node="ups1")) == ("node", "ups1")
    agent = uuid.uuid4()
    assert console_ops.alarm_target(Alarm(entity="x", node="n", agent_id=agent)) == (
        "agent",
        str(agent),
    )
    assert console.router is not console_ops.router


def test_the_fleet_marks_a_suspended_tenant(api: SocApi, seeded: Seeded) -> None:
    from vaultwatch.catalog.tenant_lifecycle import resume_tenant, suspend_tenant

    with api.catalog.session() as session:
        suspend_tenant(session, api.tenant_id, actor="system:test", reason="invoice unpaid")
    try:
        login(api.client)
        page = api.client.get("/console/fleet")
        acme = re.search(rf'<tr id="tenant-{api.tenant_id}".*?</tr>', page.text, re.S)
        other = re.search(rf'<tr id="tenant-{api.other_tenant_id}".*?</tr>', page.text, re.S)
        assert acme and other
        assert 'title="invoice unpaid">suspended</span>' in acme.group(0)
        assert "suspended" not in other.group(0)
    finally:
        with api.catalog.session() as session:
            resume_tenant(session, api.tenant_id, actor="system:test")
