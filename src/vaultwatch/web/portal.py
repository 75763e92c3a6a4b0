"""The customer portal: a tenant's servers, their protection and jobs, notices, cases, people.

Every handler opens its transaction with ``Catalog.session(tenant_id=...)``
of the signed-in user's tenant, so another tenant's server, case or
snapshot is simply not found (404), whatever URL is typed. Staff do not use
the portal (403 with a way to the console); viewers see everything of their
tenant, and only customer admins manage people and enroll servers. The
server page follows running jobs over ``/portal/servers/{id}/stream``
(Server-Sent Events), whose rows are rendered here and sent as markup.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from vaultwatch.catalog import Catalog, CatalogSession, Role
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.enrollment import create_enrollment_token
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import Tenant
from vaultwatch.catalog.users import UserExistsError, create_user
from vaultwatch.gateway.tls import fingerprint
from vaultwatch.protocol import API_PREFIX
from vaultwatch.soc import cases, customer_updates, portal, status, timeline
from vaultwatch.soc.api.auth import catalog_of, token_key_of
from vaultwatch.soc.apikeys import ForbiddenError, Principal
from vaultwatch.units import human_bytes, human_duration
from vaultwatch.web import charts, csrf
from vaultwatch.web.render import PAGE_HEADERS, render, render_text
from vaultwatch.web.sessions import SignedIn
from vaultwatch.web.sse import poll_events, sse

router = APIRouter(prefix="/portal", include_in_schema=False)
log = logging.getLogger("vaultwatch.web")

POLL_SECONDS = 0.5
RECENT_JOBS = 15
SNAPSHOTS_PER_SET = 8
TOKEN_LIFETIMES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
STATE_LABELS = {
    status.ProtectionState.PROTECTED: "Protected",
    status.ProtectionState.AT_RISK: "At risk",
    status.ProtectionState.UNPROTECTED: "Unprotected",
    status.ProtectionState.NOT_CONFIGURED: "Not configured",
    status.ProtectionState.PAUSED: "Paused",
    status.ProtectionState.MAINTENANCE: "Maintenance",
}
CUSTOMER_ROLE_CHOICES = (Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN)


class StaffOnPortalError(ForbiddenError):
    """The portal shows one customer's view; the operations center works in the console."""


class AdminOnlyError(ForbiddenError):
    """Only the customer's administrators may do this."""


# -- who may come in -----------------------------------------------------------------------------


def customer(principal: SignedIn) -> Principal:
    """A signed-in user of a customer (staff get a 403 page pointing to the console)."""
    if not principal.is_customer or principal.tenant_id is None:
        raise StaffOnPortalError(
            "the portal is for customers' own people; the operations center works in the console"
        )
    return principal


async def customer_with_csrf(
    request: Request, principal: Annotated[Principal, Depends(customer)]
) -> Principal:
    """A customer's state-changing request that carries the session's CSRF token."""
    csrf.check(request.state.csrf_token, await csrf.submitted_token(request))
    return principal


Customer = Annotated[Principal, Depends(customer)]
CustomerAction = Annotated[Principal, Depends(customer_with_csrf)]


def require_admin(principal: Principal) -> None:
    """Refuse (403) unless the principal is one of its tenant's administrators."""
    if principal.role != Role.CUSTOMER_ADMIN:
        raise AdminOnlyError("only your organisation's administrators can do this")


@contextmanager
def tenant_session(request: Request, principal: Principal) -> Iterator[CatalogSession]:
    """A transaction that sees and writes only the principal's tenant."""
    assert principal.tenant_id is not None
    with catalog_of(request).session(tenant_id=principal.tenant_id) as session:
        yield session


def _tenant_name(session: CatalogSession, principal: Principal) -> str:
    tenant = session.get(Tenant, principal.tenant_id)
    return tenant.name if tenant is not None else ""


def last_good(server: status.AgentStatus) -> datetime | None:
    """When the server's newest good snapshot (of any set) finished."""
    times = [s.last_good_snapshot.finished_at for s in server.backup_sets if s.last_good_snapshot]
    return max(times) if times else None


def worst_rpo(server: status.AgentStatus) -> float | None:
    """The largest fraction of its RPO any enabled set has used."""
    used = [s.rpo_used for s in server.backup_sets if s.enabled and s.rpo_used is not None]
    return max(used) if used else None


#: What the portal's templates format and draw with.
HELPERS: dict[str, Any] = {
    "state_labels": STATE_LABELS,
    "charts": charts,
    "human_bytes": human_bytes,
    "human_duration": human_duration,
    "last_good": last_good,
    "worst_rpo": worst_rpo,
}


def _page(request: Request, template: str, context: dict[str, Any], **kw: Any) -> Response:
    values = {
        **HELPERS,
        "is_admin": request.state.principal.role == Role.CUSTOMER_ADMIN,
        **context,
    }
    return render(request, template, values, **kw)


# -- dashboard -----------------------------------------------------------------------------------


def _window(text: str) -> tuple[str, timedelta]:
    if text not in timeline.WINDOWS:
        raise ValidationError(f"window must be one of {', '.join(timeline.WINDOWS)}")
    return text, timeline.WINDOWS[text]


@router.get("")
def dashboard(
    request: Request,
    principal: Customer,
    window: Annotated[str, Query(max_length=8)] = "24h",
) -> Response:
    """Every server of the tenant: its state and why, RPO used, storage, and its timeline."""
    name, span = _window(window)
    with tenant_session(request, principal) as session:
        now = database_now(session)
        servers = status.list_agent_status(
            session, tenant_id=principal.tenant_id, limit=status.MAX_PAGE, now=now
        ).items
        lines = {
            t.agent_id: t for t in timeline.protection_timelines(session, window=span, now=now)
        }
        storage = portal.storage_by_agent(session)
        crises = portal.open_crises(session, principal.tenant_id)  # type: ignore[arg-type]
        tenant = _tenant_name(session, principal)
    counts = {s: 0 for s in status.ProtectionState}
    for server in servers:
        counts[server.state] += 1
    return _page(
        request,
        "portal_dashboard.html",
        {
            "tenant": tenant,
            "servers": servers,
            "timelines": lines,
            "storage": storage,
            "total_storage": sum(storage.values()),
            "crises": crises,
            "counts": counts,
            "window": name,
            "windows": list(timeline.WINDOWS),
            "since": now - span,
            "until": now,
            "now": now,
        },
    )


# -- a server ------------------------------------------------------------------------------------


def _job_html(job: status.JobInfo) -> str:
    return render_text("portal_job.html", {**HELPERS, "job": job, "active": job.state in _ACTIVE})


_ACTIVE = {s.value for s in status.ACTIVE_JOB_STATES}


@router.get("/servers/add")
def add_server_page(request: Request, principal: Customer) -> Response:
    """How to enroll a new server: make a token, run the commands; the tenant's tokens."""
    require_admin(principal)
    return _add_server(request, principal, issued=None)


def _add_server(
    request: Request, principal: Principal, *, issued: tuple[str, datetime] | None
) -> Response:
    ca = request.app.state.settings.ca_cert
    with tenant_session(request, principal) as session:
        tokens = portal.enrollment_tokens(session)
        urls = portal.gateway_urls(session)
        tenant = _tenant_name(session, principal)
    base = str(request.base_url).rstrip("/")
    server_url = urls[0] if urls else base
    return _page(
        request,
        "portal_add_server.html",
        {
            "tenant": tenant,
            "tokens": tokens,
            "server_url": server_url,
            "other_urls": urls[1:],
            "ca_url": f"{server_url}{API_PREFIX}/ca",
            "ca_fingerprint": fingerprint(ca) if ca is not None and ca.is_file() else None,
            "issued": issued,
            "lifetimes": list(TOKEN_LIFETIMES),
        },
        status=201 if issued else 200,
    )


@router.post("/servers/add")
def make_token(
    request: Request,
    principal: CustomerAction,
    note: Annotated[str, Form(max_length=200)] = "",
    lifetime: Annotated[str, Form(max_length=8)] = "24h",
) -> Response:
    """A new single-use enrollment token, shown once with the commands that use it."""
    require_admin(principal)
    if lifetime not in TOKEN_LIFETIMES:
        raise ValidationError(f"lifetime must be one of {', '.join(TOKEN_LIFETIMES)}")
    with tenant_session(request, principal) as session:
        issued = create_enrollment_token(
            session,
            principal.tenant_id,  # type: ignore[arg-type]
            key=token_key_of(request),
            created_by=principal.actor,
            ttl=TOKEN_LIFETIMES[lifetime],
            note=" ".join(note.split()) or None,
        )
        plaintext, expires = issued.plaintext, issued.token.expires_at
    return _add_server(request, principal, issued=(plaintext, expires))


@router.get("/servers/{agent_id}")
def server_page(
    request: Request,
    agent_id: uuid.UUID,
    principal: Customer,
    window: Annotated[str, Query(max_length=8)] = "24h",
    requested: Annotated[int | None, Query()] = None,
) -> Response:
    """One server: its sets with their timelines and snapshots, running and recent jobs."""
    name, span = _window(window)
    with tenant_session(request, principal) as session:
        now = database_now(session)
        server = status.agent_status(session, agent_id, now=now)
        lines = timeline.protection_timelines(session, [agent_id], window=span, now=now)
        snapshots = {
            s.id: status.list_snapshots(session, s.id, limit=SNAPSHOTS_PER_SET)
            for s in server.backup_sets
        }
        storage = portal.storage_by_set(session, agent_id)
        jobs = status.list_jobs(session, agent_id=agent_id, limit=RECENT_JOBS, now=now)
        running = status.list_jobs(session, agent_id=agent_id, running=True, now=now)
    set_lines = {s.id: s for s in lines[0].sets} if lines else {}
    return _page(
        request,
        "portal_server.html",
        {
            "server": server,
            "set_lines": set_lines,
            "snapshots": snapshots,
            "storage": storage,
            "running": [_job_html(j) for j in running],
            "recent": [j for j in jobs if j.state not in _ACTIVE],
            "window": name,
            "windows": list(timeline.WINDOWS),
            "since": now - span,
            "until": now,
            "requested": requested,
            "stream_url": f"/portal/servers/{agent_id}/stream",
        },
    )


@router.post("/servers/{agent_id}/restore")
def ask_for_restore(
    request: Request,
    agent_id: uuid.UUID,
    principal: CustomerAction,
    snapshot_id: Annotated[uuid.UUID, Form()],
    target: Annotated[str, Form(max_length=portal.MAX_TARGET)] = "",
    note: Annotated[str, Form(max_length=portal.MAX_NOTE)] = "",
) -> Response:
    """Record a restore request for the SOC, then back to the server page saying so."""
    with tenant_session(request, principal) as session:
        asked = portal.request_restore(
            session,
            agent_id,
            snapshot_id,
            actor=principal.actor,
            requested_by=principal.email,
            target=target,
            note=note,
        )
    url = f"/portal/servers/{agent_id}?requested={asked.alarm.id}#restore-requested"
    return RedirectResponse(url, status_code=303)


# -- live job progress -----------------------------------------------------------------------------


def _job_fields(job: status.JobInfo) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "state": job.state,
        "active": job.state in _ACTIVE,
        "percent": job.percent,
        "updated": job.updated_at.isoformat(),
        "html": _job_html(job),
    }


@dataclass
class _JobStream:
    catalog: Catalog
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    seen: dict[str, str] = field(default_factory=dict)

    def poll(self) -> str | None:
        """The running jobs, and those that just finished, when anything changed."""
        with self.catalog.session(tenant_id=self.tenant_id) as session:
            now = database_now(session)
            status.agent_status(session, self.agent_id, now=now)  # 404 for a stranger's server
            jobs = status.list_jobs(session, agent_id=self.agent_id, limit=RECENT_JOBS, now=now)
        changed = []
        for job in jobs:
            key = str(job.id)
            stamp = f"{job.state}|{job.updated_at.isoformat()}|{job.stalled}"
            if job.state in _ACTIVE or key in self.seen:
                if self.seen.get(key) != stamp:
                    changed.append(_job_fields(job))
                self.seen[key] = stamp
        return sse("jobs", {"jobs": changed}) if changed else None

    def events(self, request: Request) -> AsyncIterator[str]:
        """The live stream of this page."""
        return poll_events(request, self.poll, what="job", poll_seconds=POLL_SECONDS)


def _check_server(catalog: Catalog, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    with catalog.session(tenant_id=tenant_id) as session:
        status.agent_status(session, agent_id)


def _watched(text: str) -> dict[str, str]:
    """The jobs the page shows as running (``watch=id,id``): their end is sent even if missed."""
    seen: dict[str, str] = {}
    for part in text.split(",")[:RECENT_JOBS]:
        try:
            seen[str(uuid.UUID(part.strip()))] = ""
        except ValueError:
            continue
    return seen


@router.get("/servers/{agent_id}/stream")
async def job_stream(
    request: Request,
    agent_id: uuid.UUID,
    principal: Customer,
    watch: Annotated[str, Query(max_length=1000)] = "",
) -> Response:
    """Server-Sent Events of this server's jobs: progress while they run, their end once."""
    assert principal.tenant_id is not None
    catalog = catalog_of(request)
    await run_in_threadpool(_check_server, catalog, principal.tenant_id, agent_id)
    live = _JobStream(catalog, principal.tenant_id, agent_id, _watched(watch))
    headers = {**PAGE_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(live.events(request), media_type="text/event-stream", headers=headers)


@router.get("/ping")
def ping(principal: Customer) -> Response:
    """204 while the session is good (the page asks before reconnecting a closed stream)."""
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


# -- notices -------------------------------------------------------------------------------------


@router.get("/status")
def status_page(request: Request, principal: Customer) -> Response:
    """Published notices about incidents that affect the tenant, and any crisis in progress."""
    assert principal.tenant_id is not None
    with tenant_session(request, principal) as session:
        notices = customer_updates.portal_notices(session, principal.tenant_id)
        incidents = portal.incident_titles(session, {n.incident_id for n in notices})
        crises = portal.open_crises(session, principal.tenant_id)
        tenant = _tenant_name(session, principal)
    return _page(
        request,
        "portal_status.html",
        {"tenant": tenant, "notices": notices, "incidents": incidents, "crises": crises},
    )


# -- support cases -------------------------------------------------------------------------------


def _authors(session: CatalogSession, principal: Principal) -> dict[str, str]:
    """How the people in a case's history are named for the customer."""
    names = {f"user:{u.id}": u.display_name for u in portal.tenant_users(session)}
    names[principal.actor] = "You"
    return names


@router.get("/cases")
def cases_page(request: Request, principal: Customer) -> Response:
    """The tenant's support cases, and a form to open one."""
    with tenant_session(request, principal) as session:
        listed = cases.list_cases(session)
    return _page(request, "portal_cases.html", {"cases": listed, "form": {}, "error": ""})


@router.post("/cases")
def open_case(
    request: Request,
    principal: CustomerAction,
    subject: Annotated[str, Form(max_length=cases.MAX_SUBJECT)] = "",
    description: Annotated[str, Form(max_length=customer_updates.MAX_TEXT)] = "",
) -> Response:
    """Open a case for the tenant (never another: the tenant comes from the session)."""
    assert principal.tenant_id is not None
    try:
        with tenant_session(request, principal) as session:
            case = cases.open_case(
                session,
                tenant_id=principal.tenant_id,
                subject=subject,
                text=description,
                actor=principal.actor,
                contact_email=principal.email,
                via="portal",
            )
            case_id = case.id
    except ValidationError as exc:
        with tenant_session(request, principal) as session:
            listed = cases.list_cases(session)
        form = {"subject": subject, "description": description}
        context = {"cases": listed, "form": form, "error": str(exc)}
        return _page(request, "portal_cases.html", context, status=400)
    return RedirectResponse(f"/portal/cases/{case_id}", status_code=303)


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: int, principal: Customer) -> Response:
    """One case: its state and the history the customer may see."""
    with tenant_session(request, principal) as session:
        case = cases.get_case(session, case_id)
        entries = cases.history(session, case_id, customer_view=True)
        authors = _authors(session, principal)
        return _page(
            request,
            "portal_case.html",
            {
                "case": case,
                "entries": entries,
                "authors": authors,
                "finished": case.state in cases.FINISHED,
            },
        )


@router.post("/cases/{case_id}/reply")
def reply(
    request: Request,
    case_id: int,
    principal: CustomerAction,
    text: Annotated[str, Form(max_length=customer_updates.MAX_TEXT)] = "",
) -> Response:
    """Add the customer's message to the case."""
    with tenant_session(request, principal) as session:
        cases.add_note(session, case_id, principal.actor, text, from_customer=True)
    return RedirectResponse(f"/portal/cases/{case_id}#latest", status_code=303)


# -- people --------------------------------------------------------------------------------------


def _users_page(
    request: Request,
    principal: Principal,
    *,
    created: tuple[str, str] | None = None,
    error: str = "",
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    with tenant_session(request, principal) as session:
        users = portal.tenant_users(session)
        tenant = _tenant_name(session, principal)
    return _page(
        request,
        "portal_users.html",
        {
            "tenant": tenant,
            "users": users,
            "created": created,
            "error": error,
            "form": form or {},
            "roles": CUSTOMER_ROLE_CHOICES,
        },
        status=status_code,
    )


@router.get("/users")
def users_page(request: Request, principal: Customer) -> Response:
    """The tenant's people and a form to add one (administrators only)."""
    require_admin(principal)
    return _users_page(request, principal)


@router.post("/users")
def add_user(
    request: Request,
    principal: CustomerAction,
    email: Annotated[str, Form(max_length=320)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=40)] = Role.CUSTOMER_VIEWER.value,
) -> Response:
    """Add a viewer or an administrator with a one-time password shown on this answer only."""
    require_admin(principal)
    form = {"email": email, "display_name": display_name, "role": role}
    try:
        chosen = Role(role)
        if chosen not in CUSTOMER_ROLE_CHOICES:
            raise ValueError(role)
    except ValueError:
        return _users_page(
            request, principal, error=f"unknown role {role!r}", form=form, status_code=400
        )
    password = portal.one_time_password()
    try:
        with tenant_session(request, principal) as session:
            user = create_user(
                session,
                email=email,
                display_name=display_name or email,
                role=chosen,
                password=password,
                actor=principal.actor,
                tenant_id=principal.tenant_id,
            )
            created = (user.email, password)
    except (ValidationError, UserExistsError) as exc:
        return _users_page(request, principal, error=str(exc), form=form, status_code=400)
    except IntegrityError:
        # Another tenant's (or the service's) account, invisible to this tenant's session.
        message = f"an account for {email.strip().lower()} already exists"
        return _users_page(request, principal, error=message, form=form, status_code=409)
    return _users_page(request, principal, created=created, status_code=201)
