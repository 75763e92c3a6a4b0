"""The event API: one event or a batch, deduplicated into alarms (`POST /events`, `/events/batch`).

Senders need an operations center key; a batch is stored whole or not at all.
"""

from __future__ import annotations

from fastapi import APIRouter

from vaultwatch.catalog.soc_models import EventSource, Severity
from vaultwatch.soc.api.auth import CatalogDep, Staff
from vaultwatch.soc.api.schemas import EventBatchIn, EventIn, EventsAccepted
from vaultwatch.soc.events import Event
from vaultwatch.soc.ingest import submit_events

router = APIRouter(tags=["events"])


def _event(body: EventIn) -> Event:
    return Event(
        node=body.node,
        alert_group=body.alert_group,
        summary=body.summary,
        severity=Severity.parse(body.severity),
        alert_key=body.alert_key,
        type=body.type,
        source=EventSource.API,
        entity=body.entity,
        tenant_id=body.tenant_id,
        alarm_class=body.alarm_class,
        identifier=body.identifier,
        occurred_at=body.occurred_at,
        runbook=body.runbook,
        attributes=dict(body.attributes),
        occurrence_key=body.occurrence_key,
    )


@router.post("/events", response_model=EventsAccepted, status_code=202, summary="Send one event")
def post_event(body: EventIn, principal: Staff, catalog: CatalogDep) -> EventsAccepted:
    """Raise, repeat or clear one alarm."""
    return EventsAccepted.of(1, submit_events(catalog, [_event(body)]))


@router.post(
    "/events/batch", response_model=EventsAccepted, status_code=202, summary="Send many events"
)
def post_batch(body: EventBatchIn, principal: Staff, catalog: CatalogDep) -> EventsAccepted:
    """Up to 5,000 events in one transaction: all are stored, or none."""
    events = [_event(item) for item in body.events]
    return EventsAccepted.of(len(events), submit_events(catalog, events))
