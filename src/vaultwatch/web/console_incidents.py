"""Console pages for incidents and support cases, and the staff's actions on them.

Each action is a form POST behind the session's CSRF token that calls the
domain function (`vaultwatch.soc.incidents`, `.customer_updates`, `.cases`,
`.case_desk`), which keeps the incident's timeline or the case's history;
the same transaction records the action in the audit log. After an action
the browser goes back to the page it acted on.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from vaultwatch.catalog import audit
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import CaseState, IncidentState, Severity
from vaultwatch.soc import case_desk, cases, customer_updates, incidents
from vaultwatch.soc.api.auth import catalog_of, scoped_session
from vaultwatch.soc.apikeys import Principal
from vaultwatch.soc.customer_updates import MAX_TEXT
from vaultwatch.soc.incident_board import incident_view, list_incident_rows
from vaultwatch.web.render import render
from vaultwatch.web.sessions import Staff, StaffAction

router = APIRouter(prefix="/console", include_in_schema=False)

Text = Annotated[str, Form(max_length=MAX_TEXT)]
Short = Annotated[str, Form(max_length=300)]
TEAMS = {cases.SOC_TEAM: "Operations center", cases.SERVICE_TEAM: "Customer service"}


def _audit(
    session: Session, principal: Principal, action: str, target: str, **details: object
) -> None:
    audit.record(session, principal.actor, action, None, target=target, details=details)


def _back(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


def _state(text: str, enum: type[IncidentState] | type[CaseState], what: str) -> object:
    if not text.strip():
        return None
    try:
        return enum(text.strip())
    except ValueError:
        choices = ", ".join(s.value for s in enum)
        raise ValidationError(f"{what} {text!r} is not known: use one of {choices}") from None


# -- incidents ---------------------------------------------------------------------------------


@router.get("/incidents")
def incidents_page(
    request: Request, principal: Staff, state: Annotated[str, Query(max_length=30)] = ""
) -> Response:
    """Incidents newest first: state, severity, crisis, tenants affected, who acknowledged."""
    chosen = _state(state, IncidentState, "state")
    with scoped_session(catalog_of(request), principal) as session:
        rows = list_incident_rows(session, state=chosen)  # type: ignore[arg-type]
        return render(
            request,
            "console_incidents.html",
            {"rows": rows, "Severity": Severity, "states": list(IncidentState), "chosen": chosen},
        )


@router.get("/incidents/{incident_id}")
def incident_page(request: Request, incident_id: int, principal: Staff) -> Response:
    """One incident: escalation timeline, customer updates and drafts, alarms gathered."""
    with scoped_session(catalog_of(request), principal) as session:
        view = incident_view(session, incident_id)
        return render(
            request,
            "console_incident.html",
            {
                "view": view,
                "incident": view.incident,
                "Severity": Severity,
                "States": IncidentState,
            },
        )


@router.post("/incidents/{incident_id}/ack")
def incident_ack(
    request: Request, incident_id: int, principal: StaffAction, note: Text = ""
) -> Response:
    """Acknowledge: paging stops until the acknowledgement runs out."""
    with scoped_session(catalog_of(request), principal) as session:
        incidents.acknowledge(session, incident_id, principal.actor, note=note)
        _audit(session, principal, "incident.acknowledge", f"incident:{incident_id}")
    return _back(f"/console/incidents/{incident_id}")


@router.post("/incidents/{incident_id}/resolve")
def incident_resolve(
    request: Request, incident_id: int, principal: StaffAction, note: Text = ""
) -> Response:
    """Resolve: everyone paged is told; the customers' resolution notice is drafted."""
    with scoped_session(catalog_of(request), principal) as session:
        incidents.resolve(session, incident_id, principal.actor, note=note)
        _audit(session, principal, "incident.resolve", f"incident:{incident_id}")
    return _back(f"/console/incidents/{incident_id}")


@router.post("/incidents/{incident_id}/updates/{update_id}/publish")
def publish(
    request: Request, incident_id: int, update_id: int, principal: StaffAction, text: Text = ""
) -> Response:
    """Approve a draft (with the text as edited) and send it to the affected customers."""
    hooks = customer_updates.customer_webhooks(request.app.state.settings.extra)
    with scoped_session(catalog_of(request), principal) as session:
        batch = customer_updates.publish_update(
            session,
            update_id,
            actor=principal.actor,
            incident_id=incident_id,
            text=text if text.strip() else None,
            webhooks=hooks,
        )
        _audit(
            session,
            principal,
            "incident.customer_update.publish",
            f"incident:{incident_id}",
            update_ids=[row.id for row in batch],
        )
    return _back(f"/console/incidents/{incident_id}")


# -- cases -------------------------------------------------------------------------------------


@router.get("/cases")
def cases_page(
    request: Request,
    principal: Staff,
    state: Annotated[str, Query(max_length=30)] = "",
    team: Annotated[str, Query(max_length=30)] = "",
) -> Response:
    """The case queue: owners, state, priority, outside-party tickets."""
    chosen = _state(state, CaseState, "state")
    if team and team not in TEAMS:
        raise ValidationError(f"team must be one of {', '.join(TEAMS)}")
    with scoped_session(catalog_of(request), principal) as session:
        rows, names = case_desk.case_queue(
            session,
            state=chosen,  # type: ignore[arg-type]
            owner_team=team or None,
        )
        return render(
            request,
            "console_cases.html",
            {
                "rows": rows,
                "names": names,
                "states": list(CaseState),
                "chosen": chosen,
                "team": team,
                "teams": TEAMS,
            },
        )


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: int, principal: Staff) -> Response:
    """One case with its whole history and the staff's actions."""
    with scoped_session(catalog_of(request), principal) as session:
        view = case_desk.case_view(session, case_id)
        return render(
            request,
            "console_case.html",
            {
                "view": view,
                "case": view.case,
                "teams": TEAMS,
                "finished": view.case.state in cases.FINISHED,
                "soc_team": cases.SOC_TEAM,
            },
        )


def _case_done(case_id: int) -> Response:
    return _back(f"/console/cases/{case_id}")


@router.post("/cases/{case_id}/escalate")
def case_escalate(
    request: Request, case_id: int, principal: StaffAction, reason: Text = ""
) -> Response:
    """Hand the case to the operations center."""
    with scoped_session(catalog_of(request), principal) as session:
        cases.escalate(session, case_id, principal.actor, reason)
        _audit(session, principal, "case.escalate", f"case:{case_id}")
    return _case_done(case_id)


@router.post("/cases/{case_id}/assign")
def case_assign(
    request: Request, case_id: int, principal: StaffAction, owner: Short = ""
) -> Response:
    """Give the case an owner (empty takes it back)."""
    with scoped_session(catalog_of(request), principal) as session:
        cases.assign_owner(session, case_id, principal.actor, owner)
        _audit(session, principal, "case.assign", f"case:{case_id}", owner=owner.strip() or None)
    return _case_done(case_id)


@router.post("/cases/{case_id}/note")
def case_note(
    request: Request,
    case_id: int,
    principal: StaffAction,
    text: Text = "",
    audience: Annotated[str, Form(max_length=20)] = "internal",
) -> Response:
    """An internal note, or a reply the customer sees and is emailed."""
    if audience not in ("internal", "customer"):
        raise ValidationError("a note is for the team (internal) or a reply to the customer")
    with scoped_session(catalog_of(request), principal) as session:
        if audience == "internal":
            cases.add_note(session, case_id, principal.actor, text, internal=True)
        else:
            cases.send_update(session, case_id, principal.actor, text)
        _audit(
            session,
            principal,
            f"case.{'note' if audience == 'internal' else 'reply'}",
            f"case:{case_id}",
        )
    return _case_done(case_id)


@router.post("/cases/{case_id}/ticket")
def case_ticket(
    request: Request,
    case_id: int,
    principal: StaffAction,
    party: Short = "",
    ticket: Short = "",
) -> Response:
    """Record a ticket opened with a carrier or vendor; the case now waits on them."""
    with scoped_session(catalog_of(request), principal) as session:
        cases.add_external_ticket(session, case_id, principal.actor, party=party, ticket=ticket)
        _audit(
            session,
            principal,
            "case.external_ticket",
            f"case:{case_id}",
            party=party.strip(),
            ticket=ticket.strip(),
        )
    return _case_done(case_id)


@router.post("/cases/{case_id}/resolve")
def case_resolve(
    request: Request, case_id: int, principal: StaffAction, resolution: Text = ""
) -> Response:
    """The problem is solved: the customer is told."""
    with scoped_session(catalog_of(request), principal) as session:
        cases.resolve(session, case_id, principal.actor, resolution)
        _audit(session, principal, "case.resolve", f"case:{case_id}")
    return _case_done(case_id)


@router.post("/cases/{case_id}/close")
def case_close(request: Request, case_id: int, principal: StaffAction) -> Response:
    """Close the case for good."""
    with scoped_session(catalog_of(request), principal) as session:
        cases.close(session, case_id, principal.actor)
        _audit(session, principal, "case.close", f"case:{case_id}")
    return _case_done(case_id)
