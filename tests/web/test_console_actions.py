"""The console's actions beyond acknowledging: silence and raise an incident from the drill-down,
and the operator's saved views of the list."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import delete, select

from tests.soc.api.harness import SocApi
from tests.web.harness import login, page_token, raise_alarm
from vaultwatch.catalog import AuditEntry
from vaultwatch.catalog.soc_models import Alarm, Incident, SavedView, Silence


def _rows(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="alarm-(\d+)"', html)]


def _clean(api: SocApi) -> None:
    with api.catalog.session() as session:
        session.execute(delete(Silence))
        session.execute(delete(SavedView))


def test_silencing_from_the_drill_down_mutes_alarms_like_it_until_cancelled(api: SocApi) -> None:
    _clean(api)
    alarm_id = raise_alarm(api, node="gw1", alert_group="gateway.down")
    other_node = raise_alarm(api, node="gw2", alert_group="gateway.down")
    login(api.client)
    page = f"/console/alarms/{alarm_id}"
    assert "Silence alarms like this" in api.client.get(page).text
    answer = api.client.post(
        f"{page}/silence",
        data={
            "csrf_token": page_token(api.client, page),
            "scope": "node-group",
            "duration": "4h",
            "comment": "planned gateway firmware upgrade",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == page
    with api.catalog.session() as session:
        silence = session.scalars(select(Silence)).one()
        assert silence.matchers == [
            {"field": "node", "op": "=", "value": "gw1"},
            {"field": "alert_group", "op": "=", "value": "gateway.down"},
        ]
        assert silence.ends_at - silence.starts_at == timedelta(hours=4)
        assert silence.comment == "planned gateway firmware upgrade"
        assert session.get(Alarm, alarm_id).silence_id == silence.id  # type: ignore[union-attr]
        assert session.get(Alarm, other_node).silence_id is None  # type: ignore[union-attr]
        audited = session.scalars(
            select(AuditEntry).where(AuditEntry.target == f"silence:{silence.id}")
        ).one()
        assert audited.action == "silence.create" and audited.actor.startswith("user:")
        silence_id, ends = silence.id, silence.ends_at
    shown = api.client.get(page).text
    assert f"Silenced by silence {silence_id} until" in shown
    assert ends.strftime("%Y-%m-%d %H:%M") in shown
    assert "Silence alarms like this" not in shown
    row = api.client.get("/console").text.split(f'id="alarm-{alarm_id}"')[1].split("</tr>")[0]
    assert '<span class="tag">silenced</span>' in row

    cancelled = api.client.post(
        f"{page}/silence/cancel",
        data={"csrf_token": page_token(api.client, page)},
        follow_redirects=False,
    )
    assert cancelled.status_code == 303
    with api.catalog.session() as session:
        assert session.get(Alarm, alarm_id).silence_id is None  # type: ignore[union-attr]
        assert session.get(Silence, silence_id).cancelled_at is not None  # type: ignore[union-attr]
    assert "Silence alarms like this" in api.client.get(page).text


def test_silencing_only_this_alarm_matches_its_identifying_fields(api: SocApi) -> None:
    _clean(api)
    alarm_id = raise_alarm(api, node="db1", alert_group="node.disk", alert_key="/var")
    sibling = raise_alarm(api, node="db1", alert_group="node.disk", alert_key="/home")
    login(api.client)
    page = f"/console/alarms/{alarm_id}"
    api.client.post(
        f"{page}/silence",
        data={
            "csrf_token": page_token(api.client, page),
            "scope": "alarm",
            "duration": "15m",
            "comment": "cleaning up /var",
        },
    )
    with api.catalog.session() as session:
        assert session.get(Alarm, alarm_id).silence_id is not None  # type: ignore[union-attr]
        assert session.get(Alarm, sibling).silence_id is None  # type: ignore[union-attr]


def test_a_silence_without_a_comment_is_a_400_page_and_nothing_is_stored(api: SocApi) -> None:
    _clean(api)
    alarm_id = raise_alarm(api)
    login(api.client)
    page = f"/console/alarms/{alarm_id}"
    token = page_token(api.client, page)
    for data in (
        {"scope": "group", "duration": "1h", "comment": "  "},
        {"scope": "everything", "duration": "1h", "comment": "why"},
        {"scope": "group", "duration": "9y", "comment": "why"},
    ):
        answer = api.client.post(f"{page}/silence", data={"csrf_token": token, **data})
        assert answer.status_code == 400
        assert answer.headers["content-type"].startswith("text/html")
    assert (
        "a silence needs a comment"
        in api.client.post(
            f"{page}/silence",
            data={"csrf_token": token, "scope": "group", "duration": "1h", "comment": ""},
        ).text
    )
    with api.catalog.session() as session:
        assert session.scalars(select(Silence)).all() == []
        assert session.get(Alarm, alarm_id).silence_id is None  # type: ignore[union-attr]


def test_raising_an_incident_opens_it_and_the_drill_down_then_links_to_it(api: SocApi) -> None:
    # Minor: below the automatic incident rules, so only the operator's choice opens one.
    alarm_id = raise_alarm(api, severity="minor", summary="gateway gw1 drops uploads")
    login(api.client)
    page = f"/console/alarms/{alarm_id}"
    assert f'action="{page}/incident"' in api.client.get(page).text
    token = page_token(api.client, page)
    answer = api.client.post(f"{page}/incident", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    match = re.fullmatch(r"/console/incidents/(\d+)", answer.headers["location"])
    assert match, answer.headers["location"]
    incident_id = int(match.group(1))
    with api.catalog.session() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None and incident.root_alarm_id == alarm_id
        assert incident.title == "gateway gw1 drops uploads" and incident.created_by.startswith(
            "user:"
        )
        assert session.get(Alarm, alarm_id).incident_id == incident_id  # type: ignore[union-attr]
    assert api.client.get(answer.headers["location"]).status_code == 200
    shown = api.client.get(page).text
    assert f'href="/console/incidents/{incident_id}"' in shown
    assert f'action="{page}/incident"' not in shown
    # A second raise (a stale page) opens nothing new.
    with api.catalog.session() as session:
        before = len(session.scalars(select(Incident.id)).all())
    again = api.client.post(f"{page}/incident", data={"csrf_token": token})
    assert again.status_code == 409 and f"already has open incident {incident_id}" in again.text
    with api.catalog.session() as session:
        assert len(session.scalars(select(Incident.id)).all()) == before


def test_actions_without_the_csrf_token_are_refused(api: SocApi) -> None:
    _clean(api)
    alarm_id = raise_alarm(api, severity="minor")
    login(api.client)
    page = f"/console/alarms/{alarm_id}"
    for path, data in (
        (f"{page}/silence", {"scope": "group", "duration": "1h", "comment": "why"}),
        (f"{page}/silence/cancel", {}),
        (f"{page}/incident", {}),
        ("/console/views", {"name": "mine", "query": "node=gw1"}),
        ("/console/views/1/delete", {}),
    ):
        assert api.client.post(path, data=data).status_code == 403, path
        assert api.client.post(path, data={**data, "csrf_token": "0" * 64}).status_code == 403
    with api.catalog.session() as session:
        assert session.scalars(select(Silence)).all() == []
        assert session.scalars(select(SavedView)).all() == []
        assert session.get(Alarm, alarm_id).incident_id is None  # type: ignore[union-attr]


def test_a_saved_view_round_trip(api: SocApi) -> None:
    _clean(api)
    gw1 = raise_alarm(api, node="gw1", severity="critical")
    raise_alarm(api, node="gw2", severity="critical")
    login(api.client)
    token = page_token(api.client)
    saved = api.client.post(
        "/console/views",
        data={"csrf_token": token, "name": "Gateway one", "query": "node=gw1&sort=-tally"},
        follow_redirects=False,
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/console?node=gw1&sort=-tally"
    listing = api.client.get("/console").text
    menu = listing.split('class="view-menu"')[1].split("</ul>")[0]
    assert '<a href="/console?node=gw1&amp;sort=-tally">Gateway one</a>' in menu
    opened = api.client.get("/console?node=gw1&sort=-tally").text
    assert _rows(opened) == [gw1] and 'name="node" value="gw1"' in opened
    assert 'aria-current="true">Gateway one</a>' in opened
    view_id = int(re.findall(r'action="/console/views/(\d+)/delete"', menu)[0])

    # Another operator has their own menu, and cannot delete this one.
    other = api.client.cookies.get("vw_session")
    api.client.cookies.clear()
    login(api.client, api.admin_email, api.admin_password)
    assert "Gateway one" not in api.client.get("/console").text
    refused = api.client.post(
        f"/console/views/{view_id}/delete", data={"csrf_token": page_token(api.client)}
    )
    assert refused.status_code == 404
    api.client.cookies.clear()
    api.client.cookies.set("vw_session", other or "")

    deleted = api.client.post(
        f"/console/views/{view_id}/delete",
        data={"csrf_token": page_token(api.client), "next": "/console?node=gw1"},
        follow_redirects=False,
    )
    assert deleted.status_code == 303 and deleted.headers["location"] == "/console?node=gw1"
    assert "Gateway one" not in api.client.get("/console").text
    with api.catalog.session() as session:
        assert session.scalars(select(SavedView)).all() == []


def test_a_view_with_an_unknown_filter_is_a_400_page(api: SocApi) -> None:
    _clean(api)
    login(api.client)
    answer = api.client.post(
        "/console/views",
        data={"csrf_token": page_token(api.client), "name": "x", "query": "node=a&evil=1"},
    )
    assert answer.status_code == 400 and "&#39;evil&#39; is not a filter" in answer.text
    with api.catalog.session() as session:
        assert session.scalars(select(SavedView)).all() == []


def test_a_hostile_view_name_is_shown_as_text(api: SocApi) -> None:
    _clean(api)
    login(api.client)
    hostile = '<script>alert("v")</script>"><img src=x onerror=alert(1)>'
    api.client.post(
        "/console/views",
        data={"csrf_token": page_token(api.client), "name": hostile, "query": "node=gw1"},
    )
    page = api.client.get("/console").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;v&#34;)&lt;/script&gt;&#34;&gt;&lt;img" in page
