"""Console pages for what runs and who is protected: operations in progress, the fleet, diagnostics.

``/console/operations`` lists every running backup and restore of every
tenant with its progress; ``/console/operations/stream`` (Server-Sent
Events) sends the rows again, rendered here, whenever any of them changed,
so the bars move without a reload and the browser never builds markup
from job text. ``/console/fleet`` counts each tenant's agents by protection
state and drills down to a tenant and to an agent, where an operator runs
diagnostics (`vaultwatch.soc.diagnostics`), optionally keeping the report
in an alarm's journal.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response, StreamingResponse

from vaultwatch.catalog import Catalog, audit
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import JobKind
from vaultwatch.catalog.soc_models import Alarm, Severity
from vaultwatch.soc import fleet, status
from vaultwatch.soc.alarms import get_alarm
from vaultwatch.soc.api.auth import catalog_of, scoped_session
from vaultwatch.soc.apikeys import Principal
from vaultwatch.soc.diagnostics import Report, diagnose
from vaultwatch.soc.status import JobInfo, ProtectionState
from vaultwatch.web.render import ENV, PAGE_HEADERS, render, render_text
from vaultwatch.web.sessions import Staff, StaffAction
from vaultwatch.web.sse import poll_events, sse

router = APIRouter(prefix="/console", include_in_schema=False)
log = logging.getLogger("vaultwatch.web")

POLL_SECONDS = 0.5
#: The operations page shows the jobs that move customers' data.
OPERATION_KINDS = frozenset({JobKind.BACKUP.value, JobKind.RESTORE.value})
MAX_JOBS = status.MAX_PAGE
STATE_LABELS = {
    ProtectionState.PROTECTED.value: "Protected",
    ProtectionState.AT_RISK.value: "At risk",
    ProtectionState.UNPROTECTED.value: "Unprotected",
    ProtectionState.NOT_CONFIGURED.value: "Not configured",
    ProtectionState.PAUSED.value: "Paused",
    ProtectionState.MAINTENANCE.value: "Maintenance",
}


def duration(seconds: float | int | None) -> str:
    """A short human duration: ``1 h 05 m``, ``4 m 10 s``, ``12 s``."""
    if seconds is None:
        return "—"
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24} d {hours % 24:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} m"
    if minutes:
        return f"{minutes} m {secs:02d} s"
    return f"{secs} s"


ENV.filters["duration"] = duration
ENV.globals["state_labels"] = STATE_LABELS


# -- operations --------------------------------------------------------------------------------


def running_operations(catalog: Catalog, principal: Principal) -> list[JobInfo]:
    """Every running backup and restore the principal may see, stalled ones first."""
    with scoped_session(catalog, principal) as session:
        jobs = status.list_jobs(session, running=True, limit=MAX_JOBS)
    wanted = [j for j in jobs if j.kind in OPERATION_KINDS]
    return sorted(wanted, key=lambda j: (not j.stalled, j.hostname.lower(), str(j.id)))


def job_row(job: JobInfo) -> str:
    """One job's row, as the page and the stream show it."""
    return render_text("console_ops_row.html", {"job": job})


@router.get("/operations")
def operations_page(request: Request, principal: Staff) -> Response:
    """Every running backup and restore across tenants, live."""
    jobs = running_operations(catalog_of(request), principal)
    return render(
        request,
        "console_ops.html",
        {
            "rows": [job_row(j) for j in jobs],
            "count": len(jobs),
            "stalled": sum(1 for j in jobs if j.stalled),
        },
    )


@dataclass
class _OperationsStream:
    catalog: Catalog
    principal: Principal
    digest: str = ""

    def poll(self) -> str | None:
        """The rows as an SSE event when anything changed since the last poll."""
        jobs = running_operations(self.catalog, self.principal)
        rows = [{"id": str(j.id), "html": job_row(j)} for j in jobs]
        digest = hashlib.blake2b(
            "\x00".join(r["html"] for r in rows).encode(), digest_size=16
        ).hexdigest()
        if digest == self.digest:
            return None
        self.digest = digest
        stalled = sum(1 for j in jobs if j.stalled)
        return sse("jobs", {"rows": rows, "count": len(rows), "stalled": stalled})

    def events(self, request: Request) -> AsyncIterator[str]:
        """The live stream of this page."""
        return poll_events(request, self.poll, what="operations", poll_seconds=POLL_SECONDS)


@router.get("/operations/stream")
def operations_stream(request: Request, principal: Staff) -> Response:
    """Server-Sent Events: the running jobs' rows whenever one of them moved."""
    headers = {**PAGE_HEADERS, "X-Accel-Buffering": "no"}
    live = _OperationsStream(catalog_of(request), principal)
    return StreamingResponse(live.events(request), media_type="text/event-stream", headers=headers)


# -- fleet -------------------------------------------------------------------------------------


@router.get("/fleet")
def fleet_page(request: Request, principal: Staff) -> Response:
    """Every tenant with its agents counted by protection state."""
    with scoped_session(catalog_of(request), principal) as session:
        summary = status.fleet_summary(session)
    return render(
        request, "console_fleet.html", {"summary": summary, "states": list(ProtectionState)}
    )


@router.get("/tenants/{tenant_id}")
def tenant_page(request: Request, tenant_id: uuid.UUID, principal: Staff) -> Response:
    """One tenant: its agents with state and reason, open alarms, incidents."""
    with scoped_session(catalog_of(request), principal) as session:
        view = fleet.tenant_view(session, tenant_id)
        return render(
            request,
            "console_fleet_tenant.html",
            {"view": view, "states": list(ProtectionState), "Severity": Severity},
        )


def _agent_context(request: Request, principal: Principal, agent_id: uuid.UUID) -> dict[str, Any]:
    with scoped_session(catalog_of(request), principal) as session:
        view = fleet.agent_view(session, agent_id)
    return {"view": view, "agent": view.status, "Severity": Severity}


@router.get("/agents/{agent_id}")
def agent_page(request: Request, agent_id: uuid.UUID, principal: Staff) -> Response:
    """One agent: facts, sets with their last snapshots, jobs, alarms, and diagnostics."""
    return render(request, "console_fleet_agent.html", _agent_context(request, principal, agent_id))


# -- diagnostics -------------------------------------------------------------------------------


def _run(
    request: Request, principal: Principal, kind: str, name: str, alarm_id: int | None
) -> Report:
    """Run diagnostics as the principal and put the run in the audit log."""
    catalog = catalog_of(request)
    report = diagnose(
        catalog,
        request.app.state.settings,
        kind,
        name,
        alarm_id=alarm_id,
        actor=principal.actor,
    )
    with catalog.session() as session:
        audit.record(
            session,
            principal.actor,
            "diagnostics.run",
            None,
            target=f"{kind}:{name}",
            details={"status": report.status, "alarm_id": alarm_id},
        )
    return report


def alarm_target(alarm: Alarm) -> tuple[str, str]:
    """What to diagnose for an alarm: its agent, else the gateway or node its entity names."""
    if alarm.agent_id is not None:
        return "agent", str(alarm.agent_id)
    kind, _, name = alarm.entity.partition(":")
    if kind == "agent" and name:
        return "agent", name
    if kind in ("gateway", "node") and name:
        return kind, name
    return "node", alarm.node


def _optional_alarm(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise ValidationError(f"alarm must be an alarm number, not {text!r}")
    return int(text)


@router.post("/agents/{agent_id}/diagnose")
def diagnose_agent(
    request: Request,
    agent_id: uuid.UUID,
    principal: StaffAction,
    alarm: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Run the agent's diagnostics; with an alarm chosen, the report joins its journal."""
    context = _agent_context(request, principal, agent_id)
    alarm_id = _optional_alarm(alarm)
    report = _run(request, principal, "agent", str(agent_id), alarm_id)
    return render(
        request,
        "console_fleet_diagnostics.html",
        {
            "report": report,
            "alarm_id": alarm_id,
            "back_url": f"/console/agents/{agent_id}",
            "back_label": context["agent"].hostname,
        },
    )


@router.post("/alarms/{alarm_id}/diagnose")
def diagnose_alarm(request: Request, alarm_id: int, principal: StaffAction) -> Response:
    """Diagnose what the alarm is about (its agent, gateway or node); the report joins its journal."""
    with scoped_session(catalog_of(request), principal) as session:
        kind, name = alarm_target(get_alarm(session, alarm_id))
    report = _run(request, principal, kind, name, alarm_id)
    return render(
        request,
        "console_fleet_diagnostics.html",
        {
            "report": report,
            "alarm_id": alarm_id,
            "back_url": f"/console/alarms/{alarm_id}",
            "back_label": f"alarm {alarm_id}",
        },
    )
