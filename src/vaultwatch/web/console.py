"""The SOC console: the live alarm list, the drill-down, and the operators' actions on alarms.

Filters live in the URL query, so a view can be bookmarked and shared (and a
wall display opened with ``?wall=1``). The list stays current through
``/console/stream``, Server-Sent Events of the alarm change feed
(`vaultwatch.soc.alarm_feed`): each event carries the changed rows rendered
here, so the browser never builds markup from alarm text. Actions call the
domain functions of `vaultwatch.soc.alarms` directly, each behind the
session's CSRF token.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, get_args, get_origin, get_type_hints
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Form, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import Alarm, AlarmClass, IncidentState, Severity
from vaultwatch.soc import alarm_list, alarms, incidents, saved_views, silences
from vaultwatch.soc.alarm_detail import alarm_detail
from vaultwatch.soc.alarm_feed import AlarmFeed, parse_mark
from vaultwatch.soc.api.auth import catalog_of, scoped_session
from vaultwatch.soc.apikeys import Principal
from vaultwatch.web.render import PAGE_HEADERS, render, render_text
from vaultwatch.web.sessions import Staff, StaffAction, safe_next
from vaultwatch.web.sse import RETRY_MS, poll_events, sse

router = APIRouter(prefix="/console", include_in_schema=False)
log = logging.getLogger("vaultwatch.web")

PAGE_SIZE = 200
POLL_SECONDS = 0.5
#: A browser away for longer than this reloads the whole page instead of replaying changes.
MAX_REPLAY = timedelta(minutes=10)
SEVERITIES = sorted(Severity, reverse=True)
SORT_LABELS = {
    "-severity": "Severity",
    "-last_occurrence": "Newest",
    "last_occurrence": "Oldest",
    "-tally": "Count",
    "node": "Node",
}


@dataclass(frozen=True)
class ConsoleQuery:
    """The console's filters as they appear in the URL."""

    severity: tuple[Severity, ...] = ()
    group: str = ""
    node: str = ""
    tenant: uuid.UUID | None = None
    alarm_class: AlarmClass | None = None
    acknowledged: bool | None = None
    q: str = ""
    sort: str = "-severity"
    wall: bool = False

    def alarm_filter(self, *, with_severity: bool = True) -> alarm_list.AlarmFilter:
        """The domain filter (without the severity choice for the counters)."""
        return alarm_list.AlarmFilter(
            severities=self.severity if with_severity else (),
            alert_group=self.group or None,
            node=self.node or None,
            tenant_id=self.tenant,
            alarm_class=self.alarm_class,
            acknowledged=self.acknowledged,
            text=self.q or None,
        )

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The query parameters of this view, with `changes` applied."""
        view = replace(self, **changes) if changes else self
        items: list[tuple[str, str]] = [("severity", s.label) for s in view.severity]
        for name, value in (
            ("group", view.group),
            ("node", view.node),
            ("tenant", str(view.tenant) if view.tenant else ""),
            ("class", view.alarm_class.value if view.alarm_class else ""),
            ("acknowledged", {True: "yes", False: "no", None: ""}[view.acknowledged]),
            ("q", view.q),
            ("sort", view.sort if view.sort != "-severity" else ""),
            ("wall", "1" if view.wall else ""),
        ):
            if value:
                items.append((name, value))
        return items

    def url(self, path: str = "/console", **changes: Any) -> str:
        """A link to this view (or a variant of it)."""
        query = urlencode(self.params(**changes))
        return f"{path}?{query}" if query else path

    @property
    def filtered(self) -> bool:
        """Whether any filter narrows the list."""
        return bool(
            self.severity
            or self.group
            or self.node
            or self.tenant
            or self.alarm_class
            or self.acknowledged is not None
            or self.q
        )


def _choice(text: str, what: str, parse: Any) -> Any:
    try:
        return parse(text.strip())
    except ValueError:
        raise ValidationError(f"{what} {text!r} is not known") from None


def console_query(
    severity: Annotated[list[str] | None, Query(max_length=20)] = None,
    group: Annotated[str, Query(max_length=100)] = "",
    node: Annotated[str, Query(max_length=255)] = "",
    tenant: Annotated[str, Query(max_length=40)] = "",
    alarm_class: Annotated[str, Query(alias="class", max_length=20)] = "",
    acknowledged: Annotated[str, Query(max_length=5)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    sort: Annotated[str, Query(max_length=30)] = "-severity",
    wall: Annotated[str, Query(max_length=1)] = "",
) -> ConsoleQuery:
    """Parse the filters of the URL; a bad value is a 400 page saying which."""
    severities = tuple(
        sorted({_choice(s, "severity", Severity.parse) for s in severity or [] if s}, reverse=True)
    )
    if sort.removeprefix("-") not in alarm_list.SORTS:
        raise ValidationError(f"cannot sort by {sort!r}: use one of {', '.join(alarm_list.SORTS)}")
    acked = {"": None, "yes": True, "no": False}.get(acknowledged.strip().lower(), "bad")
    if acked == "bad":
        raise ValidationError(f"acknowledged must be yes, no or empty, not {acknowledged!r}")
    return ConsoleQuery(
        severity=severities,
        group=group.strip(),
        node=node.strip(),
        tenant=_choice(tenant, "tenant", uuid.UUID) if tenant.strip() else None,
        alarm_class=_choice(alarm_class, "class", AlarmClass) if alarm_class.strip() else None,
        acknowledged=acked if isinstance(acked, bool) else None,
        q=q.strip(),
        sort=sort,
        wall=wall == "1",
    )


Filters = Annotated[ConsoleQuery, Depends(console_query)]


def _query_fields() -> dict[str, tuple[str, int | None, bool]]:
    """URL key -> (`console_query` parameter, its max length, repeatable), from its signature."""
    fields: dict[str, tuple[str, int | None, bool]] = {}
    for name, hint in get_type_hints(console_query, include_extras=True).items():
        if name == "return":
            continue
        info = hint.__metadata__[0]
        limit = next((m.max_length for m in info.metadata if hasattr(m, "max_length")), None)
        repeated = any(get_origin(a) is list for a in get_args(hint.__origin__))
        fields[info.alias or name] = (name, limit, repeated)
    return fields


_QUERY_FIELDS = _query_fields()


def parse_view_query(text: str) -> ConsoleQuery:
    """A query string parsed as the list page parses its URL; keys it does not know are refused."""
    values: dict[str, Any] = {}
    for key, value in parse_qsl(text.removeprefix("?"), keep_blank_values=True):
        if key not in _QUERY_FIELDS:
            known = ", ".join(_QUERY_FIELDS)
            raise ValidationError(f"{key!r} is not a filter of the alarm list: use {known}")
        name, limit, repeated = _QUERY_FIELDS[key]
        if limit is not None and len(value) > limit:
            raise ValidationError(f"the {key} filter is at most {limit} characters")
        if repeated:
            values.setdefault(name, []).append(value)
        elif name in values:
            raise ValidationError(f"the {key} filter is given twice")
        else:
            values[name] = value
    return console_query(**values)


def canonical_query(text: str) -> str:
    """The query string of the view `text` describes, as the list page writes it."""
    return urlencode(parse_view_query(text).params())


def sort_key(alarm: Alarm, sort: str) -> list[Any]:
    """The values the list is ordered by, for the browser to place a live row."""
    values: list[Any] = []
    for column in (*alarm_list.SORTS[sort.removeprefix("-")], Alarm.id):
        value = getattr(alarm, column.key)
        values.append(value.timestamp() if isinstance(value, datetime) else value)
    return values


def row_html(alarm: Alarm, view: ConsoleQuery, csrf_token: str) -> str:
    """One row of the list, as the page and the live stream show it."""
    return render_text(
        "_alarm_row.html",
        {
            "alarm": alarm,
            "severity": Severity(alarm.severity),
            "key": json.dumps(sort_key(alarm, view.sort)),
            "view": view,
            "csrf_token": csrf_token,
        },
    )


def _one_page(
    session: Session, view: ConsoleQuery, cursor: str | None = None
) -> tuple[alarm_list.AlarmPageResult, dict[str, int]]:
    """A page of the view's alarms and its counters by severity, as the page and the stream show them."""
    page = alarm_list.list_alarms(
        session,
        view.alarm_filter(),
        sort=view.sort,
        limit=PAGE_SIZE,
        cursor=cursor,
        with_total=True,
    )
    return page, alarm_list.severity_counts(session, view.alarm_filter(with_severity=False))


# -- pages -------------------------------------------------------------------------------------


@router.get("")
def console_page(
    request: Request,
    principal: Staff,
    view: Filters,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """The alarm list: counters by severity, the filtered rows, live from the stream."""
    catalog = catalog_of(request)
    with scoped_session(catalog, principal) as session:
        page, counts = _one_page(session, view, cursor)
        mark = database_now(session)
        rows = [row_html(a, view, request.state.csrf_token) for a in page.items]
        views = saved_views.list_views(session, principal.user_id)
    live = [*view.params(wall=False), ("since", mark.isoformat())]
    more = [*view.params(), ("cursor", page.next_cursor)] if page.next_cursor else None
    return render(
        request,
        "console.html",
        {
            "view": view,
            "rows": rows,
            "total": page.total,
            "next_url": "/console?" + urlencode(more) if more else None,
            "counts": counts,
            "severities": SEVERITIES,
            "classes": list(AlarmClass),
            "sorts": SORT_LABELS,
            "stream_url": "/console/stream?" + urlencode(live),
            "descending": view.sort.startswith("-"),
            "saved_views": views,
            "view_query": urlencode(view.params()),
        },
    )


@router.get("/alarms/{alarm_id}")
def alarm_page(request: Request, alarm_id: int, principal: Staff) -> Response:
    """The drill-down: details, journal, runbook, root cause and symptoms."""
    with scoped_session(catalog_of(request), principal) as session:
        detail = alarm_detail(session, alarm_id)
        alarm = detail.alarm
        silence = silences.get_silence(session, alarm.silence_id) if alarm.silence_id else None
        incident = incidents.get_incident(session, alarm.incident_id) if alarm.incident_id else None
        if incident is not None and incident.state == IncidentState.RESOLVED:
            incident = None
        return render(
            request,
            "alarm.html",
            {
                "detail": detail,
                "alarm": detail.alarm,
                "severity": Severity(detail.alarm.severity),
                "Severity": Severity,
                "runbook_is_link": (detail.alarm.runbook or "").startswith(("https://", "http://")),
                "silence": silence,
                "open_incident": incident,
                "silence_scopes": SILENCE_SCOPES,
                "silence_durations": SILENCE_DURATIONS,
            },
        )


# -- actions -----------------------------------------------------------------------------------

#: Which alarms "silence alarms like this" mutes: the label, and the alarm fields matched.
SILENCE_SCOPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "node-group": ("This node and alert group", ("node", "alert_group")),
    "group": ("This alert group on every node", ("alert_group",)),
    "alarm": ("Only this alarm", ("node", "entity", "alert_group", "alert_key", "tenant_id")),
}
#: How long such a silence lasts.
SILENCE_DURATIONS: dict[str, tuple[str, timedelta]] = {
    "15m": ("15 minutes", timedelta(minutes=15)),
    "1h": ("1 hour", timedelta(hours=1)),
    "4h": ("4 hours", timedelta(hours=4)),
    "24h": ("24 hours", timedelta(hours=24)),
}


def silence_matchers(alarm: Alarm, scope: str) -> list[dict[str, str]]:
    """Matchers selecting the alarms of `scope` like `alarm` (the alarm's own identifying fields)."""
    values = {
        "node": alarm.node,
        "entity": alarm.entity,
        "alert_group": alarm.alert_group,
        "alert_key": alarm.alert_key or "",
        "tenant_id": str(alarm.tenant_id) if alarm.tenant_id else "",
    }
    return [
        {"field": name, "op": "=", "value": values[name]}
        for name in SILENCE_SCOPES[scope][1]
        if name != "tenant_id" or values[name]
    ]


def _done(request: Request, alarm: Alarm, next_url: str) -> Response:
    """A fetch gets the alarm's new row; a plain form goes back where it came from."""
    if "application/json" in request.headers.get("accept", ""):
        view = ConsoleQuery()
        html = row_html(alarm, view, request.state.csrf_token)
        return JSONResponse(
            {"id": alarm.id, "acknowledged": alarm.acknowledged, "html": html},
            headers={"Cache-Control": "no-store"},
        )
    return RedirectResponse(safe_next(next_url or f"/console/alarms/{alarm.id}"), status_code=303)


NextField = Annotated[str, Form(max_length=2000)]


@router.post("/alarms/{alarm_id}/ack")
def ack(request: Request, alarm_id: int, principal: StaffAction, next: NextField = "") -> Response:
    """Acknowledge: seen and being handled."""
    with scoped_session(catalog_of(request), principal) as session:
        return _done(request, alarms.acknowledge(session, alarm_id, principal.actor), next)


@router.post("/alarms/{alarm_id}/unack")
def unack(
    request: Request, alarm_id: int, principal: StaffAction, next: NextField = ""
) -> Response:
    """Take an acknowledgement back."""
    with scoped_session(catalog_of(request), principal) as session:
        alarm = alarms.acknowledge(session, alarm_id, principal.actor, acknowledged=False)
        return _done(request, alarm, next)


@router.post("/alarms/{alarm_id}/assign")
def assign(
    request: Request,
    alarm_id: int,
    principal: StaffAction,
    owner: Annotated[str, Form(max_length=200)] = "",
    next: NextField = "",
) -> Response:
    """Give the alarm an owner (empty takes it back)."""
    with scoped_session(catalog_of(request), principal) as session:
        alarm = alarms.assign(session, alarm_id, principal.actor, owner.strip() or None)
        return _done(request, alarm, next)


@router.post("/alarms/{alarm_id}/note")
def note(
    request: Request,
    alarm_id: int,
    principal: StaffAction,
    text: Annotated[str, Form(max_length=alarms.MAX_NOTE)] = "",
    next: NextField = "",
) -> Response:
    """Add a note to the journal."""
    with scoped_session(catalog_of(request), principal) as session:
        alarms.add_note(session, alarm_id, principal.actor, text)
        return _done(request, alarms.get_alarm(session, alarm_id), next)


@router.post("/alarms/{alarm_id}/clear")
def clear(
    request: Request,
    alarm_id: int,
    principal: StaffAction,
    reason: Annotated[str, Form(max_length=alarms.MAX_NOTE)] = "",
    next: NextField = "",
) -> Response:
    """Clear by hand: the problem is over though no resolution arrived."""
    with scoped_session(catalog_of(request), principal) as session:
        return _done(request, alarms.clear(session, alarm_id, principal.actor, reason), next)


@router.post("/alarms/{alarm_id}/silence")
def silence(
    request: Request,
    alarm_id: int,
    principal: StaffAction,
    scope: Annotated[str, Form(max_length=20)] = "",
    duration: Annotated[str, Form(max_length=5)] = "",
    comment: Annotated[str, Form(max_length=silences.MAX_COMMENT)] = "",
) -> Response:
    """Silence alarms like this one for a while, saying why."""
    if scope not in SILENCE_SCOPES:
        raise ValidationError(f"silence which alarms? use one of {', '.join(SILENCE_SCOPES)}")
    if duration not in SILENCE_DURATIONS:
        raise ValidationError(f"silence for how long? use one of {', '.join(SILENCE_DURATIONS)}")
    with scoped_session(catalog_of(request), principal) as session:
        alarm = alarms.get_alarm(session, alarm_id)
        now = database_now(session)
        silences.create_silence(
            session,
            actor=principal.actor,
            comment=comment,
            matchers=silence_matchers(alarm, scope),
            starts_at=now,
            ends_at=now + SILENCE_DURATIONS[duration][1],
            now=now,
        )
    return RedirectResponse(f"/console/alarms/{alarm_id}", status_code=303)


@router.post("/alarms/{alarm_id}/silence/cancel")
def cancel_silence(request: Request, alarm_id: int, principal: StaffAction) -> Response:
    """End the silence that mutes this alarm now."""
    with scoped_session(catalog_of(request), principal) as session:
        alarm = alarms.get_alarm(session, alarm_id)
        if alarm.silence_id is None:
            raise silences.SilenceStateError(f"alarm {alarm_id} is not silenced")
        silences.cancel_silence(session, alarm.silence_id, principal.actor)
    return RedirectResponse(f"/console/alarms/{alarm_id}", status_code=303)


@router.post("/alarms/{alarm_id}/incident")
def raise_incident(request: Request, alarm_id: int, principal: StaffAction) -> Response:
    """Open an incident for this alarm and go to it."""
    with scoped_session(catalog_of(request), principal) as session:
        incident = incidents.open_incident_for_alarm(session, alarm_id, actor=principal.actor)
        incident_id = incident.id
    return RedirectResponse(f"/console/incidents/{incident_id}", status_code=303)


# -- saved views -------------------------------------------------------------------------------


@router.post("/views")
def save_view(
    request: Request,
    principal: StaffAction,
    name: Annotated[str, Form(max_length=saved_views.MAX_NAME)] = "",
    query: Annotated[str, Form(max_length=saved_views.MAX_QUERY)] = "",
) -> Response:
    """Save the list's current filter under a name, and show it."""
    with scoped_session(catalog_of(request), principal) as session:
        view = saved_views.save_view(
            session, principal.user_id, name, query, canonical=canonical_query
        )
        target = f"/console?{view.query}" if view.query else "/console"
    return RedirectResponse(target, status_code=303)


@router.post("/views/{view_id}/delete")
def delete_view(
    request: Request, view_id: int, principal: StaffAction, next: NextField = ""
) -> Response:
    """Delete one of the operator's saved views."""
    with scoped_session(catalog_of(request), principal) as session:
        saved_views.delete_view(session, principal.user_id, view_id)
    return RedirectResponse(safe_next(next), status_code=303)


# -- live stream -------------------------------------------------------------------------------


@dataclass
class _Stream:
    catalog: Catalog
    principal: Principal
    view: ConsoleQuery
    csrf_token: str
    feed: AlarmFeed

    def poll(self) -> str | None:
        """One poll of the feed as an SSE event (None when nothing changed)."""
        with scoped_session(self.catalog, self.principal) as session:
            changes = self.feed.poll(session)
            if self.feed.behind:
                return self._fresh_page(session)
            if not changes:
                return None
            counts = alarm_list.severity_counts(
                session, self.view.alarm_filter(with_severity=False)
            )
            items = [
                {
                    **self._described(c.alarm, drawn=c.matches),
                    "matches": c.matches,
                    "key": sort_key(c.alarm, self.view.sort) if c.matches else None,
                }
                for c in changes
            ]
        return sse("alarms", {"changes": items, "counts": counts}, self.feed.mark.isoformat())

    def _fresh_page(self, session: Session) -> str:
        """The view's first page as it is now, instead of a backlog of changes."""
        self.feed.skip_to(database_now(session))
        page, counts = _one_page(session, self.view)
        data = {
            "rows": [self._described(a, drawn=True) for a in page.items],
            "total": page.total,
            "counts": counts,
        }
        return sse("page", data, self.feed.mark.isoformat())

    def _described(self, alarm: Alarm, *, drawn: bool) -> dict[str, Any]:
        """What the page needs of an alarm: its notification text, and its row when drawn."""
        return {
            "id": alarm.id,
            "severity": Severity(alarm.severity).label,
            "node": alarm.node,
            "summary": alarm.summary,
            "html": row_html(alarm, self.view, self.csrf_token) if drawn else "",
        }

    def events(self, request: Request) -> AsyncIterator[str]:
        """The live stream of this page."""
        return poll_events(request, self.poll, what="alarm", poll_seconds=POLL_SECONDS)


@router.get("/ping")
def ping(principal: Staff) -> Response:
    """204 while the session is good (the page asks before reconnecting a closed stream)."""
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


def _now(catalog: Catalog) -> datetime:
    with catalog.session() as session:
        return database_now(session)


@router.get("/stream")
async def stream(
    request: Request,
    principal: Staff,
    view: Filters,
    since: Annotated[str | None, Query(max_length=64)] = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """Server-Sent Events of alarm changes since the browser's last event (or `since`)."""
    catalog = catalog_of(request)
    now = await run_in_threadpool(_now, catalog)
    mark = parse_mark(last_event_id or since, now)
    headers = {**PAGE_HEADERS, "X-Accel-Buffering": "no"}
    if mark < now - MAX_REPLAY:
        body = f"retry: {RETRY_MS}\n\n" + sse("reload", {"reason": "away too long"})
        return Response(body, media_type="text/event-stream", headers=headers)
    feed = AlarmFeed(min(mark, now), view.alarm_filter())
    live = _Stream(catalog, principal, view, request.state.csrf_token, feed)
    return StreamingResponse(live.events(request), media_type="text/event-stream", headers=headers)
