"""The console: the alarm list with its URL filters, the drill-down, actions, the live stream."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from tests.soc.api.harness import SocApi
from tests.web.harness import login, page_token, raise_alarm
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.soc_models import Alarm
from vaultwatch.server import is_control_request
from vaultwatch.web import console, sse
from vaultwatch.web.render import ASSETS, CONTENT_SECURITY_POLICY, static_url


def _rows(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="alarm-(\d+)"', html)]


def _count(html: str, label: str) -> int:
    match = re.search(rf'data-count="{label}">(\d+)<', html)
    assert match, label
    return int(match.group(1))


def test_the_list_shows_open_alarms_worst_first_with_counts_by_severity(api: SocApi) -> None:
    minor = raise_alarm(api, node="db1", alert_group="node.disk", severity="minor")
    critical = raise_alarm(api, node="gw1", severity="critical")
    raise_alarm(api, node="gw2", severity="critical", summary="gateway gw2 does not answer")
    login(api.client)
    page = api.client.get("/console")
    assert page.status_code == 200
    rows = _rows(page.text)
    assert rows[-1] == minor and critical in rows[:2] and len(rows) == 3
    assert _count(page.text, "critical") == 2 and _count(page.text, "minor") == 1
    assert _count(page.text, "major") == 0
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "sev-critical" in page.text and "gateway gw1 does not answer" in page.text


def test_an_alarm_summary_holding_script_is_shown_as_text(api: SocApi) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    alarm_id = raise_alarm(api, summary=hostile, node='gw"1')
    login(api.client)
    for path in ("/console", f"/console/alarms/{alarm_id}"):
        page = api.client.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
        assert 'gw"1' not in page and "gw&#34;1" in page


def test_filters_live_in_the_url_and_narrow_the_list(api: SocApi) -> None:
    gw1 = raise_alarm(api, node="gw1", severity="critical")
    raise_alarm(api, node="gw2", severity="critical")
    disk = raise_alarm(
        api, node="gw1", alert_group="node.disk", severity="minor", summary="disk full"
    )
    login(api.client)
    by_node = api.client.get("/console?node=gw1")
    assert sorted(_rows(by_node.text)) == sorted([gw1, disk])
    assert 'name="node" value="gw1"' in by_node.text
    # Severity counters keep the other filters, so a shared link shows the same view.
    assert 'href="/console?severity=minor&amp;node=gw1"' in by_node.text
    assert _rows(api.client.get("/console?node=gw1&severity=minor").text) == [disk]
    assert _rows(api.client.get("/console?group=node.*").text) == [disk]
    assert _rows(api.client.get("/console?q=DISK").text) == [disk]
    assert _rows(api.client.get("/console?class=hardware&node=nothing").text) == []
    api.client.post(f"/console/alarms/{gw1}/ack", data={"csrf_token": page_token(api.client)})
    assert gw1 not in _rows(api.client.get("/console?acknowledged=no").text)
    assert _rows(api.client.get("/console?acknowledged=yes").text) == [gw1]
    newest = _rows(api.client.get("/console?sort=-last_occurrence").text)
    assert newest[0] == disk
    assert "stream?" in by_node.text and "node=gw1" in by_node.text.split("data-stream=")[1][:200]


@pytest.mark.parametrize(
    "query", ["severity=awful", "sort=password", "tenant=not-a-uuid", "acknowledged=maybe"]
)
def test_a_bad_filter_is_a_400_page_that_says_which(api: SocApi, query: str) -> None:
    login(api.client)
    page = api.client.get(f"/console?{query}")
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert query.split("=")[1] in page.text


def test_an_unknown_page_is_an_html_404_while_the_api_answers_problem_json(api: SocApi) -> None:
    login(api.client)
    page = api.client.get("/console/nope")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<!doctype html>" in page.text and "/console/nope" in page.text
    api_answer = api.client.get("/api/v1/nope")
    assert api_answer.status_code == 404
    assert api_answer.headers["content-type"].startswith("application/problem+json")
    assert api.client.get("/console/alarms/987654").status_code == 404


def test_actions_on_the_drill_down_reach_the_journal(api: SocApi) -> None:
    alarm_id = raise_alarm(api)
    login(api.client)
    path = f"/console/alarms/{alarm_id}"
    token = page_token(api.client, path)
    for action, data in (
        ("ack", {}),
        ("assign", {"owner": "network team"}),
        ("note", {"text": "router rebooted <b>twice</b>"}),
        ("clear", {"reason": "back after the reboot"}),
    ):
        answer = api.client.post(
            f"{path}/{action}", data={"csrf_token": token, **data}, follow_redirects=False
        )
        assert answer.status_code == 303, (action, answer.text)
        assert answer.headers["location"] == path
    page = api.client.get(path).text
    for action in ("acknowledge", "assign", "note", "clear"):
        assert f'<span class="action">{action}</span>' in page
    assert "router rebooted &lt;b&gt;twice&lt;/b&gt;" in page and "network team" in page
    assert '<span class="actor">op@soc.example</span>' in page  # people, not user ids
    assert alarm_id not in _rows(api.client.get("/console").text)  # cleared: off the list
    empty = api.client.post(f"{path}/note", data={"csrf_token": token, "text": " "})
    assert empty.status_code == 400 and "must not be empty" in empty.text


def test_the_drill_down_shows_runbook_root_cause_and_symptoms(api: SocApi) -> None:
    root = raise_alarm(api, node="site-dc1", alert_group="site.power", summary="dc1 on battery")
    symptom = raise_alarm(api, node="gw7", summary="gateway gw7 does not answer")
    with api.catalog.session() as session:
        session.execute(update(Alarm).where(Alarm.id == symptom).values(suppressed_by=root))
    login(api.client)
    page = api.client.get(f"/console/alarms/{symptom}").text
    assert "Suppressed by" in page and f'href="/console/alarms/{root}"' in page
    assert "docs/runbooks/gateway-down.md" in page
    root_page = api.client.get(f"/console/alarms/{root}").text
    assert "Symptoms (1)" in root_page and "gateway gw7 does not answer" in root_page


def _stream(api: SocApi, monkeypatch: pytest.MonkeyPatch, **params: Any) -> str:
    monkeypatch.setattr(sse, "STREAM_SECONDS", 1.2)
    monkeypatch.setattr(console, "POLL_SECONDS", 0.1)
    headers = params.pop("headers", {})
    answer = api.client.get("/console/stream", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    return str(answer.text)


def _events(body: str) -> list[dict[str, str]]:
    events = []
    for block in body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            events.append(fields)
    return events


def _now(api: SocApi) -> str:
    with api.catalog.session() as session:
        return database_now(session).isoformat()


def test_the_stream_sends_changed_rows_with_ids_to_resume_from(
    api: SocApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    login(api.client)
    mark = _now(api)
    alarm_id = raise_alarm(api, summary="<script>x</script>")
    body = _stream(api, monkeypatch, since=mark)
    assert body.startswith(f"retry: {sse.RETRY_MS}\n\n")
    (event,) = [e for e in _events(body) if e["event"] == "alarms"]
    assert event["id"] > mark
    data = json.loads(event["data"])
    (change,) = data["changes"]
    assert change["id"] == alarm_id and change["matches"] is True
    assert f'id="alarm-{alarm_id}"' in change["html"] and "&lt;script&gt;" in change["html"]
    assert data["counts"]["critical"] == 1
    # The browser comes back with Last-Event-ID: the next alarm arrives, filtered by the view.
    other = raise_alarm(api, node="db9", severity="minor", alert_group="node.disk")
    again = _stream(api, monkeypatch, node="db9", headers={"Last-Event-ID": event["id"]})
    changes = [c for e in _events(again) for c in json.loads(e["data"])["changes"]]
    assert {c["id"]: c["matches"] for c in changes}[other] is True
    assert all(not c["matches"] for c in changes if c["id"] != other)


def test_the_stream_sends_acknowledgements_and_heartbeats(
    api: SocApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    alarm_id = raise_alarm(api)
    login(api.client)
    token = page_token(api.client)
    mark = _now(api)
    api.client.post(f"/console/alarms/{alarm_id}/ack", data={"csrf_token": token})
    monkeypatch.setattr(sse, "HEARTBEAT_SECONDS", 0.3)
    body = _stream(api, monkeypatch, since=mark, acknowledged="no")
    (event,) = [e for e in _events(body) if e["event"] == "alarms"]
    (change,) = json.loads(event["data"])["changes"]
    assert change == {**change, "id": alarm_id, "matches": False, "html": ""}
    assert ": heartbeat\n\n" in body


def test_a_browser_away_too_long_is_told_to_reload(
    api: SocApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(api.client)
    with api.catalog.session() as session:
        old = (database_now(session) - timedelta(hours=1)).isoformat()
    body = _stream(api, monkeypatch, headers={"Last-Event-ID": old})
    assert [e["event"] for e in _events(body)] == ["reload"]


def test_the_stream_is_not_counted_as_control_traffic(
    api: SocApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not is_control_request({"path": "/console/stream"})
    assert not is_control_request({"path": "/api/v1/alarms/stream"})
    assert is_control_request({"path": "/api/v1/alarms"})
    gate = api.client.app.state.control_gate  # type: ignore[attr-defined]
    seen: list[int] = []
    poll = console._Stream.poll

    def watched(self: console._Stream) -> str | None:
        seen.append(gate.in_flight)
        return poll(self)

    monkeypatch.setattr(console._Stream, "poll", watched)
    login(api.client)
    _stream(api, monkeypatch)
    assert seen and set(seen) == {0}  # uploads never wait on an open console


def test_static_files_are_versioned_and_cached_for_a_year(api: SocApi) -> None:
    url = static_url("console.js")
    assert ASSETS["console.js"].digest in url
    answer = api.client.get(url)
    assert answer.status_code == 200 and answer.content == ASSETS["console.js"].body
    assert "max-age=31536000" in answer.headers["cache-control"]
    assert answer.headers["content-type"].startswith("text/javascript")
    stale = api.client.get(url.replace(ASSETS["console.js"].digest, "0" * 16))
    assert stale.headers["cache-control"] == "no-cache"
    assert api.client.get("/static/x/nothing.js").status_code == 404
    login(api.client)
    page = api.client.get("/console").text
    assert static_url("vaultwatch.css") in page and url in page
    assert "<script>" not in page  # no inline script: the policy forbids it
