"""The incident API: roles, tenant scoping, open/ack/resolve, timeline, customer updates, policies."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.soc.api.harness import SocApi, add_user_with_key
from vaultwatch.catalog import Role
from vaultwatch.catalog.soc_models import Notification

PREFIX = "/api/v1"
POLICY: dict[str, Any] = {
    "name": "default",
    "levels": [
        {"targets": [{"kind": "email", "address": "oncall@soc.example"}], "timeout_seconds": 300}
    ],
    "repeat": 1,
    "ack_timeout_seconds": 1800,
}


def _open(api: SocApi, **changes: Any) -> Any:
    body: dict[str, Any] = {"title": "gateway gw1 down", "severity": "critical"}
    body.update(changes)
    answer = api.client.post(f"{PREFIX}/incidents", json=body, headers=api.as_(api.operator_key))
    assert answer.status_code == 201, answer.text
    return answer.json()


def _supervisor(api: SocApi) -> str:
    return add_user_with_key(api.catalog, api.token_key, "sup@soc.example", Role.SOC_SUPERVISOR)


def test_an_operator_opens_acks_and_resolves_with_a_timeline(api: SocApi) -> None:
    sup = _supervisor(api)
    created = api.client.post(f"{PREFIX}/escalation-policies", json=POLICY, headers=api.as_(sup))
    assert created.status_code == 201, created.text
    incident = _open(api, tenant_ids=[str(api.tenant_id)])
    assert incident["state"] == "triggered" and incident["severity"] == "critical"
    assert incident["tenant_ids"] == [str(api.tenant_id)]
    assert incident["policy_id"] == created.json()["id"]
    ops = api.as_(api.operator_key)
    acked = api.client.post(
        f"{PREFIX}/incidents/{incident['id']}/ack", json={"note": "on it"}, headers=ops
    )
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
    assert acked.json()["ack_expires_at"] is not None
    done = api.client.post(f"{PREFIX}/incidents/{incident['id']}/resolve", headers=ops)
    assert done.status_code == 200 and done.json()["state"] == "resolved"
    again = api.client.post(f"{PREFIX}/incidents/{incident['id']}/resolve", headers=ops)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    timeline = api.client.get(f"{PREFIX}/incidents/{incident['id']}/timeline", headers=ops).json()
    kinds = [e["kind"] for e in timeline]
    assert kinds[:2] == ["triggered", "paged"]
    assert {"acknowledged", "resolved", "notified"} <= set(kinds)
    paged = next(e for e in timeline if e["kind"] == "paged")
    assert paged["details"]["recipient"] == "oncall@soc.example"
    assert paged["details"]["channel"] == "email"


def test_customer_updates_are_drafted_published_and_seen_by_the_customer(api: SocApi) -> None:
    incident = _open(api, tenant_ids=[str(api.tenant_id), str(api.other_tenant_id)])
    ops = api.as_(api.operator_key)
    url = f"{PREFIX}/incidents/{incident['id']}/updates"
    drafts = api.client.post(
        url,
        json={"text": "Gateway gw1 is down; we are on it.", "tenant_ids": [str(api.tenant_id)]},
        headers=ops,
    )
    assert drafts.status_code == 201, drafts.text
    [draft] = drafts.json()
    assert draft["state"] == "draft" and draft["tenant_id"] == str(api.tenant_id)
    # the customer sees nothing before publication
    assert api.client.get(url, headers=api.as_(api.customer_key)).json() == []
    published = api.client.post(
        f"{url}/{draft['id']}/publish",
        json={"text": "Gateway gw1 is down. Data is safe."},
        headers=ops,
    )
    assert published.status_code == 200, published.text
    seen = api.client.get(url, headers=api.as_(api.customer_key)).json()
    assert [(u["state"], u["text"]) for u in seen] == [
        ("published", "Gateway gw1 is down. Data is safe.")
    ]
    assert api.client.get(url, headers=api.as_(api.other_customer_key)).json() == []
    with api.catalog.session() as session:
        recipients = session.scalars(
            select(Notification.recipient).where(Notification.dedup_key.like("customer-update:%"))
        ).all()
    assert recipients == ["admin@acme.example"]
    twice = api.client.post(f"{url}/{draft['id']}/publish", headers=ops)
    assert twice.status_code == 409


def test_customers_see_only_incidents_affecting_them(api: SocApi) -> None:
    mine = _open(api, tenant_ids=[str(api.tenant_id)])
    theirs = _open(api, tenant_ids=[str(api.other_tenant_id)])
    both = _open(api, tenant_ids=[str(api.tenant_id), str(api.other_tenant_id)])
    customer = api.as_(api.customer_key)
    listed = api.client.get(f"{PREFIX}/incidents", headers=customer).json()["items"]
    assert sorted(i["id"] for i in listed) == sorted([mine["id"], both["id"]])
    shared = next(i for i in listed if i["id"] == both["id"])
    assert shared["tenant_ids"] == [str(api.tenant_id)]  # the other tenant is not revealed
    hidden = api.client.get(f"{PREFIX}/incidents/{theirs['id']}", headers=customer)
    assert hidden.status_code == 404
    assert hidden.json()["type"] == "urn:vaultwatch:problem:incident-not-found"
    assert (
        api.client.get(f"{PREFIX}/incidents/{theirs['id']}/updates", headers=customer).status_code
        == 404
    )
    everything = api.client.get(f"{PREFIX}/incidents", headers=api.as_(api.operator_key)).json()
    assert len(everything["items"]) == 3


def test_customers_and_technicians_cannot_act(api: SocApi) -> None:
    incident = _open(api, tenant_ids=[str(api.tenant_id)])
    for key in (api.customer_key, api.technician_key):
        for path in ("ack", "resolve", "timeline"):
            method = api.client.get if path == "timeline" else api.client.post
            assert (
                method(
                    f"{PREFIX}/incidents/{incident['id']}/{path}", headers=api.as_(key)
                ).status_code
                == 403
            )
        create = api.client.post(
            f"{PREFIX}/incidents", json={"title": "x", "severity": "major"}, headers=api.as_(key)
        )
        assert create.status_code == 403
    only_sup = api.client.post(
        f"{PREFIX}/escalation-policies", json=POLICY, headers=api.as_(api.operator_key)
    )
    assert only_sup.status_code == 403


def test_an_incident_for_an_alarm_takes_its_tenant(api: SocApi) -> None:
    event = {
        "node": "srv1",
        "alert_group": "disk.full",
        "summary": "disk full",
        "severity": "minor",
        "tenant_id": str(api.tenant_id),
    }
    raised = api.client.post(f"{PREFIX}/events", json=event, headers=api.as_(api.operator_key))
    assert raised.status_code in (200, 201, 202), raised.text
    alarm_id = api.client.get(f"{PREFIX}/alarms", headers=api.as_(api.operator_key)).json()[
        "items"
    ][0]["id"]
    incident = _open(api, title=None, severity=None, alarm_id=alarm_id)
    assert incident["root_alarm_id"] == alarm_id
    assert incident["tenant_ids"] == [str(api.tenant_id)]
    assert incident["severity"] == "minor" and incident["title"] == "disk full"


def test_bad_requests_are_clear_problems(api: SocApi) -> None:
    ops = api.as_(api.operator_key)
    cases = [
        ({"title": "x", "severity": "awful"}, 422),
        ({"title": "", "severity": "major"}, 422),
        ({"title": "x", "severity": "major", "colour": "red"}, 422),
        ({"title": "x", "severity": "clear"}, 400),
        ({"title": "x"}, 400),
        (
            {
                "title": "x",
                "severity": "major",
                "tenant_ids": ["00000000-0000-0000-0000-000000000009"],
            },
            400,
        ),
        ({"alarm_id": 999999}, 404),
        ({"title": "x", "severity": "major", "policy": "nope"}, 404),
    ]
    for body, status in cases:
        answer = api.client.post(f"{PREFIX}/incidents", json=body, headers=ops)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["detail"]
    assert api.client.get(f"{PREFIX}/incidents/999999", headers=ops).status_code == 404
    assert api.client.post(f"{PREFIX}/incidents/999999/ack", headers=ops).status_code == 404
    bad_policy = {
        **POLICY,
        "levels": [{"targets": [{"kind": "sms", "address": "1"}], "timeout_seconds": 60}],
    }
    answer = api.client.post(
        f"{PREFIX}/escalation-policies", json=bad_policy, headers=api.as_(_supervisor(api))
    )
    assert answer.status_code == 400 and "kind must be" in answer.json()["detail"]
    assert api.client.get(f"{PREFIX}/incidents", headers=ops).json()["items"] == []
