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
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import Alarm, AlarmClass, Severity
from vaultwatch.soc import alarm_list, alarms
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
        page = alarm_list.list_alarms(
            session,
            view.alarm_filter(),
            sort=view.sort,
            limit=PAGE_SIZE,
            cursor=cursor,
            with_total=True,
        )
        counts = alarm_list.severity_counts(session, view.alarm_filter(with_severity=False))
        mark = database_now(session)
        rows = [row_html(a, view, request.state.csrf_token) for a in page.items]
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
        },
    )


@router.get("/alarms/{alarm_id}")
def alarm_page(request: Request, alarm_id: int, principal: Staff) -> Response:
    """The drill-down: details, journal, runbook, root cause and symptoms."""
    with scoped_session(catalog_of(request), principal) as session:
        detail = alarm_detail(session, alarm_id)
        return render(
            request,
            "alarm.html",
            {
                "detail": detail,
                "alarm": detail.alarm,
                "severity": Severity(detail.alarm.severity),
                "Severity": Severity,
                "runbook_is_link": (detail.alarm.runbook or "").startswith(("https://", "http://")),
            },
        )


# -- actions -----------------------------------------------------------------------------------


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
            if not changes:
                return None
            counts = alarm_list.severity_counts(
                session, self.view.alarm_filter(with_severity=False)
            )
            items = [
                {
                    "id": c.alarm.id,
                    "matches": c.matches,
                    "severity": Severity(c.alarm.severity).label,
                    "node": c.alarm.node,
                    "summary": c.alarm.summary,
                    "html": row_html(c.alarm, self.view, self.csrf_token) if c.matches else "",
                }
                for c in changes
            ]
        return sse("alarms", {"changes": items, "counts": counts}, self.feed.mark.isoformat())

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
