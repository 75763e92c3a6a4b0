"""Ingestion: events arriving from outside (HTTP, Alertmanager, syslog, SNMP) into the alarm store.

Receivers parse what their senders speak into `Event`s and hand batches to
`submit_events`, which stores each batch in one transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from vaultwatch.catalog import Catalog
from vaultwatch.soc.alarms import RaisedAlarm
from vaultwatch.soc.events import Event
from vaultwatch.soc.metrics import events_ingested
from vaultwatch.soc.pipeline import process_events


def submit_events(catalog: Catalog, events: Sequence[Event]) -> list[RaisedAlarm]:
    """Store `events` in their own transaction (call from a worker thread, never the event loop)."""
    if not events:
        return []
    with catalog.write_turn(), catalog.session() as session:
        raised = process_events(session, events)
    counter = events_ingested()
    for source, count in Counter(event.source.value for event in events).items():
        counter.labels(source).inc(count)
    return raised
