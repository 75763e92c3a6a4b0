"""The customer portal: tenant scoping, every state with its reason, roles, forms, live jobs."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from tests.soc.api.harness import PASSWORD, SocApi, add_user_with_key
from tests.soc.test_status import EXPECTED, Fleet, build_fleet
from tests.web.harness import CUSTOMER, OPERATOR, login, page_token
from vaultwatch.catalog import AuditEntry, Role
from vaultwatch.catalog.agent_reports import JobReport, report_job
from vaultwatch.catalog.enrollment import redeem_enrollment_token
from vaultwatch.catalog.models import Agent, JobKind, JobState, Repository, Snapshot, User
from vaultwatch.catalog.soc_models import (
    Alarm,
    CaseEntry,
    CustomerUpdate,
    CustomerUpdateKind,
    CustomerUpdateState,
    Incident,
    IncidentState,
    IncidentTenant,
    Severity,
    SupportCase,
)
from vaultwatch.server import is_control_request
from vaultwatch.soc import cases
from vaultwatch.web import portal, sse

VIEWER = "viewer@acme.example"
OTHER = "admin@globex.example"


@pytest.fixture(scope="module")
def fleet(web_api: SocApi) -> Fleet:
    """One Acme server per state and reason, one Globex server, and an Acme viewer."""
    built = build_fleet(web_api.catalog, tenants=(web_api.tenant_id, web_api.other_tenant_id))
    add_user_with_key(
        web_api.catalog, web_api.token_key, VIEWER, Role.CUSTOMER_VIEWER, web_api.tenant_id
    )
    return built


@pytest.fixture
def acme(api: SocApi, fleet: Fleet) -> Iterator[SocApi]:
    """The app with Acme's administrator signed in; cases and notices removed afterwards."""
    assert login(api.client, CUSTOMER, next_url="/portal").status_code == 303
    yield api
    with api.catalog.session() as session:
        session.execute(delete(CaseEntry))
        session.execute(delete(SupportCase))
        session.execute(delete(CustomerUpdate))
        session.execute(delete(IncidentTenant))
        session.execute(delete(Incident))


def _running_job(api: SocApi, fleet: Fleet, done: int, **changes: Any) -> uuid.UUID:
    job_id: uuid.UUID = changes.pop("job_id", None) or uuid.uuid4()
    with api.catalog.session() as session:
        agent = session.get(Agent, fleet.agents["a-protected"])
        assert agent is not None
        repo = session.scalars(
            select(Repository.id).where(Repository.tenant_id == fleet.acme)
        ).one()
        report = JobReport(
            JobKind.BACKUP,
            changes.pop("state", JobState.RUNNING),
            backup_set="home",
            bytes_done=done,
            bytes_total=1000,
            files_done=done // 100,
            files_total=10,
            rate=250.0,
            eta_seconds=(1000 - done) // 250,
            phase="upload",
            current_file="/srv/data/report.pdf",
            resumed_bytes=100,
            **changes,
        )
        report_job(session, agent, job_id, report, repository_id=repo)
    return job_id


# -- who sees what -------------------------------------------------------------------------------


def test_customers_land_on_the_portal_and_see_only_their_servers(api: SocApi, fleet: Fleet) -> None:
    answer = login(api.client, CUSTOMER)
    assert answer.status_code == 303 and answer.headers["location"] == "/portal"
    page = api.client.get("/portal")
    assert page.status_code == 200
    for name in EXPECTED:
        assert (name in page.text) == (name != "z-globex"), name
    # Another tenant's server, or one that does not exist, is simply not there.
    for agent_id in (fleet.agents["z-globex"], uuid.uuid4()):
        for path in ("", "/stream"):
            missing = api.client.get(f"/portal/servers/{agent_id}{path}")
            assert missing.status_code == 404, path
            assert "z-globex" not in missing.text
    mine = api.client.get(f"/portal/servers/{fleet.agents['a-protected']}")
    assert mine.status_code == 200 and "a-protected" in mine.text


def test_every_state_is_on_the_dashboard_with_its_reason(acme: SocApi, fleet: Fleet) -> None:
    page = acme.client.get("/portal").text
    for name, (state, reason) in EXPECTED.items():
        if name == "z-globex":
            continue
        row = re.search(rf'<tr id="server-{fleet.agents[name]}"(.*?)</tr>', page, re.S)
        assert row, name
        assert f'data-state="{state.value}"' in row.group(0), name
        assert f'data-reason="{reason.value}"' in row.group(0), name
        assert portal.STATE_LABELS[state] in row.group(0)
    # The reason is said in words, and the RPO bar and the timeline are drawn.
    assert "no heartbeat for" in page and "the last backup failed" in page
    assert "backup set disabled" in page or "every backup set is disabled" in page
    assert 'class="chart bar state-at_risk"' in page and "RPO used: 67%" in page
    assert 'class="chart timeline' in page and "RPO breached for" in page
    assert re.search(r'<span class="count">1</span> <span class="label">Maintenance', page)
    week = acme.client.get("/portal?window=7d")
    assert week.status_code == 200 and 'aria-current="true">Last 7d' in week.text
    assert acme.client.get("/portal?window=1y").status_code == 400


def test_staff_are_refused_with_a_way_to_the_console(api: SocApi, fleet: Fleet) -> None:
    answer = login(api.client, OPERATOR)
    assert answer.headers["location"] == "/console"
    for path in ("/portal", f"/portal/servers/{fleet.agents['a-protected']}", "/portal/cases"):
        page = api.client.get(path)
        assert page.status_code == 403, path
        assert 'href="/console"' in page.text and "a-protected" not in page.text


def test_viewers_see_but_only_admins_manage_people_and_servers(api: SocApi, fleet: Fleet) -> None:
    login(api.client, VIEWER)
    assert api.client.get("/portal").status_code == 200
    assert "Add a server" not in api.client.get("/portal").text
    token = page_token(api.client, "/portal")
    for path in ("/portal/users", "/portal/servers/add"):
        assert api.client.get(path).status_code == 403, path
        refused = api.client.post(
            path, data={"csrf_token": token, "email": "x@acme.example", "note": "n"}
        )
        assert refused.status_code == 403, path
    with api.catalog.session() as session:
        assert session.scalar(select(User).where(User.email == "x@acme.example")) is None
    api.client.cookies.clear()
    login(api.client, CUSTOMER)
    assert api.client.get("/portal/users").status_code == 200
    assert api.client.get("/portal/servers/add").status_code == 200


def test_a_form_without_its_csrf_token_is_refused(acme: SocApi, fleet: Fleet) -> None:
    agent = fleet.agents["a-protected"]
    for path, data in (
        ("/portal/cases", {"subject": "help", "description": "please"}),
        ("/portal/users", {"email": "y@acme.example"}),
        ("/portal/servers/add", {"note": "x"}),
        (f"/portal/servers/{agent}/restore", {"snapshot_id": str(uuid.uuid4())}),
    ):
        for token in ("", "0" * 64):
            answer = acme.client.post(path, data={**data, "csrf_token": token})
            assert answer.status_code == 403, path
    with acme.catalog.session() as session:
        assert session.scalars(select(SupportCase)).first() is None


# -- cases and notices ---------------------------------------------------------------------------


def test_a_case_opened_in_the_portal_reaches_the_operations_center(
    acme: SocApi, fleet: Fleet
) -> None:
    token = page_token(acme.client, "/portal/cases")
    opened = acme.client.post(
        "/portal/cases",
        data={"csrf_token": token, "subject": "Restore slow", "description": "since Monday"},
        follow_redirects=False,
    )
    assert opened.status_code == 303
    case_id = int(opened.headers["location"].rsplit("/", 1)[1])
    with acme.catalog.session() as session:  # as staff see it: every tenant
        (case,) = cases.list_cases(session)
        assert case.id == case_id and case.tenant_id == fleet.acme
        assert case.opened_via == "portal" and case.contact_email == CUSTOMER
        cases.add_note(session, case_id, "user:staff", "check the uplink", internal=True)
        cases.send_update(session, case_id, "user:staff", "We are looking at your uplink.")
    reply = acme.client.post(
        f"/portal/cases/{case_id}/reply", data={"csrf_token": token, "text": "Thanks!"}
    )
    assert reply.status_code == 200
    page = reply.text
    assert "since Monday" in page and "We are looking at your uplink." in page
    assert "Thanks!" in page and "check the uplink" not in page
    assert "Vaultwatch support" in page and "You" in page
    with acme.catalog.session() as session:
        kinds = [e.kind for e in cases.history(session, case_id)]
    assert kinds == ["opened", "note", "status_update", "message"]
    empty = acme.client.post("/portal/cases", data={"csrf_token": token, "subject": " "})
    assert empty.status_code == 400 and "needs a subject" in empty.text
    # Another tenant's case is not found.
    acme.client.cookies.clear()
    login(acme.client, OTHER)
    assert acme.client.get(f"/portal/cases/{case_id}").status_code == 404
    other = page_token(acme.client, "/portal/cases")
    stranger = acme.client.post(
        f"/portal/cases/{case_id}/reply", data={"csrf_token": other, "text": "hi"}
    )
    assert stranger.status_code == 404


def test_the_status_page_shows_published_notices_and_the_crisis_banner(
    acme: SocApi, fleet: Fleet
) -> None:
    now = datetime.now(UTC)
    with acme.catalog.session() as session:
        crisis = Incident(
            title="Frankfurt site power outage",
            severity=int(Severity.CRITICAL),
            state=IncidentState.TRIGGERED,
            crisis=True,
            created_by="system:test",
        )
        session.add(crisis)
        session.flush()
        for tenant in (fleet.acme, fleet.globex):
            session.add(IncidentTenant(incident_id=crisis.id, tenant_id=tenant))
        for tenant, text, state in (
            (fleet.acme, "Backups to Frankfurt are queued <b>safely</b>.", "published"),
            (fleet.acme, "draft not yet approved", "draft"),
            (fleet.globex, "Globex-only words", "published"),
        ):
            session.add(
                CustomerUpdate(
                    incident_id=crisis.id,
                    tenant_id=tenant,
                    kind=CustomerUpdateKind.UPDATE,
                    state=CustomerUpdateState(state),
                    text=text,
                    created_by="system:test",
                    published_at=now if state == "published" else None,
                )
            )
    page = acme.client.get("/portal/status").text
    assert "Backups to Frankfurt are queued &lt;b&gt;safely&lt;/b&gt;." in page
    assert "draft not yet approved" not in page and "Globex-only words" not in page
    assert 'class="banner crisis"' in page and "Frankfurt site power outage" in page
    assert "Frankfurt site power outage" in acme.client.get("/portal").text


# -- people and servers --------------------------------------------------------------------------


def test_an_admin_adds_a_viewer_with_a_one_time_password(acme: SocApi, fleet: Fleet) -> None:
    token = page_token(acme.client, "/portal/users")
    email = f"new-{uuid.uuid4().hex[:6]}@acme.example"
    made = acme.client.post(
        "/portal/users",
        data={
            "csrf_token": token,
            "email": email,
            "display_name": "Nia",
            "role": "customer_viewer",
        },
    )
    assert made.status_code == 201
    password = re.search(r'id="new-password">([^<]+)<', made.text)
    assert password and email in made.text
    with acme.catalog.session() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None and user.tenant_id == fleet.acme
        assert user.role == Role.CUSTOMER_VIEWER
        entry = session.scalar(select(AuditEntry).where(AuditEntry.target == f"user:{user.id}"))
        assert entry is not None and entry.action == "user.create"
        assert entry.actor.startswith("user:") and entry.tenant_id == fleet.acme
    # The listing never shows it again; the new person signs in with it.
    assert password.group(1) not in acme.client.get("/portal/users").text
    acme.client.cookies.clear()
    assert login(acme.client, email, password.group(1)).headers["location"] == "/portal"
    acme.client.cookies.clear()
    login(acme.client, CUSTOMER)
    token = page_token(acme.client, "/portal/users")
    for taken in (email, OTHER, OPERATOR):
        again = acme.client.post("/portal/users", data={"csrf_token": token, "email": taken})
        assert again.status_code in (400, 409) and "already exists" in again.text
    staff = acme.client.post(
        "/portal/users",
        data={"csrf_token": token, "email": "z@acme.example", "role": "administrator"},
    )
    assert staff.status_code == 400 and "unknown role" in staff.text


def test_the_add_server_page_makes_a_token_that_enrolls_a_server(
    acme: SocApi, fleet: Fleet
) -> None:
    page = acme.client.get("/portal/servers/add")
    assert "vaultwatch agent enroll --server" in page.text and "--ca-cert ca.pem" in page.text
    fingerprint = re.search(r'id="ca-fingerprint">([0-9A-F:]{95})<', page.text)
    assert fingerprint, "the CA's SHA-256 fingerprint is shown"
    assert "/api/v1/ca" in page.text
    token = page_token(acme.client, "/portal/servers/add")
    made = acme.client.post(
        "/portal/servers/add", data={"csrf_token": token, "note": "files02", "lifetime": "1h"}
    )
    assert made.status_code == 201
    plaintext = re.search(r'id="enroll-token">(vwe_[^<]+)<', made.text)
    assert plaintext and f"--token {plaintext.group(1)}" in made.text
    with acme.catalog.session() as session:
        enrolled = redeem_enrollment_token(
            session, plaintext.group(1), key=acme.token_key, hostname="files02.acme.lan"
        )
        assert enrolled.agent.tenant_id == fleet.acme
    listing = acme.client.get("/portal/servers/add").text
    assert plaintext.group(1) not in listing
    assert re.search(r"tstate-used\">used</span> by files02.acme.lan", listing)
    assert "files02.acme.lan" in acme.client.get("/portal").text
    bad = acme.client.post("/portal/servers/add", data={"csrf_token": token, "lifetime": "9y"})
    assert bad.status_code == 400
    with acme.catalog.session() as session:
        session.execute(delete(Agent).where(Agent.id == enrolled.agent.id))


def test_hostile_text_is_shown_as_text(acme: SocApi, fleet: Fleet) -> None:
    hostile = '<script>alert("x")</script>'
    with acme.catalog.session() as session:
        agent = Agent(tenant_id=fleet.acme, hostname=hostile)
        session.add(agent)
    token = page_token(acme.client, "/portal/cases")
    opened = acme.client.post(
        "/portal/cases", data={"csrf_token": token, "subject": hostile, "description": hostile}
    )
    for page in (acme.client.get("/portal").text, opened.text,
                 acme.client.get(f"/portal/servers/{agent.id}").text):  # fmt: skip
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    with acme.catalog.session() as session:
        session.execute(delete(Agent).where(Agent.id == agent.id))


# -- restores and jobs ---------------------------------------------------------------------------


def test_asking_for_a_restore_raises_an_alarm_for_the_soc(acme: SocApi, fleet: Fleet) -> None:
    agent = fleet.agents["a-protected"]
    with acme.catalog.session() as session:
        snapshot = session.scalars(select(Snapshot).where(Snapshot.agent_id == agent)).one()
        foreign = session.scalars(
            select(Snapshot).where(Snapshot.agent_id == fleet.agents["z-globex"])
        ).one()
    page = acme.client.get(f"/portal/servers/{agent}")
    assert f'name="snapshot_id" value="{snapshot.id}"' in page.text
    token = page_token(acme.client, f"/portal/servers/{agent}")
    asked = acme.client.post(
        f"/portal/servers/{agent}/restore",
        data={
            "csrf_token": token,
            "snapshot_id": str(snapshot.id),
            "target": "/srv/restore",
            "note": "the finance share",
        },
        follow_redirects=False,
    )
    assert asked.status_code == 303
    told = acme.client.get(asked.headers["location"]).text
    assert "sent to our operations center" in told and "not available yet" in told
    with acme.catalog.session() as session:
        alarm = session.scalars(select(Alarm).where(Alarm.alert_group == "restore.requested")).one()
        assert alarm.severity == Severity.INDETERMINATE
        assert alarm.tenant_id == fleet.acme and alarm.agent_id == agent
        assert snapshot.vault_snapshot_id[:12] in alarm.summary
        assert "/srv/restore" in alarm.summary and CUSTOMER in alarm.summary
        assert f"#{alarm.id}" in told
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "restore.request")
        ).one()
        assert entry.target == f"snapshot:{snapshot.id}" and entry.tenant_id == fleet.acme
        session.execute(delete(AuditEntry).where(AuditEntry.id == entry.id))
    # Another tenant's snapshot, or a snapshot of another server, is not found.
    for server, snap in ((agent, foreign.id), (fleet.agents["b-at-risk"], snapshot.id)):
        refused = acme.client.post(
            f"/portal/servers/{server}/restore",
            data={"csrf_token": token, "snapshot_id": str(snap)},
        )
        assert refused.status_code == 404
    with acme.catalog.session() as session:
        assert len(session.scalars(select(Alarm)).all()) == 1


def _events(body: str) -> list[dict[str, Any]]:
    found = []
    for block in body.split("\n\n"):
        lines = dict(line.partition(": ")[::2] for line in block.splitlines())
        if lines.get("event") == "jobs":
            found.append(json.loads(lines["data"]))
    return found


def test_running_jobs_show_progress_and_stream_it_live(
    acme: SocApi, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = fleet.agents["a-protected"]
    job = _running_job(acme, fleet, 400)
    page = acme.client.get(f"/portal/servers/{agent}").text
    card = re.search(rf'<article class="job job-running" id="job-{job}".*?</article>', page, re.S)
    assert card, page
    assert 'value="40.0"' in card.group(0) and "upload" in card.group(0)
    assert "/srv/data/report.pdf" in card.group(0) and "250 B/s" in card.group(0)
    assert "400 B of 1000 B" in card.group(0) and "4 of 10" in card.group(0)
    assert "0:02" in card.group(0) and "100 B already stored" in card.group(0)
    assert f'data-stream="/portal/servers/{agent}/stream"' in page

    monkeypatch.setattr(sse, "STREAM_SECONDS", 1.0)
    monkeypatch.setattr(portal, "POLL_SECONDS", 0.1)
    body = acme.client.get(f"/portal/servers/{agent}/stream")
    assert body.headers["content-type"].startswith("text/event-stream")
    (first,) = _events(body.text)
    (item,) = first["jobs"]
    assert item["id"] == str(job) and item["percent"] == 40.0 and item["active"]
    assert 'value="40.0"' in item["html"]
    _running_job(acme, fleet, 1000, job_id=job, state=JobState.SUCCEEDED)
    quiet = acme.client.get(f"/portal/servers/{agent}/stream").text
    assert _events(quiet) == [] and "retry: " in quiet
    # A page that still shows the job as running hears how it ended.
    watched = acme.client.get(f"/portal/servers/{agent}/stream", params={"watch": f"{job},junk"})
    (last,) = _events(watched.text)
    assert last["jobs"][0]["state"] == "succeeded" and not last["jobs"][0]["active"]
    done = acme.client.get(f"/portal/servers/{agent}").text
    assert f'id="recent-{job}"' in done and f'id="job-{job}"' not in done


def test_the_job_stream_is_not_counted_as_control_traffic() -> None:
    assert not is_control_request({"path": f"/portal/servers/{uuid.uuid4()}/stream"})


def test_timeline_windows_cover_their_span(acme: SocApi, fleet: Fleet) -> None:
    agent = fleet.agents["c-breached"]
    page = acme.client.get(f"/portal/servers/{agent}?window=7d").text
    assert "RPO breached for" in page and "1 snapshot" in page
    since = datetime.now(UTC) - timedelta(days=7)
    assert since.strftime("%Y-%m-%d") in page
    assert PASSWORD not in page
