"""The service's own machines as the console shows them: nodes, their health history, probes.

A node's history is read from ``node_health_samples`` and reduced to the
few series an operator watches (free disk of the fullest volume, database
and store round trip), so a chart never needs the whole JSON document.
Gaps stay gaps: a sample without a measurement contributes no point.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import NodeHealthSample, Probe

#: How far back the console's charts look by default, and the most it may ask for.
DEFAULT_WINDOW = timedelta(hours=6)
MAX_WINDOW = timedelta(days=7)
#: The most samples read for one node's chart (a day at one per minute fits twice).
MAX_SAMPLES = 2880

Point = tuple[datetime, float]


@dataclass(frozen=True)
class NodeHistory:
    """One node's measurements over a window, one series per metric, oldest first."""

    node_id: uuid.UUID
    since: datetime
    until: datetime
    free_disk_percent: list[Point] = field(default_factory=list)
    db_latency_ms: list[Point] = field(default_factory=list)
    store_latency_ms: list[Point] = field(default_factory=list)
    samples: int = 0


@dataclass(frozen=True)
class ProbeInfo:
    """An endpoint probe and its last result."""

    id: int
    name: str
    kind: str
    target: str
    entity: str
    enabled: bool
    interval_seconds: int
    last_run_at: datetime | None
    last_ok: bool | None
    last_latency_ms: float | None
    last_error: str | None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def lowest_free_disk(metrics: dict[str, Any]) -> float | None:
    """The free percentage of the fullest measured volume (data or spool) in one health document."""
    values = [
        _number(disk.get("free_percent"))
        for disk in metrics.get("disks") or []
        if isinstance(disk, dict)
    ]
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _latency(metrics: dict[str, Any], name: str) -> float | None:
    probe = metrics.get(name)
    if not isinstance(probe, dict) or not probe.get("ok"):
        return None
    return _number(probe.get("latency_ms"))


def node_history(
    session: Session,
    node_id: uuid.UUID,
    *,
    window: timedelta = DEFAULT_WINDOW,
    now: datetime | None = None,
) -> NodeHistory:
    """The node's free disk, database and store latency over the last `window`."""
    if not timedelta(0) < window <= MAX_WINDOW:
        raise ValidationError(f"the history window must be positive and at most {MAX_WINDOW}")
    until = now or database_now(session)
    since = until - window
    rows = session.execute(
        select(NodeHealthSample.at, NodeHealthSample.metrics)
        .where(
            NodeHealthSample.node_id == node_id,
            NodeHealthSample.at >= since,
            NodeHealthSample.at <= until,
        )
        .order_by(NodeHealthSample.at.desc(), NodeHealthSample.id.desc())
        .limit(MAX_SAMPLES)
    ).all()
    disk: list[Point] = []
    database: list[Point] = []
    store: list[Point] = []
    for at, metrics in reversed(rows):
        doc = metrics if isinstance(metrics, dict) else {}
        for series, value in (
            (disk, lowest_free_disk(doc)),
            (database, _latency(doc, "database")),
            (store, _latency(doc, "store")),
        ):
            if value is not None:
                series.append((at, value))
    return NodeHistory(node_id, since, until, disk, database, store, len(rows))


def list_probes(session: Session) -> list[ProbeInfo]:
    """Every endpoint probe by name, failing ones first."""
    rows = session.scalars(select(Probe).order_by(Probe.name)).all()
    probes = [
        ProbeInfo(
            id=p.id,
            name=p.name,
            kind=p.kind,
            target=p.target,
            entity=p.entity,
            enabled=p.enabled,
            interval_seconds=p.interval_seconds,
            last_run_at=p.last_run_at,
            last_ok=p.last_ok,
            last_latency_ms=p.last_latency_ms,
            last_error=p.last_error,
        )
        for p in rows
    ]
    return sorted(probes, key=lambda p: (p.last_ok is not False, p.name))
