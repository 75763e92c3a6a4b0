"""The case API: customers open and follow their own cases; staff escalate, work and resolve."""

from __future__ import annotations

from typing import Any

from tests.soc.api.harness import SocApi

PREFIX = "/api/v1"


def _open(api: SocApi, key: str | None = None, **changes: Any) -> Any:
    body: dict[str, Any] = {"subject": "Restore is slow", "text": "It takes hours since Monday."}
    body.update(changes)
    answer = api.client.post(f"{PREFIX}/cases", json=body, headers=api.as_(key or api.customer_key))
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_customer_opens_a_case_for_its_own_tenant(api: SocApi) -> None:
    case = _open(api)
    assert case["tenant_id"] == str(api.tenant_id)
    assert case["state"] == "open" and case["owner_team"] == "customer_service"
    assert case["contact_email"] == "admin@acme.example"
    assert [e["kind"] for e in case["history"]] == ["opened"]
    other = api.client.post(
        f"{PREFIX}/cases",
        json={"subject": "x", "text": "y", "tenant_id": str(api.other_tenant_id)},
        headers=api.as_(api.customer_key),
    )
    assert other.status_code == 403


def test_the_soc_works_a_case_to_resolution(api: SocApi) -> None:
    case = _open(api)
    ops = api.as_(api.operator_key)
    url = f"{PREFIX}/cases/{case['id']}"
    escalated = api.client.post(f"{url}/escalate", json={"text": "looks like the WAN"}, headers=ops)
    assert escalated.status_code == 200, escalated.text
    assert (escalated.json()["state"], escalated.json()["owner_team"]) == ("escalated", "soc")
    note = api.client.post(
        f"{url}/notes", json={"text": "carrier suspected", "internal": True}, headers=ops
    )
    assert note.status_code == 201 and note.json()["visible_to_customer"] is False
    ticket = api.client.post(
        f"{url}/external-tickets", json={"party": "carrier", "ticket": "TT-9"}, headers=ops
    )
    assert ticket.status_code == 200
    assert ticket.json()["external_tickets"][0]["ticket"] == "TT-9"
    assert ticket.json()["state"] == "waiting_on_third_party"
    update = api.client.post(
        f"{url}/updates", json={"text": "The carrier is on site."}, headers=ops
    )
    assert update.status_code == 201
    resolved = api.client.post(f"{url}/resolve", json={"text": "Line replaced."}, headers=ops)
    assert resolved.json()["state"] == "resolved"
    customer_view = api.client.get(url, headers=api.as_(api.customer_key)).json()
    kinds = [e["kind"] for e in customer_view["history"]]
    assert "note" not in kinds and "escalated" not in kinds  # internal entries stay internal
    assert {"status", "external_ticket", "status_update", "resolved"} <= set(kinds)
    staff_view = api.client.get(url, headers=ops).json()
    assert {"note", "escalated"} <= {e["kind"] for e in staff_view["history"]}
    closed = api.client.post(f"{url}/close", headers=api.as_(api.customer_key))
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    late = api.client.post(
        f"{url}/notes", json={"text": "one more thing"}, headers=api.as_(api.customer_key)
    )
    assert late.status_code == 409


def test_customers_see_and_touch_only_their_own_cases(api: SocApi) -> None:
    mine = _open(api)
    theirs = _open(api, key=api.other_customer_key)
    listed = api.client.get(f"{PREFIX}/cases", headers=api.as_(api.customer_key)).json()["items"]
    assert [c["id"] for c in listed] == [mine["id"]]
    customer = api.as_(api.customer_key)
    assert api.client.get(f"{PREFIX}/cases/{theirs['id']}", headers=customer).status_code == 404
    note = api.client.post(
        f"{PREFIX}/cases/{theirs['id']}/notes", json={"text": "hi"}, headers=customer
    )
    assert note.status_code == 404
    assert (
        api.client.post(f"{PREFIX}/cases/{theirs['id']}/close", headers=customer).status_code == 404
    )
    everything = api.client.get(f"{PREFIX}/cases", headers=api.as_(api.operator_key)).json()
    assert len(everything["items"]) == 2


def test_staff_only_actions_are_refused_to_customers(api: SocApi) -> None:
    case = _open(api)
    customer = api.as_(api.customer_key)
    url = f"{PREFIX}/cases/{case['id']}"
    assert (
        api.client.post(f"{url}/escalate", json={"text": "x"}, headers=customer).status_code == 403
    )
    assert (
        api.client.post(f"{url}/resolve", json={"text": "x"}, headers=customer).status_code == 403
    )
    assert (
        api.client.post(
            f"{url}/external-tickets", json={"party": "a", "ticket": "b"}, headers=customer
        ).status_code
        == 403
    )
    internal = api.client.post(
        f"{url}/notes", json={"text": "x", "internal": True}, headers=customer
    )
    assert internal.status_code == 400


def test_staff_open_cases_on_a_customers_behalf_and_link_them(api: SocApi) -> None:
    ops = api.as_(api.operator_key)
    missing = api.client.post(f"{PREFIX}/cases", json={"subject": "x", "text": "y"}, headers=ops)
    assert missing.status_code == 400 and "tenant_id" in missing.json()["detail"]
    case = _open(
        api,
        key=api.operator_key,
        tenant_id=str(api.other_tenant_id),
        contact_email="it@globex.example",
    )
    assert case["tenant_id"] == str(api.other_tenant_id)
    incident = api.client.post(
        f"{PREFIX}/incidents", json={"title": "gw down", "severity": "major"}, headers=ops
    ).json()
    linked = api.client.post(
        f"{PREFIX}/cases/{case['id']}/links", json={"incident_id": incident["id"]}, headers=ops
    )
    assert linked.status_code == 200 and linked.json()["incident_id"] == incident["id"]
    unknown = api.client.post(
        f"{PREFIX}/cases/{case['id']}/links", json={"alarm_ids": [987654]}, headers=ops
    )
    assert unknown.status_code == 404


def test_bad_input_is_a_clear_problem(api: SocApi) -> None:
    customer = api.as_(api.customer_key)
    for body, status in [
        ({"subject": "", "text": "y"}, 422),
        ({"subject": "x", "text": "y", "priority": 0}, 422),
        ({"subject": "x", "text": "y", "extra": 1}, 422),
        ({"subject": "x", "text": "y", "contact_email": "not-mail"}, 400),
        ({"subject": "   ", "text": "y"}, 400),
    ]:
        answer = api.client.post(f"{PREFIX}/cases", json=body, headers=customer)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert api.client.get(f"{PREFIX}/cases/424242", headers=customer).status_code == 404
    assert api.client.get(f"{PREFIX}/cases", headers=customer).json()["items"] == []
    assert api.client.get(f"{PREFIX}/cases").status_code == 401
