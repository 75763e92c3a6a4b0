"""``POST /ingest/alertmanager``: Prometheus Alertmanager's webhook receiver.

Alertmanager authenticates with a staff API key (``http_config: authorization``
in its receiver), so the alarms it raises are the service's own, never a
customer's. Alertmanager retries a delivery answered with 5xx and gives up on
4xx, so a payload this receiver cannot read is refused with a 4xx problem.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter

from vaultwatch.protocol import PROBLEM_JSON
from vaultwatch.soc.api.auth import CatalogDep, Staff
from vaultwatch.soc.api.schemas import EventsAccepted
from vaultwatch.soc.ingest import submit_events
from vaultwatch.soc.ingest.alertmanager import WebhookPayload, payload_events

router = APIRouter(tags=["ingest"])

_PROBLEMS: dict[int | str, dict[str, object]] = {
    status: {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, description in {
        401: "Missing, unknown, revoked or expired API key",
        403: "The key's role is not an operations center role",
        413: "More alerts in one notification than the receiver takes",
        422: "Not a webhook payload of version 4",
    }.items()
}


@router.post(
    "/ingest/alertmanager",
    response_model=EventsAccepted,
    status_code=202,
    responses=_PROBLEMS,
    summary="Receive an Alertmanager webhook notification",
)
async def ingest_alertmanager(
    payload: WebhookPayload, principal: Staff, catalog: CatalogDep
) -> EventsAccepted:
    """Each alert raises, repeats or clears the alarm of its fingerprint."""
    events = payload_events(payload)
    return EventsAccepted.of(
        len(events), await anyio.to_thread.run_sync(submit_events, catalog, events)
    )
