"""Incidents as the console shows them: the list with affected-tenant counts, and one incident whole.

The detail gathers what an operator needs on one page: the timeline (with
each page's delivery state from the outbox), the customer updates sent and
the drafts waiting for approval, the alarms gathered in the incident and
the names of the tenants it affects. Drafts made together in a crisis are
one batch (publishing one publishes all), so they are shown once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vaultwatch.catalog.models import Tenant
from vaultwatch.catalog.soc_models import (
    Alarm,
    CustomerUpdate,
    CustomerUpdateKind,
    CustomerUpdateState,
    EscalationPolicy,
    Incident,
    IncidentEvent,
    IncidentState,
    IncidentTenant,
    Notification,
)
from vaultwatch.soc import customer_updates, escalation, incidents

MAX_LISTED = 200
MAX_ALARMS = 200


@dataclass(frozen=True)
class IncidentRow:
    """One line of the incident list."""

    incident: Incident
    tenants: int


@dataclass(frozen=True)
class DraftBatch:
    """Drafts made together: one approval publishes them (all of them in a crisis)."""

    update_id: int
    kind: CustomerUpdateKind
    text: str
    created_at: datetime
    created_by: str
    tenants: list[str]


@dataclass(frozen=True)
class IncidentView:
    """Everything the incident page shows."""

    incident: Incident
    policy: str | None
    tenants: list[tuple[uuid.UUID, str]]
    timeline: list[IncidentEvent]
    delivery: dict[str, str]
    published: list[CustomerUpdate]
    drafts: list[DraftBatch]
    alarms: list[Alarm]
    tenant_names: dict[uuid.UUID, str]


def list_incident_rows(
    session: Session, *, state: IncidentState | None = None, limit: int = MAX_LISTED
) -> list[IncidentRow]:
    """Incidents newest first, each with how many tenants it affects (one query for the counts)."""
    found = incidents.list_incidents(session, state=state, limit=limit)
    if not found:
        return []
    counts = dict(
        session.execute(
            select(IncidentTenant.incident_id, func.count())
            .where(IncidentTenant.incident_id.in_([i.id for i in found]))
            .group_by(IncidentTenant.incident_id)
        ).all()
    )
    return [IncidentRow(i, int(counts.get(i.id, 0))) for i in found]


def _batches(
    drafts: list[CustomerUpdate], crisis: bool, names: dict[uuid.UUID, str]
) -> list[DraftBatch]:
    groups: dict[object, list[CustomerUpdate]] = {}
    for row in drafts:
        key: object = (row.created_at, row.kind) if crisis else row.id
        groups.setdefault(key, []).append(row)
    return [
        DraftBatch(
            update_id=rows[0].id,
            kind=rows[0].kind,
            text=rows[0].text,
            created_at=rows[0].created_at,
            created_by=rows[0].created_by,
            tenants=sorted(names.get(r.tenant_id, str(r.tenant_id)) for r in rows),
        )
        for rows in groups.values()
    ]


def incident_view(session: Session, incident_id: int) -> IncidentView:
    """One incident's page (404 for an unknown incident)."""
    incident = escalation.get_incident(session, incident_id)
    policy = session.get(EscalationPolicy, incident.policy_id) if incident.policy_id else None
    tenant_ids = incidents.tenants_of(session, incident.id)
    names = {
        tid: name
        for tid, name in session.execute(
            select(Tenant.id, Tenant.name).where(Tenant.id.in_(tenant_ids))
        )
    }
    events = escalation.timeline(session, incident.id)
    keys = [str(e.details.get("notification")) for e in events if e.details.get("notification")]
    delivery = (
        {
            key: state.value
            for key, state in session.execute(
                select(Notification.dedup_key, Notification.state).where(
                    Notification.dedup_key.in_(keys)
                )
            )
        }
        if keys
        else {}
    )
    updates = customer_updates.updates_of(session, incident.id)
    published = [u for u in updates if u.state == CustomerUpdateState.PUBLISHED]
    drafts = [u for u in updates if u.state == CustomerUpdateState.DRAFT]
    alarms = list(
        session.scalars(
            select(Alarm)
            .where(Alarm.incident_id == incident.id)
            .order_by(Alarm.severity.desc(), Alarm.id)
            .limit(MAX_ALARMS)
        )
    )
    return IncidentView(
        incident=incident,
        policy=policy.name if policy else None,
        tenants=sorted(((t, names.get(t, str(t))) for t in tenant_ids), key=lambda p: p[1].lower()),
        timeline=events,
        delivery=delivery,
        published=published,
        drafts=_batches(drafts, incident.crisis, names),
        alarms=alarms,
        tenant_names=names,
    )
