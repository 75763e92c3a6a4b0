"""Prometheus metrics of the service, read from the catalog when Prometheus scrapes.

The catalog is the one truth shared by every node, so the gauges (alarms by
severity, open incidents, jobs by state, heartbeat ages, leases) are queried
at scrape time rather than kept in each process; only the ingestion counter
is per process (Prometheus sums it across the nodes it scrapes). Own
registry, so several apps in one process (tests) never collide.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from vaultwatch import __version__
from vaultwatch.catalog import Agent, Catalog, Job, JobState, Lease, database_now
from vaultwatch.catalog.soc_models import Alarm, Incident, IncidentState, Severity

#: Heartbeat age buckets (seconds) for the "how many agents were last heard from within" gauge.
HEARTBEAT_AGE_BUCKETS = (60, 300, 900, 3600, 86400)

_lock = threading.Lock()
_ingested: Counter | None = None
_registry = CollectorRegistry(auto_describe=True)


def events_ingested() -> Counter:
    """The process-wide counter of events stored, by source (one per process, made once)."""
    global _ingested
    with _lock:
        if _ingested is None:
            _ingested = Counter(
                "vaultwatch_events_ingested",
                "Events stored in the alarm store by this process, by source",
                ["source"],
                registry=_registry,
            )
        return _ingested


class CatalogCollector(Collector):
    """Gauges queried from the catalog at each scrape."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("vaultwatch_server_info", "Server version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        with self.catalog.session() as session:
            now = database_now(session)
            alarms = GaugeMetricFamily(
                "vaultwatch_alarms_open", "Open alarms by severity", labels=["severity"]
            )
            counts = dict.fromkeys(range(1, 6), 0)
            rows = session.execute(
                select(Alarm.severity, func.count())
                .where(Alarm.cleared_at.is_(None))
                .group_by(Alarm.severity)
            ).all()
            for severity, count in rows:
                counts[int(severity)] = int(count)
            for severity, count in sorted(counts.items()):
                alarms.add_metric([Severity(severity).label], count)
            yield alarms
            unacked = session.scalar(
                select(func.count())
                .select_from(Alarm)
                .where(Alarm.cleared_at.is_(None), Alarm.acknowledged.is_(False))
            )
            yield GaugeMetricFamily(
                "vaultwatch_alarms_unacknowledged", "Open alarms nobody acknowledged", unacked or 0
            )
            incidents = GaugeMetricFamily(
                "vaultwatch_incidents", "Incidents by state", labels=["state"]
            )
            by_state = dict(
                session.execute(
                    select(Incident.state, func.count())
                    .where(Incident.state != IncidentState.RESOLVED)
                    .group_by(Incident.state)
                ).all()
            )
            for open_state in (IncidentState.TRIGGERED, IncidentState.ACKNOWLEDGED):
                incidents.add_metric([open_state.value], int(by_state.get(open_state, 0)))
            yield incidents
            jobs = GaugeMetricFamily(
                "vaultwatch_jobs_active", "Unfinished jobs by state", labels=["state"]
            )
            active = dict(
                session.execute(
                    select(Job.state, func.count())
                    .where(Job.state.not_in([s.value for s in JobState if s.is_final]))
                    .group_by(Job.state)
                ).all()
            )
            for state in JobState:
                if not state.is_final:
                    jobs.add_metric([state.value], int(active.get(state, 0)))
            yield jobs
            ages = GaugeMetricFamily(
                "vaultwatch_agents_heard_within",
                "Active agents whose last heartbeat is at most `seconds` old",
                labels=["seconds"],
            )
            for bucket in HEARTBEAT_AGE_BUCKETS:
                heard = session.scalar(
                    select(func.count())
                    .select_from(Agent)
                    .where(
                        Agent.retired_at.is_(None),
                        Agent.last_seen_at >= now - timedelta(seconds=bucket),
                    )
                )
                ages.add_metric([str(bucket)], int(heard or 0))
            yield ages
            total = session.scalar(
                select(func.count()).select_from(Agent).where(Agent.retired_at.is_(None))
            )
            yield GaugeMetricFamily("vaultwatch_agents", "Active (not retired) agents", total or 0)
            oldest = session.scalar(
                select(func.min(Agent.last_seen_at)).where(Agent.retired_at.is_(None))
            )
            yield GaugeMetricFamily(
                "vaultwatch_agent_heartbeat_oldest_age_seconds",
                "Age of the oldest last heartbeat among active agents",
                (now - oldest).total_seconds() if oldest is not None else 0,
            )
            leases = GaugeMetricFamily(
                "vaultwatch_duty_lease_held",
                "1 while the named duty lease is held (by the holder in the label)",
                labels=["lease", "holder"],
            )
            for lease in session.scalars(select(Lease)):
                leases.add_metric([lease.name, lease.holder], 1 if lease.expires_at > now else 0)
            yield leases


def render_metrics(catalog: Catalog) -> bytes:
    """The metrics page: this process's counters and the catalog's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(catalog))
    return generate_latest(_registry) + generate_latest(registry)
