"""The SOC's monitors: functions that look at the catalog and say what is wrong.

Each monitor returns events for every thing it judged, problems and
resolutions alike, and `emit` stores them. `emit` keeps monitors idempotent
and cheap: a resolution is sent only for an alarm that is open (so healthy
things cost nothing), and a problem is dropped when an operator cleared
that very occurrence by hand (same `occurrence_key`), so a dismissed alarm
does not come back until something new happens. Repeats of an occurrence
never add to the tally, because every monitor names its occurrences.

`default_duties` is the list of duties a server runs (see `vaultwatch.soc.duties`).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vaultwatch.catalog.soc_models import Alarm, EventType
from vaultwatch.server_config import ServerConfigError, ServerSettings
from vaultwatch.soc.alarms import RaisedAlarm
from vaultwatch.soc.events import Event
from vaultwatch.soc.pipeline import process_events

if TYPE_CHECKING:
    from vaultwatch.catalog import Catalog
    from vaultwatch.soc.duties import Duty

#: Identifiers looked up per query when filtering a batch.
_CHUNK = 500

#: The agent's default heartbeat interval (vaultwatch.agent.config): 60 seconds.
AGENT_HEARTBEAT_SECONDS = 60.0


@dataclass(frozen=True)
class MonitorSettings:
    """Thresholds and intervals of the monitors (``[monitors]`` in the server settings).

    Every value is a number of seconds unless its name says otherwise.
    """

    interval: float = 60.0
    heartbeat_missed_after: float = 3 * AGENT_HEARTBEAT_SECONDS
    job_stalled_after: float = 900.0
    job_stalled_major_after: float = 3600.0
    job_lookback: float = 2 * 86400.0
    restore_lookback: float = 86400.0
    node_report_interval: float = 60.0
    node_samples_kept: int = 2880
    node_disk_free_major_percent: float = 10.0
    node_disk_free_critical_percent: float = 5.0
    node_memory_available_major_percent: float = 10.0
    node_cert_warn_days: float = 30.0
    node_cert_major_days: float = 14.0
    node_store_latency_ms: float = 1000.0
    node_db_latency_ms: float = 250.0
    node_command_timeout: float = 10.0
    probe_interval: float = 2.0
    probe_cert_warn_days: float = 14.0

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> MonitorSettings:
        """Read ``[monitors]`` from the settings file; unknown or bad values are refused."""
        table = settings.extra.get("monitors", {})
        return cls.from_mapping(table)

    @classmethod
    def from_mapping(cls, table: Any) -> MonitorSettings:
        """Build from a mapping of the field names above (seconds, percents, days)."""
        if not isinstance(table, dict):
            raise ServerConfigError("[monitors] must be a table")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ServerConfigError(
                f"[monitors] has unknown setting(s) {', '.join(unknown)}: "
                f"use {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for name, value in table.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ServerConfigError(f"[monitors] {name} must be a positive number")
            values[name] = int(value) if name == "node_samples_kept" else float(value)
        return cls(**values)


def _open_alarms(session: Session, identifiers: list[str]) -> dict[str, tuple[bool, str | None]]:
    """identifier -> (cleared?, last occurrence key) for the live alarms among `identifiers`."""
    found: dict[str, tuple[bool, str | None]] = {}
    for start in range(0, len(identifiers), _CHUNK):
        chunk = identifiers[start : start + _CHUNK]
        rows = session.execute(
            select(Alarm.identifier, Alarm.cleared_at, Alarm.last_occurrence_key).where(
                Alarm.identifier.in_(chunk)
            )
        )
        for row in rows:
            found[row.identifier] = (row.cleared_at is not None, row.last_occurrence_key)
    return found


def worth_sending(session: Session, events: Sequence[Event]) -> list[Event]:
    """The events that change something: see the module docstring."""
    identifiers = sorted({e.dedup_identifier for e in events})
    live = _open_alarms(session, identifiers)
    kept: list[Event] = []
    raised: set[str] = set()
    for event in events:
        identifier = event.dedup_identifier
        state = live.get(identifier)
        if event.type == EventType.RESOLUTION:
            if identifier in raised or (state is not None and not state[0]):
                kept.append(event)
            continue
        dismissed = state is not None and state[0] and event.occurrence_key is not None
        if dismissed and state is not None and state[1] == event.occurrence_key:
            continue  # an operator cleared this very occurrence
        raised.add(identifier)
        kept.append(event)
    return kept


def emit(
    session: Session, events: Sequence[Event], *, now: datetime | None = None
) -> list[RaisedAlarm]:
    """Store a monitor's events (after `worth_sending`) through the event pipeline."""
    kept = worth_sending(session, events)
    if not kept:
        return []
    return process_events(session, kept, now=now)


def default_duties(
    catalog: Catalog,
    settings: ServerSettings,
    *,
    node_name: str | None = None,
    monitor_settings: MonitorSettings | None = None,
) -> list[Duty]:
    """The duties every server node runs under the duty runner.

    Leased: agent, job and node-threshold monitors and the probes. On every
    node: reporting this node's own health.
    """
    from vaultwatch.soc.duties import Duty
    from vaultwatch.soc.monitors import agents, jobs, nodes, probes, security

    config = monitor_settings or MonitorSettings.from_settings(settings)
    name = node_name or socket.gethostname()
    reporter = nodes.NodeReporter(catalog, settings, name, config)
    return [
        Duty("monitor.agents", config.interval, agents.agent_duty(config)),
        Duty("monitor.jobs", config.interval, jobs.job_duty(config)),
        Duty("monitor.nodes", config.interval, nodes.node_duty(config)),
        Duty("monitor.probes", config.probe_interval, probes.probe_duty(config, settings)),
        Duty("monitor.security", config.interval, security.security_duty()),
        Duty("node.health", config.node_report_interval, reporter.duty, leased=False),
    ]
