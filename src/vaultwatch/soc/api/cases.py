"""Support cases over HTTP: customers open and follow their own; staff escalate, work and resolve.

The tenant of a customer's case always comes from the key: a customer's
request naming another tenant is refused, and a customer's key never sees
another tenant's case (404).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
)
from sqlalchemy.orm import Session

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import CaseEntry, CaseState, SupportCase
from vaultwatch.soc import cases
from vaultwatch.soc.api.auth import Caller, CatalogDep, Staff, scoped_session
from vaultwatch.soc.apikeys import ForbiddenError, Principal
from vaultwatch.soc.customer_updates import MAX_TEXT

router = APIRouter(tags=["cases"])

MAX_PAGE = 500
Text = Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_TEXT)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseIn(_Strict):
    """A new case; `tenant_id` only for staff opening one on a customer's behalf."""

    subject: Annotated[StrictStr, StringConstraints(min_length=1, max_length=cases.MAX_SUBJECT)]
    text: Text
    priority: Annotated[StrictInt, Field(ge=1, le=5)] = 3
    contact_email: Annotated[StrictStr, StringConstraints(max_length=320)] | None = None
    tenant_id: uuid.UUID | None = None


class ReasonIn(_Strict):
    """Why (escalation) or how (resolution)."""

    text: Text


class CaseNoteIn(_Strict):
    """A message (customers) or note (staff; `internal` hides it from the customer)."""

    text: Text
    internal: StrictBool = False


class TicketIn(_Strict):
    """A ticket opened with an outside party."""

    party: Annotated[StrictStr, StringConstraints(min_length=1, max_length=cases.MAX_PARTY)]
    ticket: Annotated[StrictStr, StringConstraints(min_length=1, max_length=cases.MAX_TICKET)]
    waiting: StrictBool = True


class LinkIn(_Strict):
    """Alarms and an incident this case is about."""

    alarm_ids: Annotated[list[StrictInt], Field(max_length=cases.MAX_LINKED_ALARMS)] = Field(
        default_factory=list
    )
    incident_id: StrictInt | None = None


class CaseEntryOut(BaseModel):
    """One entry of a case's history."""

    id: int
    at: datetime
    actor: str
    kind: str
    text: str
    visible_to_customer: bool

    @classmethod
    def of(cls, entry: CaseEntry) -> CaseEntryOut:
        """From the row."""
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            kind=entry.kind,
            text=entry.text,
            visible_to_customer=entry.visible_to_customer,
        )


class CaseOut(BaseModel):
    """A support case, with its history when asked for one case."""

    id: int
    tenant_id: uuid.UUID
    subject: str
    state: CaseState
    priority: int
    owner_team: str
    owner: str | None
    opened_by: str
    opened_via: str
    contact_email: str | None
    opened_at: datetime
    escalated_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    alarm_ids: list[int]
    incident_id: int | None
    external_tickets: list[dict[str, str]]
    next_update_at: datetime | None
    history: list[CaseEntryOut] | None = None

    @classmethod
    def of(cls, case: SupportCase, history: list[CaseEntry] | None = None) -> CaseOut:
        """From the row (and its history)."""
        return cls(
            id=case.id,
            tenant_id=case.tenant_id,
            subject=case.subject,
            state=case.state,
            priority=case.priority,
            owner_team=case.owner_team,
            owner=case.owner,
            opened_by=case.opened_by,
            opened_via=case.opened_via,
            contact_email=case.contact_email,
            opened_at=case.opened_at,
            escalated_at=case.escalated_at,
            resolved_at=case.resolved_at,
            closed_at=case.closed_at,
            alarm_ids=[int(a) for a in case.alarm_ids],
            incident_id=case.incident_id,
            external_tickets=[{k: str(v) for k, v in t.items()} for t in case.external_tickets],
            next_update_at=case.next_update_at,
            history=[CaseEntryOut.of(e) for e in history] if history is not None else None,
        )


class CasePage(BaseModel):
    """One page of cases, newest first."""

    items: list[CaseOut]
    limit: int
    offset: int


def _tenant_for_new_case(principal: Principal, asked: uuid.UUID | None) -> uuid.UUID:
    if principal.is_staff:
        if asked is None:
            raise ValidationError("staff opening a case must name the customer's tenant_id")
        return asked
    if principal.tenant_id is None:
        raise ForbiddenError("this key belongs to no tenant")
    if asked is not None and asked != principal.tenant_id:
        raise ForbiddenError("a customer's key opens cases for its own tenant only")
    return principal.tenant_id


def _detail(session: Session, principal: Principal, case: SupportCase) -> CaseOut:
    history = cases.history(session, case.id, customer_view=not principal.is_staff)
    return CaseOut.of(case, history)


@router.post("/cases", response_model=CaseOut, status_code=201, summary="Open a support case")
def open_case(body: CaseIn, principal: Caller, catalog: CatalogDep) -> CaseOut:
    """A customer opens a case for its own tenant (staff: on a customer's behalf)."""
    tenant = _tenant_for_new_case(principal, body.tenant_id)
    with scoped_session(catalog, principal) as session:
        case = cases.open_case(
            session,
            tenant_id=tenant,
            subject=body.subject,
            text=body.text,
            actor=principal.actor,
            contact_email=body.contact_email or (None if principal.is_staff else principal.email),
            priority=body.priority,
            via="api",
        )
        return _detail(session, principal, case)


@router.get("/cases", response_model=CasePage, summary="Support cases, newest first")
def list_cases(
    principal: Caller,
    catalog: CatalogDep,
    state: CaseState | None = None,
    owner_team: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CasePage:
    """Every case for staff; a customer sees its own tenant's."""
    with scoped_session(catalog, principal) as session:
        rows = cases.list_cases(
            session, state=state, owner_team=owner_team, limit=limit, offset=offset
        )
        return CasePage(items=[CaseOut.of(c) for c in rows], limit=limit, offset=offset)


@router.get("/cases/{case_id}", response_model=CaseOut, summary="One case and its history")
def get_case(case_id: int, principal: Caller, catalog: CatalogDep) -> CaseOut:
    """The case with its history (internal notes only for staff); 404 for other tenants' cases."""
    with scoped_session(catalog, principal) as session:
        return _detail(session, principal, cases.get_case(session, case_id))


@router.post("/cases/{case_id}/escalate", response_model=CaseOut, summary="Escalate to the SOC")
def escalate(case_id: int, body: ReasonIn, principal: Staff, catalog: CatalogDep) -> CaseOut:
    """Customer service hands the case to the operations center, which owns it from now on."""
    with scoped_session(catalog, principal) as session:
        case = cases.escalate(session, case_id, principal.actor, body.text)
        return _detail(session, principal, case)


@router.post(
    "/cases/{case_id}/notes", response_model=CaseEntryOut, status_code=201, summary="Add to it"
)
def add_note(
    case_id: int, body: CaseNoteIn, principal: Caller, catalog: CatalogDep
) -> CaseEntryOut:
    """A customer's message, or a staff note (internal notes are hidden from the customer)."""
    with scoped_session(catalog, principal) as session:
        entry = cases.add_note(
            session,
            case_id,
            principal.actor,
            body.text,
            internal=body.internal,
            from_customer=not principal.is_staff,
        )
        session.flush()
        return CaseEntryOut.of(entry)


@router.post(
    "/cases/{case_id}/external-tickets", response_model=CaseOut, summary="Record an outside ticket"
)
def add_ticket(case_id: int, body: TicketIn, principal: Staff, catalog: CatalogDep) -> CaseOut:
    """A carrier's or vendor's ticket number for work on this case."""
    with scoped_session(catalog, principal) as session:
        case = cases.add_external_ticket(
            session,
            case_id,
            principal.actor,
            party=body.party,
            ticket=body.ticket,
            waiting=body.waiting,
        )
        return _detail(session, principal, case)


@router.post(
    "/cases/{case_id}/links", response_model=CaseOut, summary="Link alarms and an incident"
)
def link(case_id: int, body: LinkIn, principal: Staff, catalog: CatalogDep) -> CaseOut:
    """Alarms and an incident the case is about (they must exist)."""
    with scoped_session(catalog, principal) as session:
        case = cases.link(
            session,
            case_id,
            principal.actor,
            alarm_ids=body.alarm_ids,
            incident_id=body.incident_id,
        )
        return _detail(session, principal, case)


@router.post(
    "/cases/{case_id}/updates",
    response_model=CaseEntryOut,
    status_code=201,
    summary="Send the customer a status update",
)
def send_update(
    case_id: int, body: ReasonIn, principal: Staff, catalog: CatalogDep
) -> CaseEntryOut:
    """Tell the customer where the case stands; the next regular update is due an interval later."""
    with scoped_session(catalog, principal) as session:
        entry = cases.send_update(session, case_id, principal.actor, body.text)
        session.flush()
        return CaseEntryOut.of(entry)


@router.post("/cases/{case_id}/resolve", response_model=CaseOut, summary="Resolve")
def resolve(case_id: int, body: ReasonIn, principal: Staff, catalog: CatalogDep) -> CaseOut:
    """The problem is solved; the customer is told and regular updates stop."""
    with scoped_session(catalog, principal) as session:
        case = cases.resolve(session, case_id, principal.actor, body.text)
        return _detail(session, principal, case)


@router.post("/cases/{case_id}/close", response_model=CaseOut, summary="Close")
def close(case_id: int, principal: Caller, catalog: CatalogDep) -> CaseOut:
    """Close the case (a customer may withdraw its own)."""
    with scoped_session(catalog, principal) as session:
        case = cases.close(session, case_id, principal.actor)
        return _detail(session, principal, case)
