"""CSRF: every state-changing request of a signed-in page carries the session's token."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.soc.api.harness import SocApi
from tests.web.harness import login, page_token, raise_alarm
from vaultwatch.catalog.security import new_token_key
from vaultwatch.catalog.soc_models import Alarm
from vaultwatch.web import csrf


def _acknowledged(api: SocApi, alarm_id: int) -> bool:
    with api.catalog.session() as session:
        alarm = session.get(Alarm, alarm_id)
        assert alarm is not None
        return alarm.acknowledged


def test_the_token_is_bound_to_the_session_and_the_server_key() -> None:
    key, other_key = new_token_key(), new_token_key()
    token = csrf.session_token("vwk_a", key)
    assert token == csrf.session_token("vwk_a", key) and len(token) == 64
    assert token != csrf.session_token("vwk_b", key)
    assert token != csrf.session_token("vwk_a", other_key)
    assert token != csrf.login_token("vwk_a", key)


def test_a_form_post_without_a_token_is_refused_with_a_403_page(api: SocApi) -> None:
    alarm_id = raise_alarm(api)
    login(api.client)
    answer = api.client.post(f"/console/alarms/{alarm_id}/ack", follow_redirects=False)
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert "did not come from this site" in answer.text
    assert not _acknowledged(api, alarm_id)


def test_a_wrong_token_is_refused_and_a_fetch_gets_problem_json(api: SocApi) -> None:
    alarm_id = raise_alarm(api)
    login(api.client)
    answer = api.client.post(
        f"/console/alarms/{alarm_id}/ack",
        headers={"X-CSRF-Token": "0" * 64, "Accept": "application/json"},
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"] == "urn:vaultwatch:problem:csrf"
    assert not _acknowledged(api, alarm_id)


def test_another_sessions_token_is_refused(api: SocApi) -> None:
    alarm_id = raise_alarm(api)
    with TestClient(api.client.app) as other:
        login(other)
        stolen = page_token(other)
    login(api.client)
    answer = api.client.post(f"/console/alarms/{alarm_id}/ack", data={"csrf_token": stolen})
    assert answer.status_code == 403 and not _acknowledged(api, alarm_id)


def test_the_right_token_in_the_form_or_the_header_is_accepted(api: SocApi) -> None:
    alarm_id = raise_alarm(api)
    login(api.client)
    token = page_token(api.client)
    form = api.client.post(
        f"/console/alarms/{alarm_id}/ack",
        data={"csrf_token": token, "next": "/console?node=gw1"},
        follow_redirects=False,
    )
    assert form.status_code == 303 and form.headers["location"] == "/console?node=gw1"
    assert _acknowledged(api, alarm_id)
    fetch = api.client.post(
        f"/console/alarms/{alarm_id}/unack",
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert fetch.status_code == 200 and fetch.json()["acknowledged"] is False
    assert not _acknowledged(api, alarm_id)


def test_logout_needs_the_token_too(api: SocApi) -> None:
    login(api.client)
    answer = api.client.post("/logout", follow_redirects=False)
    assert answer.status_code == 403
    assert api.client.get("/console").status_code == 200  # still signed in
