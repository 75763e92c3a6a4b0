"""The silence API: staff only, strict bodies, create mutes, cancel unmutes, problem errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from tests.soc.api.harness import SocApi
from vaultwatch.catalog import AuditEntry
from vaultwatch.catalog.soc_models import Alarm


def _later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def _event(api: SocApi, node: str) -> None:
    body = {"node": node, "alert_group": "node.disk", "summary": "disk full", "severity": "major"}
    answer = api.client.post("/api/v1/events", json=body, headers=api.as_(api.operator_key))
    assert answer.status_code in (200, 201, 202), answer.text


def _muted(api: SocApi, node: str) -> int | None:
    with api.catalog.session() as session:
        return session.scalar(select(Alarm.silence_id).where(Alarm.node == node))


SILENCE: dict[str, Any] = {
    "matchers": [{"field": "node", "op": "=~", "value": "gw[0-9]"}],
    "comment": "replacing disks",
}


def test_staff_create_list_and_cancel_a_silence(api: SocApi) -> None:
    _event(api, "gw1")
    _event(api, "web1")
    body = {**SILENCE, "ends_at": _later(hours=2)}
    answer = api.client.post("/api/v1/silences", json=body, headers=api.as_(api.operator_key))
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["state"] == "active" and created["kind"] == "silence"
    assert created["muted_alarms"] == 1
    assert _muted(api, "gw1") == created["id"] and _muted(api, "web1") is None
    _event(api, "gw2")
    assert _muted(api, "gw2") == created["id"]
    listed = api.client.get("/api/v1/silences", headers=api.as_(api.operator_key)).json()
    assert [s["id"] for s in listed] == [created["id"]]
    assert listed[0]["muted_alarms"] == 2
    gone = api.client.delete(f"/api/v1/silences/{created['id']}", headers=api.as_(api.operator_key))
    assert gone.status_code == 200 and gone.json()["state"] == "cancelled"
    assert _muted(api, "gw1") is None and _muted(api, "gw2") is None
    again = api.client.delete(
        f"/api/v1/silences/{created['id']}", headers=api.as_(api.operator_key)
    )
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert api.client.get("/api/v1/silences", headers=api.as_(api.operator_key)).json() == []
    ended = api.client.get(
        "/api/v1/silences?include_ended=true", headers=api.as_(api.operator_key)
    ).json()
    assert [s["state"] for s in ended] == ["cancelled"]
    with api.catalog.session() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target == f"silence:{created['id']}")
        ).all()
    assert sorted(actions) == ["silence.cancel", "silence.create"]


def test_a_recurring_maintenance_window(api: SocApi) -> None:
    body = {
        **SILENCE,
        "starts_at": _later(minutes=-1),
        "ends_at": _later(days=60),
        "recurrence": "0 2 * * 6",
        "duration_seconds": 7200,
    }
    answer = api.client.post(
        "/api/v1/maintenance-windows", json=body, headers=api.as_(api.operator_key)
    )
    assert answer.status_code == 201, answer.text
    window = answer.json()
    assert window["kind"] == "maintenance" and window["recurrence"] == "0 2 * * 6"
    assert window["state"] in ("active", "pending")
    one = api.client.get(f"/api/v1/silences/{window['id']}", headers=api.as_(api.operator_key))
    assert one.status_code == 200 and one.json()["id"] == window["id"]


def test_bad_bodies_are_problems_and_nothing_is_stored(api: SocApi) -> None:
    headers = api.as_(api.operator_key)
    cases = [
        ({**SILENCE, "ends_at": _later(days=40)}, 400, "at most 30 days"),
        (
            {
                **SILENCE,
                "matchers": [{"field": "node", "op": "=~", "value": "("}],
                "ends_at": _later(hours=1),
            },
            400,
            "does not compile",
        ),
        ({**SILENCE, "ends_at": _later(hours=1), "extra": 1}, 422, None),
        ({"comment": "x", "matchers": [], "ends_at": _later(hours=1)}, 422, None),
    ]
    for body, status, text in cases:
        answer = api.client.post("/api/v1/silences", json=body, headers=headers)
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        if text is not None:
            assert text in answer.json()["detail"]
    bad_cron = {
        **SILENCE,
        "ends_at": _later(days=2),
        "recurrence": "every day",
        "duration_seconds": 60,
    }
    answer = api.client.post("/api/v1/maintenance-windows", json=bad_cron, headers=headers)
    assert answer.status_code == 400 and "5 fields" in answer.json()["detail"]
    assert api.client.get("/api/v1/silences?include_ended=true", headers=headers).json() == []
    assert api.client.get("/api/v1/silences/999", headers=headers).status_code == 404


def test_only_staff_may_use_silences(api: SocApi) -> None:
    body = {**SILENCE, "ends_at": _later(hours=1)}
    assert api.client.post("/api/v1/silences", json=body).status_code == 401
    for key in (api.customer_key, api.technician_key):
        answer = api.client.post("/api/v1/silences", json=body, headers=api.as_(key))
        assert answer.status_code == 403
        assert api.client.get("/api/v1/silences", headers=api.as_(key)).status_code == 403
