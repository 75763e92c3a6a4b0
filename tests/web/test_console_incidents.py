"""Console: incidents (list, detail, acknowledge, resolve, customer updates) and support cases."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from tests.soc.api.harness import SocApi
from tests.web.harness import CUSTOMER, login, page_token
from vaultwatch.catalog import AuditEntry
from vaultwatch.catalog.soc_models import (
    CaseEntry,
    CaseState,
    CustomerUpdate,
    CustomerUpdateState,
    Incident,
    IncidentState,
    Notification,
    Severity,
    SupportCase,
)
from vaultwatch.soc import alarms, cases, escalation, incidents
from vaultwatch.soc.events import Event

HOSTILE = '<script>alert("t")</script>'
ACTOR = "system:test"


@pytest.fixture(scope="module")
def pager(web_api: SocApi) -> str:
    """An escalation policy that pages the on-call address by email."""
    name = f"pager-{uuid.uuid4().hex[:6]}"
    with web_api.catalog.session() as session:
        escalation.create_policy(
            session,
            name=name,
            levels=[
                {
                    "targets": [{"kind": "email", "address": "oncall@soc.example"}],
                    "timeout_seconds": 300,
                }
            ],
        )
    return name


def _incident(api: SocApi, pager: str, *, title: str = "gateway gw1 down", tenants: int = 2) -> int:
    tenant_ids = [api.tenant_id, api.other_tenant_id][:tenants]
    with api.catalog.session() as session:
        (raised,) = alarms.raise_events(
            session,
            [
                Event(
                    "gw1",
                    "gateway.down",
                    title,
                    Severity.CRITICAL,
                    entity="gateway:gw1",
                    alert_key=uuid.uuid4().hex,
                )
            ],
        )
        incident = incidents.open_incident(
            session,
            title=title,
            severity="critical",
            actor=ACTOR,
            tenant_ids=tenant_ids,
            root_alarm_id=raised.id,
            policy=pager,
        )
        alarms.get_alarm(session, raised.id).incident_id = incident.id
        return incident.id


def _audited(api: SocApi, action: str, target: str) -> bool:
    with api.catalog.session() as session:
        return (
            session.scalar(
                select(AuditEntry.id).where(
                    AuditEntry.action == action, AuditEntry.target == target
                )
            )
            is not None
        )


def test_customers_get_the_forbidden_page(api: SocApi, pager: str) -> None:
    incident_id = _incident(api, pager)
    login(api.client, CUSTOMER)
    for path in ("/console/incidents", f"/console/incidents/{incident_id}", "/console/cases"):
        assert api.client.get(path).status_code == 403, path
    assert api.client.post(f"/console/incidents/{incident_id}/ack").status_code == 403


def test_the_list_shows_state_severity_crisis_tenants_and_who_acknowledged(
    api: SocApi, pager: str
) -> None:
    incident_id = _incident(api, pager, title=HOSTILE)
    login(api.client)
    page = api.client.get("/console/incidents")
    assert page.status_code == 200
    row = re.search(rf'<tr id="incident-{incident_id}".*?</tr>', page.text, re.S)
    assert row
    assert "sev-critical" in row.group(0) and "triggered" in row.group(0)
    assert '<td class="num">2</td>' in row.group(0)
    assert "<script>alert" not in page.text and "&lt;script&gt;" in row.group(0)
    with api.catalog.session() as session:
        incidents.acknowledge(session, incident_id, "user:dana")
    page = api.client.get("/console/incidents?state=acknowledged").text
    row = re.search(rf'<tr id="incident-{incident_id}".*?</tr>', page, re.S)
    assert row and "user:dana" in row.group(0)
    assert api.client.get("/console/incidents?state=bogus").status_code == 400


def test_a_crisis_is_marked(api: SocApi, pager: str) -> None:
    with api.catalog.session() as session:
        incident = incidents.open_incident(
            session,
            title="site fra dark",
            severity="critical",
            actor=ACTOR,
            tenant_ids=[api.tenant_id, api.other_tenant_id],
            rules=incidents.IncidentRules(crisis_threshold=2),
        )
        incident_id = incident.id
    login(api.client)
    row = re.search(
        rf'<tr id="incident-{incident_id}".*?</tr>', api.client.get("/console/incidents").text, re.S
    )
    assert row and '<span class="badge crisis">crisis</span>' in row.group(0)
    detail = api.client.get(f"/console/incidents/{incident_id}").text
    # One draft for both tenants: publishing it tells everyone.
    assert len(re.findall(r'<form [^>]*class="stack draft"', detail)) == 1
    assert "to 2 tenant(s): Acme, Globex" in detail


def test_the_detail_shows_who_was_paged_the_drafts_and_the_alarms(api: SocApi, pager: str) -> None:
    incident_id = _incident(api, pager)
    login(api.client)
    page = api.client.get(f"/console/incidents/{incident_id}")
    assert page.status_code == 200
    assert "paged" in page.text and "email → <strong>oncall@soc.example</strong>" in page.text
    assert '<span class="pill delivery-pending">pending</span>' in page.text
    assert pager in page.text and "Tenants affected</dt><dd>2" in page.text
    assert "first notice" in page.text and "Approve and publish" in page.text
    assert 'id="incident-state">triggered<' in page.text
    assert re.search(
        r'<tr id="alarm-\d+">.*gateway gw1 down.*<span class="tag">root</span>', page.text
    )
    assert api.client.get("/console/incidents/999999").status_code == 404


def test_acknowledge_and_resolve_need_csrf_and_reach_the_timeline_and_audit(
    api: SocApi, pager: str
) -> None:
    incident_id = _incident(api, pager)
    login(api.client)
    refused = api.client.post(f"/console/incidents/{incident_id}/ack", data={"note": "mine"})
    assert refused.status_code == 403
    token = page_token(api.client, f"/console/incidents/{incident_id}")
    done = api.client.post(
        f"/console/incidents/{incident_id}/ack",
        data={"csrf_token": token, "note": "on it"},
        follow_redirects=False,
    )
    assert (
        done.status_code == 303 and done.headers["location"] == f"/console/incidents/{incident_id}"
    )
    page = api.client.get(f"/console/incidents/{incident_id}").text
    assert 'id="incident-state">acknowledged<' in page and "on it" in page
    with api.catalog.session() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None and incident.state == IncidentState.ACKNOWLEDGED
        assert incident.acknowledged_by is not None and incident.acknowledged_by.startswith("user:")
    assert _audited(api, "incident.acknowledge", f"incident:{incident_id}")
    api.client.post(
        f"/console/incidents/{incident_id}/resolve", data={"csrf_token": token, "note": "fixed"}
    )
    page = api.client.get(f"/console/incidents/{incident_id}").text
    assert 'id="incident-state">resolved<' in page and "resolution" in page
    assert _audited(api, "incident.resolve", f"incident:{incident_id}")
    again = api.client.post(f"/console/incidents/{incident_id}/ack", data={"csrf_token": token})
    assert again.status_code == 409 and "resolved" in again.text


def test_publishing_a_draft_sends_the_edited_text(api: SocApi, pager: str) -> None:
    incident_id = _incident(api, pager, tenants=1)
    login(api.client)
    page = api.client.get(f"/console/incidents/{incident_id}").text
    (draft_id,) = [int(d) for d in re.findall(r'id="draft-(\d+)"', page)]
    token = page_token(api.client, f"/console/incidents/{incident_id}")
    url = f"/console/incidents/{incident_id}/updates/{draft_id}/publish"
    assert api.client.post(url, data={"text": "x"}).status_code == 403
    text = "Backups to gateway gw1 are delayed <b>; your data is safe."
    api.client.post(url, data={"csrf_token": token, "text": text})
    with api.catalog.session() as session:
        update = session.get(CustomerUpdate, draft_id)
        assert update is not None and update.state == CustomerUpdateState.PUBLISHED
        assert update.text == text and update.published_by is not None
        mails = session.scalars(
            select(Notification.recipient).where(
                Notification.dedup_key.like(f"customer-update:{draft_id}:%")
            )
        ).all()
        assert mails == ["admin@acme.example"]
    page = api.client.get(f"/console/incidents/{incident_id}").text
    assert "Customer updates sent (1)" in page and "delayed &lt;b&gt;" in page
    assert "No draft is waiting." in page
    assert _audited(api, "incident.customer_update.publish", f"incident:{incident_id}")
    twice = api.client.post(url, data={"csrf_token": token, "text": text})
    assert twice.status_code == 409


# -- cases -------------------------------------------------------------------------------------


def _case(api: SocApi, subject: str = "Restore of payroll share is slow") -> int:
    with api.catalog.session() as session:
        return cases.open_case(
            session,
            tenant_id=api.tenant_id,
            subject=subject,
            text="It runs for hours.",
            actor=ACTOR,
        ).id


def test_the_case_queue_shows_owner_state_priority_and_tickets(api: SocApi) -> None:
    case_id = _case(api, subject=HOSTILE)
    with api.catalog.session() as session:
        cases.add_external_ticket(session, case_id, ACTOR, party="Carrier NetCo", ticket="NC-4411")
    login(api.client)
    page = api.client.get("/console/cases")
    assert page.status_code == 200
    row = re.search(rf'<tr id="case-{case_id}".*?</tr>', page.text, re.S)
    assert row and "P3" in row.group(0) and "waiting on third party" in row.group(0)
    assert "Customer service · unassigned" in row.group(0) and "Carrier NetCo NC-4411" in row.group(
        0
    )
    assert (
        "Acme" in row.group(0)
        and "&lt;script&gt;" in row.group(0)
        and "<script>alert" not in page.text
    )
    filtered = api.client.get("/console/cases?team=soc").text
    assert f'id="case-{case_id}"' not in filtered
    assert api.client.get("/console/cases?team=nobody").status_code == 400


def test_case_actions_change_the_case_and_its_history(api: SocApi) -> None:
    case_id = _case(api)
    login(api.client)
    base = f"/console/cases/{case_id}"
    assert api.client.post(base + "/escalate", data={"reason": "x"}).status_code == 403
    token = page_token(api.client, base)

    def act(action: str, **data: str) -> None:
        answer = api.client.post(
            f"{base}/{action}", data={"csrf_token": token, **data}, follow_redirects=False
        )
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == base

    act("escalate", reason="gateway side problem")
    act("assign", owner="Dana (night shift)")
    act("note", text="checked gw1 logs", audience="internal")
    act("note", text="We are looking at the gateway.", audience="customer")
    act("ticket", party="Vendor StorCo", ticket="SC-77")
    page = api.client.get(base).text
    assert 'id="case-owner">Dana (night shift)<' in page
    assert "Vendor StorCo SC-77" in page and 'id="case-state">waiting on third party<' in page
    assert '<li class="internal">' in page and "checked gw1 logs" in page
    with api.catalog.session() as session:
        case = session.get(SupportCase, case_id)
        assert (
            case is not None
            and case.owner_team == cases.SOC_TEAM
            and case.owner == "Dana (night shift)"
        )
        entries = {
            (e.kind, e.visible_to_customer)
            for e in session.scalars(select(CaseEntry).where(CaseEntry.case_id == case_id))
        }
        assert {
            ("escalated", False),
            ("assigned", False),
            ("note", False),
            ("status_update", True),
        } <= entries
        replies = session.scalars(
            select(Notification.subject).where(
                Notification.case_id == case_id, Notification.subject.like("%Update on%")
            )
        ).all()
        assert replies  # the reply was emailed
    for action in ("escalate", "assign", "note", "reply", "external_ticket"):
        assert _audited(api, f"case.{action}", f"case:{case_id}"), action
    act("resolve", resolution="Gateway disk replaced.")
    act("close")
    with api.catalog.session() as session:
        case = session.get(SupportCase, case_id)
        assert case is not None and case.state == CaseState.CLOSED
    page = api.client.get(base).text
    assert "This case is closed." in page and 'action="' + base + '/assign"' not in page
    late = api.client.post(base + "/assign", data={"csrf_token": token, "owner": "x"})
    assert late.status_code == 409


def test_bad_case_input_is_a_clear_error_and_stores_nothing(api: SocApi) -> None:
    case_id = _case(api)
    login(api.client)
    token = page_token(api.client, f"/console/cases/{case_id}")
    bad = api.client.post(
        f"/console/cases/{case_id}/ticket", data={"csrf_token": token, "party": "", "ticket": "1"}
    )
    assert bad.status_code == 400 and "party" in bad.text
    odd = api.client.post(
        f"/console/cases/{case_id}/note",
        data={"csrf_token": token, "text": "hi", "audience": "world"},
    )
    assert odd.status_code == 400
    with api.catalog.session() as session:
        case = session.get(SupportCase, case_id)
        assert case is not None and case.external_tickets == [] and case.state == CaseState.OPEN
    assert api.client.get("/console/cases/999999").status_code == 404
