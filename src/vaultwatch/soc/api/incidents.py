"""Incidents, escalation policies and customer updates over HTTP: parse, authorize, call the domain.

Customers' keys see the incidents that affect their tenant and the updates
published to it; everything else needs an operations center role.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints
from sqlalchemy.orm import Session

from vaultwatch.catalog import Role
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import (
    CustomerUpdate,
    CustomerUpdateKind,
    CustomerUpdateState,
    EscalationPolicy,
    Incident,
    IncidentEvent,
    IncidentState,
    Severity,
)
from vaultwatch.soc import customer_updates, escalation, incidents
from vaultwatch.soc.api.auth import Caller, CatalogDep, Staff, scoped_session
from vaultwatch.soc.api.schemas import SeverityName
from vaultwatch.soc.apikeys import Principal

router = APIRouter(tags=["incidents"])

MAX_PAGE = 500
Title = Annotated[StrictStr, StringConstraints(min_length=1, max_length=incidents.MAX_TITLE)]
Note = Annotated[StrictStr, StringConstraints(max_length=2000)]
UpdateText = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=customer_updates.MAX_TEXT)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentIn(_Strict):
    """Open an incident by hand: for an alarm (its tenants follow) or for named tenants."""

    title: Title | None = None
    severity: SeverityName | None = None
    alarm_id: StrictInt | None = None
    tenant_ids: Annotated[list[uuid.UUID], Field(max_length=10000)] = Field(default_factory=list)
    policy: Annotated[StrictStr, StringConstraints(min_length=1, max_length=200)] | None = None


class NoteIn(_Strict):
    """An optional comment on an acknowledgement or resolution."""

    note: Note = ""


class IncidentOut(BaseModel):
    """An incident as the API shows it (customers see only their own tenant among `tenant_ids`)."""

    id: int
    title: str
    severity: SeverityName
    state: IncidentState
    crisis: bool
    root_alarm_id: int | None
    policy_id: int | None
    escalation_level: int
    escalation_round: int
    next_escalation_at: datetime | None
    created_at: datetime
    created_by: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_expires_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    tenant_ids: list[uuid.UUID]

    @classmethod
    def of(cls, incident: Incident, tenant_ids: list[uuid.UUID]) -> IncidentOut:
        """From the row and its (visible) tenants."""
        return cls(
            id=incident.id,
            title=incident.title,
            severity=Severity(incident.severity).label,  # type: ignore[arg-type]
            state=incident.state,
            crisis=incident.crisis,
            root_alarm_id=incident.root_alarm_id,
            policy_id=incident.policy_id,
            escalation_level=incident.escalation_level,
            escalation_round=incident.escalation_round,
            next_escalation_at=incident.next_escalation_at,
            created_at=incident.created_at,
            created_by=incident.created_by,
            acknowledged_at=incident.acknowledged_at,
            acknowledged_by=incident.acknowledged_by,
            ack_expires_at=incident.ack_expires_at,
            resolved_at=incident.resolved_at,
            resolved_by=incident.resolved_by,
            tenant_ids=tenant_ids,
        )


class IncidentPage(BaseModel):
    """One page of incidents, newest first."""

    items: list[IncidentOut]
    limit: int
    offset: int


class TimelineEntryOut(BaseModel):
    """One step of an incident: who was paged, how and when; acks; escalations."""

    id: int
    at: datetime
    kind: str
    actor: str
    text: str
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: IncidentEvent) -> TimelineEntryOut:
        """From the row."""
        return cls(
            id=entry.id,
            at=entry.at,
            kind=entry.kind,
            actor=entry.actor,
            text=entry.text,
            details=dict(entry.details),
        )


class UpdateDraftIn(_Strict):
    """A customer update to draft (all affected tenants unless named; always all in a crisis)."""

    text: UpdateText
    kind: CustomerUpdateKind = CustomerUpdateKind.UPDATE
    tenant_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=10000)] | None = None


class PublishIn(_Strict):
    """Approve a draft, optionally with corrected text."""

    text: UpdateText | None = None


class CustomerUpdateOut(BaseModel):
    """A customer update."""

    id: int
    incident_id: int
    tenant_id: uuid.UUID
    kind: CustomerUpdateKind
    state: CustomerUpdateState
    text: str
    created_at: datetime
    created_by: str
    published_at: datetime | None
    published_by: str | None

    @classmethod
    def of(cls, row: CustomerUpdate) -> CustomerUpdateOut:
        """From the row."""
        return cls(
            id=row.id,
            incident_id=row.incident_id,
            tenant_id=row.tenant_id,
            kind=row.kind,
            state=row.state,
            text=row.text,
            created_at=row.created_at,
            created_by=row.created_by,
            published_at=row.published_at,
            published_by=row.published_by,
        )


class PolicyIn(_Strict):
    """An escalation policy; `levels` is checked by the domain (targets, timeouts)."""

    name: Annotated[StrictStr, StringConstraints(min_length=1, max_length=200)]
    levels: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=escalation.MAX_LEVELS)]
    repeat: Annotated[StrictInt, Field(ge=0, le=escalation.MAX_REPEAT)] = 0
    ack_timeout_seconds: StrictInt = escalation.DEFAULT_ACK_TIMEOUT
    customer_update_interval_seconds: StrictInt = escalation.DEFAULT_UPDATE_INTERVAL


class PolicyOut(BaseModel):
    """An escalation policy."""

    id: int
    name: str
    levels: list[dict[str, Any]]
    repeat: int
    ack_timeout_seconds: int
    customer_update_interval_seconds: int

    @classmethod
    def of(cls, policy: EscalationPolicy) -> PolicyOut:
        """From the row."""
        return cls(
            id=policy.id,
            name=policy.name,
            levels=list(policy.levels),
            repeat=policy.repeat,
            ack_timeout_seconds=policy.ack_timeout_seconds,
            customer_update_interval_seconds=policy.customer_update_interval_seconds,
        )


def _viewer(principal: Principal) -> uuid.UUID | None:
    """The tenant a customer's key is confined to; None for staff."""
    return None if principal.is_staff else principal.tenant_id


def _rules(request: Request) -> incidents.IncidentRules:
    settings = getattr(request.app.state, "settings", None)
    return (
        incidents.incident_rules(settings.extra)
        if settings is not None
        else incidents.DEFAULT_RULES
    )


def _out(session: Session, incident: Incident) -> IncidentOut:
    return IncidentOut.of(incident, incidents.tenants_of(session, incident.id))


@router.get("/incidents", response_model=IncidentPage, summary="Incidents, newest first")
def list_incidents(
    principal: Caller,
    catalog: CatalogDep,
    state: IncidentState | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> IncidentPage:
    """Every incident for staff; a customer sees those affecting its tenant."""
    with scoped_session(catalog, principal) as session:
        rows = incidents.list_incidents(
            session, state=state, tenant_id=_viewer(principal), limit=limit, offset=offset
        )
        return IncidentPage(items=[_out(session, i) for i in rows], limit=limit, offset=offset)


@router.post("/incidents", response_model=IncidentOut, status_code=201, summary="Open an incident")
def create_incident(
    body: IncidentIn, principal: Staff, catalog: CatalogDep, request: Request
) -> IncidentOut:
    """An operator's choice: for an alarm (`alarm_id`), or with a title and tenants."""
    rules = _rules(request)
    with scoped_session(catalog, principal) as session:
        if body.alarm_id is not None:
            if body.tenant_ids:
                raise ValidationError(
                    "give alarm_id or tenant_ids, not both: an alarm's tenants follow from it"
                )
            incident = incidents.open_incident_for_alarm(
                session,
                body.alarm_id,
                actor=principal.actor,
                title=body.title,
                severity=body.severity,
                policy=body.policy,
                rules=rules,
            )
        else:
            if body.title is None or body.severity is None:
                raise ValidationError("an incident without alarm_id needs title and severity")
            incident = incidents.open_incident(
                session,
                title=body.title,
                severity=body.severity,
                actor=principal.actor,
                tenant_ids=body.tenant_ids,
                policy=body.policy,
                rules=rules,
            )
        return _out(session, incident)


@router.get("/incidents/{incident_id}", response_model=IncidentOut, summary="One incident")
def get_incident(incident_id: int, principal: Caller, catalog: CatalogDep) -> IncidentOut:
    """One incident (404 when unknown or not affecting the customer's tenant)."""
    with scoped_session(catalog, principal) as session:
        return _out(session, incidents.visible_incident(session, incident_id, _viewer(principal)))


@router.post("/incidents/{incident_id}/ack", response_model=IncidentOut, summary="Acknowledge")
def acknowledge(
    incident_id: int, principal: Staff, catalog: CatalogDep, body: NoteIn | None = None
) -> IncidentOut:
    """Own the incident: paging stops until the acknowledgement expires."""
    with scoped_session(catalog, principal) as session:
        note = body.note if body is not None else ""
        return _out(
            session, incidents.acknowledge(session, incident_id, principal.actor, note=note)
        )


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentOut, summary="Resolve")
def resolve(
    incident_id: int, principal: Staff, catalog: CatalogDep, body: NoteIn | None = None
) -> IncidentOut:
    """The incident is over: everyone paged is told; a resolution notice is drafted."""
    with scoped_session(catalog, principal) as session:
        note = body.note if body is not None else ""
        return _out(session, incidents.resolve(session, incident_id, principal.actor, note=note))


@router.get(
    "/incidents/{incident_id}/timeline",
    response_model=list[TimelineEntryOut],
    summary="Its timeline",
)
def get_timeline(incident_id: int, principal: Staff, catalog: CatalogDep) -> list[TimelineEntryOut]:
    """Every step, oldest first: who was paged, how and when; acks, escalations, updates."""
    with scoped_session(catalog, principal) as session:
        incidents.get_incident(session, incident_id)
        return [TimelineEntryOut.of(e) for e in incidents.timeline(session, incident_id)]


@router.get(
    "/incidents/{incident_id}/updates",
    response_model=list[CustomerUpdateOut],
    summary="Its customer updates",
)
def list_updates(
    incident_id: int, principal: Caller, catalog: CatalogDep
) -> list[CustomerUpdateOut]:
    """Drafts and published updates for staff; a customer sees what was published to it."""
    with scoped_session(catalog, principal) as session:
        incidents.visible_incident(session, incident_id, _viewer(principal))
        rows = customer_updates.updates_of(
            session, incident_id, published_only=not principal.is_staff
        )
        return [CustomerUpdateOut.of(r) for r in rows]


@router.post(
    "/incidents/{incident_id}/updates",
    response_model=list[CustomerUpdateOut],
    status_code=201,
    summary="Draft a customer update",
)
def draft_update(
    incident_id: int, body: UpdateDraftIn, principal: Staff, catalog: CatalogDep
) -> list[CustomerUpdateOut]:
    """One draft row per tenant; nothing is sent until it is published."""
    with scoped_session(catalog, principal) as session:
        rows = customer_updates.draft_update(
            session,
            incident_id,
            text=body.text,
            actor=principal.actor,
            kind=body.kind,
            tenant_ids=body.tenant_ids,
        )
        return [CustomerUpdateOut.of(r) for r in rows]


@router.post(
    "/incidents/{incident_id}/updates/{update_id}/publish",
    response_model=list[CustomerUpdateOut],
    summary="Approve and send a customer update",
)
def publish_update(
    incident_id: int,
    update_id: int,
    principal: Staff,
    catalog: CatalogDep,
    request: Request,
    body: PublishIn | None = None,
) -> list[CustomerUpdateOut]:
    """Publish the draft (in a crisis: its whole batch); email, webhook and portal follow."""
    settings = getattr(request.app.state, "settings", None)
    hooks = customer_updates.customer_webhooks(settings.extra) if settings is not None else {}
    with scoped_session(catalog, principal) as session:
        rows = customer_updates.publish_update(
            session,
            update_id,
            actor=principal.actor,
            incident_id=incident_id,
            text=body.text if body is not None else None,
            webhooks=hooks,
        )
        return [CustomerUpdateOut.of(r) for r in rows]


@router.get("/escalation-policies", response_model=list[PolicyOut], summary="Escalation policies")
def list_policies(principal: Staff, catalog: CatalogDep) -> list[PolicyOut]:
    """Every escalation policy, by name."""
    with scoped_session(catalog, principal) as session:
        return [PolicyOut.of(p) for p in escalation.list_policies(session)]


@router.post(
    "/escalation-policies",
    response_model=PolicyOut,
    status_code=201,
    summary="Create an escalation policy",
)
def create_policy(body: PolicyIn, principal: Staff, catalog: CatalogDep) -> PolicyOut:
    """Supervisors and administrators decide who is paged."""
    principal.require(Role.SOC_SUPERVISOR, Role.ADMINISTRATOR)
    with scoped_session(catalog, principal) as session:
        policy = escalation.create_policy(
            session,
            name=body.name,
            levels=body.levels,
            repeat=body.repeat,
            ack_timeout_seconds=body.ack_timeout_seconds,
            customer_update_interval_seconds=body.customer_update_interval_seconds,
        )
        return PolicyOut.of(policy)
