"""The event and alarm API: authentication, roles, tenant scoping, strict bodies, actions."""

from __future__ import annotations

from typing import Any

from tests.soc.api.harness import SocApi

EVENT: dict[str, Any] = {
    "node": "gw1",
    "alert_group": "gateway.down",
    "summary": "gateway gw1 does not answer",
    "severity": "critical",
}


def _post(api: SocApi, body: dict[str, Any], key: str | None = None) -> Any:
    return api.client.post("/api/v1/events", json=body, headers=api.as_(key or api.operator_key))


def test_the_administrator_from_server_init_logs_in_and_uses_the_api(api: SocApi) -> None:
    answer = api.client.post(
        "/api/v1/auth/login", json={"email": api.admin_email, "password": api.admin_password}
    )
    assert answer.status_code == 200, answer.text
    key = answer.json()["api_key"]
    assert key.startswith("vwk_") and answer.json()["expires_at"]
    assert api.client.get("/api/v1/alarms", headers=api.as_(key)).status_code == 200


def test_a_wrong_password_is_401_and_audited(api: SocApi) -> None:
    from sqlalchemy import select

    from vaultwatch.catalog import AuditEntry

    answer = api.client.post(
        "/api/v1/auth/login", json={"email": api.admin_email, "password": "wrong password!"}
    )
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")
    with api.catalog.session() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "login.failed" in actions


def test_requests_without_a_valid_key_are_401(api: SocApi) -> None:
    assert api.client.get("/api/v1/alarms").status_code == 401
    bad = api.client.get("/api/v1/alarms", headers=api.as_("vwk_" + "x" * 43))
    assert bad.status_code == 401
    assert bad.json()["type"] == "urn:vaultwatch:problem:invalid-api-key"


def test_a_revoked_key_stops_working_at_once(api: SocApi) -> None:
    from vaultwatch.catalog.security import token_prefix
    from vaultwatch.soc.apikeys import revoke_api_key

    assert api.client.get("/api/v1/alarms", headers=api.as_(api.operator_key)).status_code == 200
    with api.catalog.session() as session:
        revoke_api_key(session, token_prefix(api.operator_key), actor="system:test")
    assert api.client.get("/api/v1/alarms", headers=api.as_(api.operator_key)).status_code == 401


def test_an_event_becomes_an_alarm_and_a_repeat_adds_to_its_tally(api: SocApi) -> None:
    first = _post(api, EVENT)
    assert first.status_code == 202, first.text
    assert first.json()["alarms"][0]["created"] is True
    second = _post(api, EVENT)
    assert second.json()["alarms"][0]["tally"] == 2
    page = api.client.get("/api/v1/alarms", headers=api.as_(api.operator_key)).json()
    (alarm,) = page["items"]
    assert alarm["tally"] == 2 and alarm["severity"] == "critical"
    assert alarm["alarm_class"] == "network" and alarm["runbook"].endswith("gateway-down.md")


def test_a_batch_is_stored_whole_or_not_at_all(api: SocApi) -> None:
    good = [dict(EVENT, node=f"gw{i}") for i in range(10)]
    answer = api.client.post(
        "/api/v1/events/batch", json={"events": good}, headers=api.as_(api.operator_key)
    )
    assert answer.status_code == 202 and answer.json()["accepted"] == 10
    bad = [*good, dict(EVENT, node="x", alert_group="has spaces")]
    refused = api.client.post(
        "/api/v1/events/batch",
        json={"events": [dict(e, node="new-" + e["node"]) for e in bad]},
        headers=api.as_(api.operator_key),
    )
    assert refused.status_code == 400
    assert "alert_group" in refused.json()["detail"]
    page = api.client.get("/api/v1/alarms?total=true", headers=api.as_(api.operator_key)).json()
    assert page["total"] == 10


def test_malformed_events_are_422_problems(api: SocApi) -> None:
    for body in (
        dict(EVENT, unknown_field=1),
        dict(EVENT, severity="apocalyptic"),
        dict(EVENT, summary=""),
        dict(EVENT, summary="x" * 1001),
        dict(EVENT, node=5),
        {k: v for k, v in EVENT.items() if k != "node"},
    ):
        answer = _post(api, body)
        assert answer.status_code == 422, body
        assert answer.json()["type"] == "urn:vaultwatch:problem:invalid-request"
    oversized = api.client.post(
        "/api/v1/events/batch",
        json={"events": [EVENT] * 5001},
        headers=api.as_(api.operator_key),
    )
    assert oversized.status_code in (413, 422)
    assert api.client.get("/api/v1/alarms", headers=api.as_(api.operator_key)).json()["items"] == []


def test_customers_cannot_send_events_and_see_only_their_tenants_alarms(api: SocApi) -> None:
    assert _post(api, EVENT, api.customer_key).status_code == 403
    assert _post(api, EVENT, api.technician_key).status_code == 403
    _post(
        api, dict(EVENT, node="srv1", alert_group="agent.heartbeat", tenant_id=str(api.tenant_id))
    )
    theirs = _post(
        api,
        dict(EVENT, node="srv9", alert_group="agent.heartbeat", tenant_id=str(api.other_tenant_id)),
    )
    _post(api, EVENT)  # infrastructure: no tenant
    mine = api.client.get("/api/v1/alarms", headers=api.as_(api.customer_key)).json()["items"]
    assert [a["node"] for a in mine] == ["srv1"]
    other_id = theirs.json()["alarms"][0]["id"]
    assert (
        api.client.get(f"/api/v1/alarms/{other_id}", headers=api.as_(api.customer_key)).status_code
        == 404
    )
    ack = api.client.post(f"/api/v1/alarms/{mine[0]['id']}/ack", headers=api.as_(api.customer_key))
    assert ack.status_code == 403


def test_operator_actions_and_the_journal(api: SocApi) -> None:
    alarm_id = _post(api, EVENT).json()["alarms"][0]["id"]
    h = api.as_(api.operator_key)
    assert api.client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=h).json()["acknowledged"]
    assigned = api.client.post(
        f"/api/v1/alarms/{alarm_id}/assign", json={"owner": "network team"}, headers=h
    )
    assert assigned.json()["owner"] == "network team"
    note = api.client.post(
        f"/api/v1/alarms/{alarm_id}/notes", json={"text": "<b>carrier</b> ticket TT-1"}, headers=h
    )
    assert note.status_code == 201
    cleared = api.client.post(
        f"/api/v1/alarms/{alarm_id}/clear", json={"reason": "fixed"}, headers=h
    )
    assert cleared.json()["severity"] == "clear" and cleared.json()["cleared_at"]
    journal = api.client.get(f"/api/v1/alarms/{alarm_id}/journal", headers=h).json()
    assert [e["action"] for e in journal] == ["acknowledge", "assign", "note", "clear"]
    assert journal[2]["text"] == "<b>carrier</b> ticket TT-1"
    assert all(e["actor"].startswith("user:") for e in journal)
    open_only = api.client.get("/api/v1/alarms", headers=h).json()["items"]
    assert open_only == []
    everything = api.client.get("/api/v1/alarms?include_cleared=true", headers=h).json()["items"]
    assert [a["id"] for a in everything] == [alarm_id]
    assert api.client.post("/api/v1/alarms/999999/ack", headers=h).status_code == 404


def test_the_list_filters_sorts_and_pages_with_a_cursor(api: SocApi) -> None:
    severities = ["warning", "minor", "major", "critical"]
    events = [
        dict(EVENT, node=f"n{i:02d}", severity=severities[i % 4], alert_group="node.disk")
        for i in range(30)
    ]
    api.client.post(
        "/api/v1/events/batch", json={"events": events}, headers=api.as_(api.operator_key)
    )
    h = api.as_(api.operator_key)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = "/api/v1/alarms?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = api.client.get(url, headers=h).json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 30 and len({a["id"] for a in seen}) == 30
    order = [severities.index(a["severity"]) for a in seen]
    assert order == sorted(order, reverse=True)
    majors = api.client.get("/api/v1/alarms?min_severity=major", headers=h).json()["items"]
    assert {a["severity"] for a in majors} == {"major", "critical"} and len(majors) == 14
    by_node = api.client.get("/api/v1/alarms?sort=node&limit=3", headers=h).json()["items"]
    assert [a["node"] for a in by_node] == ["n00", "n01", "n02"]
    assert api.client.get("/api/v1/alarms?sort=password", headers=h).status_code == 400
    assert api.client.get("/api/v1/alarms?cursor=garbage", headers=h).status_code == 400
