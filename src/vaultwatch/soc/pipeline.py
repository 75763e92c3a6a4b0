"""What happens to every batch of events: deduplicate, then silence, correlate and escalate.

Every sender goes through `process_events`, so an alarm raised by domain
code, the API or a receiver is treated the same way. The steps after
deduplication look only at the alarms whose state changed in this batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now
from vaultwatch.soc.alarms import RaisedAlarm, raise_events
from vaultwatch.soc.correlation import correlate
from vaultwatch.soc.events import Event
from vaultwatch.soc.incidents import incidents_to_join, open_incidents_for, resolve_cleared
from vaultwatch.soc.silences import apply_silences


def process_events(
    session: Session, events: Sequence[Event], *, now: datetime | None = None
) -> list[RaisedAlarm]:
    """Store `events` as alarms and run the follow-up steps on what changed."""
    if not events:
        return []
    now = now or database_now(session)
    raised = raise_events(
        session,
        events,
        now=now,
        incidents_to_join=lambda problems: incidents_to_join(session, problems),
    )
    apply_silences(session, raised, now)
    correlate(session, raised, now)
    open_incidents_for(session, raised, now)
    resolve_cleared(session, raised, now)
    return raised
