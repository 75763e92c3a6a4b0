"""Status updates to the customers an incident affects: drafted, approved, sent, shown.

Every incident with affected tenants gets a drafted first notice when it
opens and a drafted resolution notice when it is resolved; in between, the
reminder duty drafts a regular update whenever the policy's
`customer_update_interval_seconds` passed since the last publication.
Nothing reaches a customer until an operator publishes (approves) a draft,
possibly rewriting its text. A published update is queued as email to the
tenant's customer administrators, as a webhook when the tenant has one
configured, and is shown on the tenant's portal (published rows are the
portal's notices).

A draft is one row per tenant; rows drafted together share their
`created_at`. In a crisis every affected tenant gets the same update:
drafts always cover all of them, and publishing one publishes them all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.models import Role, User
from vaultwatch.catalog.soc_models import (
    CustomerUpdate,
    CustomerUpdateKind,
    CustomerUpdateState,
    EscalationPolicy,
    Incident,
    IncidentState,
    IncidentTenant,
    NotificationChannel,
)
from vaultwatch.soc.escalation import DEFAULT_UPDATE_INTERVAL, current_time, get_incident, record
from vaultwatch.soc.notify.outbox import queue_notification
from vaultwatch.soc.notify.webhook import check_webhook_url

SYSTEM_ACTOR = "system:customer-updates"
MAX_TEXT = 10000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class CustomerUpdateNotFoundError(CatalogError):
    """No customer update has this id (for this incident)."""

    http_status = 404


class CustomerUpdateStateError(CatalogError):
    """The update is already published, or its incident no longer allows it."""

    http_status = 409


def clean_body(text: str) -> str:
    """Update text: several lines allowed, control characters removed, bounded."""
    if not isinstance(text, str):
        raise ValidationError("update text must be text")
    cleaned = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\t", " ")).strip()
    if not cleaned:
        raise ValidationError("update text must not be empty")
    if len(cleaned) > MAX_TEXT:
        raise ValidationError(f"update text must be at most {MAX_TEXT} characters")
    return cleaned


def _tenants(session: Session, incident_id: int) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(IncidentTenant.tenant_id)
            .where(IncidentTenant.incident_id == incident_id)
            .order_by(IncidentTenant.tenant_id)
        )
    )


def update_interval(session: Session, incident: Incident) -> timedelta:
    """How often the incident's customers hear from us (its policy's interval)."""
    policy = session.get(EscalationPolicy, incident.policy_id) if incident.policy_id else None
    seconds = policy.customer_update_interval_seconds if policy else DEFAULT_UPDATE_INTERVAL
    return timedelta(seconds=seconds)


def draft_update(
    session: Session,
    incident_id: int,
    *,
    text: str,
    actor: str,
    kind: CustomerUpdateKind = CustomerUpdateKind.UPDATE,
    tenant_ids: Sequence[uuid.UUID] | None = None,
    now: datetime | None = None,
) -> list[CustomerUpdate]:
    """Draft one update for the given affected tenants (all of them by default, always in a crisis)."""
    now = current_time(session, now)
    incident = get_incident(session, incident_id)
    body = clean_body(text)
    kind = CustomerUpdateKind(kind)
    if incident.state == IncidentState.RESOLVED and kind != CustomerUpdateKind.RESOLUTION:
        raise CustomerUpdateStateError(
            f"incident {incident_id} is resolved: only a resolution notice can follow"
        )
    affected = _tenants(session, incident.id)
    if not affected:
        raise ValidationError(f"incident {incident_id} affects no tenant: there is nobody to tell")
    chosen = affected if tenant_ids is None else sorted(set(tenant_ids), key=str)
    strangers = [str(t) for t in chosen if t not in affected]
    if strangers:
        raise ValidationError(
            f"tenant(s) not affected by incident {incident_id}: {', '.join(strangers[:5])}"
        )
    if not chosen:
        raise ValidationError("an update needs at least one tenant")
    if incident.crisis and set(chosen) != set(affected):
        raise ValidationError("in a crisis every affected tenant gets the same update")
    rows = [
        CustomerUpdate(
            incident_id=incident.id,
            tenant_id=tenant,
            kind=kind,
            state=CustomerUpdateState.DRAFT,
            text=body,
            created_at=now,
            created_by=actor,
        )
        for tenant in chosen
    ]
    session.add_all(rows)
    session.flush()
    record(
        session,
        incident.id,
        "customer_update_drafted",
        actor,
        body[:200],
        {"kind": kind.value, "tenants": len(rows), "update_ids": [r.id for r in rows]},
        at=now,
    )
    return rows


def draft_first_notice(
    session: Session, incident: Incident, *, now: datetime
) -> list[CustomerUpdate]:
    """The first notice's draft, and the first reminder one interval later."""
    incident.next_customer_update_at = now + update_interval(session, incident)
    return draft_update(
        session,
        incident.id,
        text=(
            f"We are investigating a problem that affects your service: {incident.title}. "
            "Your protected data is safe. We will update you as we learn more."
        ),
        actor=SYSTEM_ACTOR,
        kind=CustomerUpdateKind.FIRST_NOTICE,
        now=now,
    )


def draft_resolution_notice(
    session: Session, incident: Incident, *, now: datetime
) -> list[CustomerUpdate]:
    """The resolution notice's draft (operators approve it like any other)."""
    return draft_update(
        session,
        incident.id,
        text=f"The problem is resolved: {incident.title}. Thank you for your patience.",
        actor=SYSTEM_ACTOR,
        kind=CustomerUpdateKind.RESOLUTION,
        now=now,
    )


def get_update(session: Session, update_id: int, incident_id: int | None = None) -> CustomerUpdate:
    """One update; CustomerUpdateNotFoundError when unknown (or of another incident)."""
    row = session.get(CustomerUpdate, update_id)
    if row is None or (incident_id is not None and row.incident_id != incident_id):
        raise CustomerUpdateNotFoundError(f"no customer update {update_id}")
    return row


def _recipients(session: Session, tenant_id: uuid.UUID) -> list[str]:
    return list(
        session.scalars(
            select(User.email)
            .where(
                User.tenant_id == tenant_id,
                User.role == Role.CUSTOMER_ADMIN,
                User.disabled_at.is_(None),
            )
            .order_by(User.email)
        )
    )


def publish_update(
    session: Session,
    update_id: int,
    *,
    actor: str,
    incident_id: int | None = None,
    text: str | None = None,
    webhooks: Mapping[uuid.UUID, str] | None = None,
    now: datetime | None = None,
) -> list[CustomerUpdate]:
    """Approve a draft (optionally with new text), send it and show it; in a crisis, all of its batch."""
    now = current_time(session, now)
    first = get_update(session, update_id, incident_id)
    if first.state == CustomerUpdateState.PUBLISHED:
        raise CustomerUpdateStateError(f"customer update {update_id} is already published")
    incident = get_incident(session, first.incident_id)
    body = clean_body(text) if text is not None else first.text
    batch = [first]
    if incident.crisis:
        batch = list(
            session.scalars(
                select(CustomerUpdate)
                .where(
                    CustomerUpdate.incident_id == incident.id,
                    CustomerUpdate.created_at == first.created_at,
                    CustomerUpdate.kind == first.kind,
                    CustomerUpdate.state == CustomerUpdateState.DRAFT,
                )
                .order_by(CustomerUpdate.tenant_id)
            )
        )
    ids = [row.id for row in batch]
    result = session.execute(
        update(CustomerUpdate)
        .where(CustomerUpdate.id.in_(ids), CustomerUpdate.state == CustomerUpdateState.DRAFT)
        .values(
            state=CustomerUpdateState.PUBLISHED, published_at=now, published_by=actor, text=body
        )
        .execution_options(synchronize_session=False)
    )
    if (result.rowcount or 0) != len(ids):  # type: ignore[attr-defined]
        raise CustomerUpdateStateError(f"customer update {update_id} was published meanwhile")
    for row in batch:
        session.refresh(row)
    subject = f"Service notice: {incident.title}"
    if first.kind == CustomerUpdateKind.RESOLUTION:
        subject = f"Resolved: {incident.title}"
    sent = 0
    for row in batch:
        for email in _recipients(session, row.tenant_id):
            sent += queue_notification(
                session,
                dedup_key=f"customer-update:{row.id}:email:{email}",
                channel=NotificationChannel.EMAIL,
                recipient=email,
                subject=subject,
                body=body,
                tenant_id=row.tenant_id,
                incident_id=incident.id,
                now=now,
            )
        hook = (webhooks or {}).get(row.tenant_id)
        if hook:
            sent += queue_notification(
                session,
                dedup_key=f"customer-update:{row.id}:webhook",
                channel=NotificationChannel.WEBHOOK,
                recipient=hook,
                subject=subject,
                body=body,
                tenant_id=row.tenant_id,
                incident_id=incident.id,
                now=now,
            )
    if incident.state != IncidentState.RESOLVED and first.kind != CustomerUpdateKind.RESOLUTION:
        incident.next_customer_update_at = now + update_interval(session, incident)
    record(
        session,
        incident.id,
        "customer_update_published",
        actor,
        body[:200],
        {
            "kind": first.kind.value,
            "update_ids": ids,
            "tenants": len(batch),
            "notifications": sent,
            "crisis": incident.crisis,
        },
        at=now,
    )
    return batch


def updates_of(
    session: Session, incident_id: int, *, published_only: bool = False
) -> list[CustomerUpdate]:
    """An incident's updates, oldest first (a tenant's session sees its own rows only)."""
    stmt = select(CustomerUpdate).where(CustomerUpdate.incident_id == incident_id)
    if published_only:
        stmt = stmt.where(CustomerUpdate.state == CustomerUpdateState.PUBLISHED)
    return list(session.scalars(stmt.order_by(CustomerUpdate.created_at, CustomerUpdate.id)))


def portal_notices(
    session: Session, tenant_id: uuid.UUID, *, limit: int = 50
) -> list[CustomerUpdate]:
    """What a tenant's status page shows: its published updates, newest first."""
    return list(
        session.scalars(
            select(CustomerUpdate)
            .where(
                CustomerUpdate.tenant_id == tenant_id,
                CustomerUpdate.state == CustomerUpdateState.PUBLISHED,
            )
            .order_by(CustomerUpdate.published_at.desc(), CustomerUpdate.id.desc())
            .limit(limit)
        )
    )


def remind_due_updates(session: Session, now: datetime, *, limit: int = 200) -> int:
    """Draft a regular update for every open incident whose customers are due to hear from us.

    The due time moves on with one conditional UPDATE, so two nodes draft once.
    Returns how many incidents got a reminder draft.
    """
    due = session.scalars(
        select(Incident)
        .where(
            Incident.state != IncidentState.RESOLVED,
            Incident.next_customer_update_at <= now,
        )
        .order_by(Incident.next_customer_update_at, Incident.id)
        .limit(limit)
    ).all()
    reminded = 0
    for incident in due:
        was = incident.next_customer_update_at
        result = session.execute(
            update(Incident)
            .where(Incident.id == incident.id, Incident.next_customer_update_at == was)
            .values(next_customer_update_at=now + update_interval(session, incident))
            .execution_options(synchronize_session=False)
        )
        if (result.rowcount or 0) != 1:  # type: ignore[attr-defined]
            continue
        session.refresh(incident)
        pending = session.scalar(
            select(CustomerUpdate.id)
            .where(
                CustomerUpdate.incident_id == incident.id,
                CustomerUpdate.state == CustomerUpdateState.DRAFT,
            )
            .limit(1)
        )
        record(
            session,
            incident.id,
            "customer_update_due",
            SYSTEM_ACTOR,
            "customers are due an update" + (": a draft is waiting" if pending else ""),
            at=now,
        )
        if pending is None and _tenants(session, incident.id):
            draft_update(
                session,
                incident.id,
                text=(
                    f"We are still working on: {incident.title}. "
                    "We will update you again as soon as we know more."
                ),
                actor=SYSTEM_ACTOR,
                now=now,
            )
        reminded += 1
    return reminded


def customer_webhooks(extra: Mapping[str, object]) -> dict[uuid.UUID, str]:
    """Tenants' webhook URLs from the server settings' ``[soc.customer_webhooks]`` table.

    Keys are tenant ids, values http(s) URLs: ``"<tenant-uuid>" = "https://..."``.
    """
    soc = extra.get("soc", {})
    table = soc.get("customer_webhooks", {}) if isinstance(soc, dict) else {}
    if not isinstance(table, dict):
        raise ValidationError("[soc.customer_webhooks] must be a table of tenant id = URL")
    hooks: dict[uuid.UUID, str] = {}
    for key, url in table.items():
        try:
            tenant = uuid.UUID(str(key))
        except ValueError:
            raise ValidationError(f"[soc.customer_webhooks] {key!r} is not a tenant id") from None
        hooks[tenant] = check_webhook_url(str(url))
    return hooks
