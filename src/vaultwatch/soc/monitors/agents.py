"""Agent monitors: missed heartbeats, backups overdue against their set's RPO, gateway paths.

Both alarms sit on the agent's topology entity (``agent:<id>``), so when a
gateway or a site is down, correlation can file them as its symptoms.
Occurrences are named by the fact they were judged on (the last heartbeat's
time, the last snapshot's time), so running a monitor again adds nothing.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from vaultwatch.catalog.models import Agent, BackupSet, Job, JobState, Snapshot
from vaultwatch.catalog.soc_models import EventSource, EventType, Severity
from vaultwatch.soc.duties import DutyContext
from vaultwatch.soc.events import Event
from vaultwatch.soc.monitors import MonitorSettings, emit

HEARTBEAT = "agent.heartbeat"
OVERDUE = "backup.overdue"
GATEWAY_PATH = "agent.gateway.unreachable"


def describe_age(seconds: float) -> str:
    """``3725`` -> ``1h 2m``: how long ago, for summaries people read."""
    total = int(max(seconds, 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _stamp(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "never"


def heartbeat_identifier(agent_id: uuid.UUID) -> str:
    """The heartbeat alarm of one agent (by id: its hostname may change)."""
    return f"agent:{agent_id}|{HEARTBEAT}"


def check_heartbeats(session: Session, now: datetime, missed_after: timedelta) -> list[Event]:
    """A problem for every active agent silent for longer than `missed_after`, else a resolution.

    An agent never heard from is judged from its enrollment.
    """
    events: list[Event] = []
    rows = session.execute(
        select(Agent.id, Agent.tenant_id, Agent.hostname, Agent.last_seen_at, Agent.enrolled_at)
        .where(Agent.retired_at.is_(None))
        .order_by(Agent.id)
    )
    for row in rows:
        seen = row.last_seen_at or row.enrolled_at
        silent = (now - seen).total_seconds()
        common = {
            "node": row.hostname,
            "alert_group": HEARTBEAT,
            "entity": f"agent:{row.id}",
            "identifier": heartbeat_identifier(row.id),
            "tenant_id": row.tenant_id,
            "agent_id": row.id,
            "source": EventSource.MONITOR,
            "attributes": {"last_seen_at": _stamp(row.last_seen_at)},
        }
        if silent > missed_after.total_seconds():
            what = "has never sent a heartbeat" if row.last_seen_at is None else "sent no heartbeat"
            events.append(
                Event(
                    **common,
                    summary=f"agent {row.hostname} {what} for {describe_age(silent)}",
                    severity=Severity.MAJOR,
                    occurrence_key=f"last_seen:{_stamp(row.last_seen_at)}",
                    occurred_at=now,
                )
            )
        else:
            events.append(
                Event(
                    **common,
                    summary=f"agent {row.hostname} sends heartbeats again",
                    type=EventType.RESOLUTION,
                    severity=Severity.CLEAR,
                )
            )
    return events


class RpoState(enum.StrEnum):
    """How a backup set stands against its RPO: at risk past half of it, overdue past all."""

    OK = "ok"
    AT_RISK = "at_risk"
    OVERDUE = "overdue"


def rpo_state(last_backup: datetime, rpo_seconds: int, now: datetime) -> RpoState:
    """Judge a set whose newest snapshot (or creation, if none) is at `last_backup`."""
    used = (now - last_backup).total_seconds()
    if used > rpo_seconds:
        return RpoState.OVERDUE
    if used > rpo_seconds / 2:
        return RpoState.AT_RISK
    return RpoState.OK


def overdue_identifier(backup_set_id: uuid.UUID) -> str:
    """The overdue alarm of one backup set."""
    return f"backup_set:{backup_set_id}|{OVERDUE}"


def check_backups_overdue(session: Session, now: datetime) -> list[Event]:
    """A problem for every enabled set of an active agent past its RPO, else a resolution.

    Sets that were disabled, or whose agent was retired, get a resolution:
    nobody expects backups of them any more.
    """
    snapshots = select(
        Snapshot.backup_set_id.label("backup_set_id"), Snapshot.finished_at.label("at")
    ).where(Snapshot.backup_set_id.is_not(None))
    # A job that found nothing changed wrote no snapshot, but the set is protected up to it.
    unchanged = select(Job.backup_set_id.label("backup_set_id"), Job.finished_at.label("at")).where(
        Job.backup_set_id.is_not(None),
        Job.state == JobState.UNCHANGED,
        Job.finished_at.is_not(None),
    )
    protected = union_all(snapshots, unchanged).subquery()
    newest = (
        select(protected.c.backup_set_id, func.max(protected.c.at).label("last"))
        .group_by(protected.c.backup_set_id)
        .subquery()
    )
    rows = session.execute(
        select(
            BackupSet.id,
            BackupSet.name,
            BackupSet.tenant_id,
            BackupSet.agent_id,
            BackupSet.rpo_target_seconds,
            BackupSet.enabled,
            BackupSet.created_at,
            Agent.hostname,
            Agent.retired_at,
            newest.c.last,
        )
        .join(Agent, Agent.id == BackupSet.agent_id)
        .outerjoin(newest, newest.c.backup_set_id == BackupSet.id)
        .order_by(BackupSet.id)
    )
    events: list[Event] = []
    for row in rows:
        last: datetime | None = row.last
        common = {
            "node": row.hostname,
            "alert_group": OVERDUE,
            "alert_key": row.name,
            "entity": f"agent:{row.agent_id}",
            "identifier": overdue_identifier(row.id),
            "tenant_id": row.tenant_id,
            "agent_id": row.agent_id,
            "source": EventSource.MONITOR,
            "attributes": {
                "backup_set_id": str(row.id),
                "rpo_seconds": str(row.rpo_target_seconds),
                "last_snapshot_at": _stamp(last),
            },
        }
        expected = row.enabled and row.retired_at is None
        judged_from = last or row.created_at
        state = rpo_state(judged_from, row.rpo_target_seconds, now)
        if expected and state == RpoState.OVERDUE:
            age = describe_age((now - judged_from).total_seconds())
            rpo = describe_age(row.rpo_target_seconds)
            detail = f"last backup {age} ago" if last is not None else f"no backup in {age}"
            events.append(
                Event(
                    **common,
                    summary=f"backup set {row.name} on {row.hostname} is overdue: "
                    f"{detail}, RPO {rpo}",
                    severity=Severity.MAJOR,
                    occurrence_key=f"last_snapshot:{_stamp(last)}",
                    occurred_at=now,
                )
            )
        else:
            why = "is within its RPO again" if expected else "is no longer protected"
            events.append(
                Event(
                    **common,
                    summary=f"backup set {row.name} on {row.hostname} {why}",
                    type=EventType.RESOLUTION,
                    severity=Severity.CLEAR,
                )
            )
    return events


def check_retired(session: Session) -> list[Event]:
    """Resolutions for the heartbeat alarms of retired agents (they are expected silent)."""
    rows = session.execute(
        select(Agent.id, Agent.tenant_id, Agent.hostname).where(Agent.retired_at.is_not(None))
    )
    return [
        Event(
            node=row.hostname,
            alert_group=HEARTBEAT,
            entity=f"agent:{row.id}",
            identifier=heartbeat_identifier(row.id),
            tenant_id=row.tenant_id,
            agent_id=row.id,
            source=EventSource.MONITOR,
            type=EventType.RESOLUTION,
            severity=Severity.CLEAR,
            summary=f"agent {row.hostname} was retired",
        )
        for row in rows
    ]


def check_gateway_paths(session: Session) -> list[Event]:
    """Per agent and gateway it lists: a problem while it reports that gateway unreachable.

    Agents report in each heartbeat whether they reach each gateway of their
    list; one gateway out of reach while another answers is a network path
    problem worth seeing before the last path fails.
    """
    events: list[Event] = []
    rows = session.execute(
        select(Agent.id, Agent.tenant_id, Agent.hostname, Agent.host_facts).where(
            Agent.retired_at.is_(None)
        )
    )
    for row in rows:
        gateways = (row.host_facts or {}).get("gateways") or {}
        if not isinstance(gateways, dict):
            continue
        for gateway, reachable in sorted(gateways.items()):
            events.append(
                Event(
                    node=row.hostname,
                    alert_group=GATEWAY_PATH,
                    alert_key=str(gateway),
                    entity=f"agent:{row.id}",
                    identifier=f"agent:{row.id}|{GATEWAY_PATH}|{gateway}"[:255],
                    tenant_id=row.tenant_id,
                    agent_id=row.id,
                    source=EventSource.MONITOR,
                    type=EventType.RESOLUTION if reachable else EventType.PROBLEM,
                    severity=Severity.CLEAR if reachable else Severity.MINOR,
                    summary=(
                        f"agent {row.hostname} reaches gateway {gateway} again"
                        if reachable
                        else f"agent {row.hostname} cannot reach gateway {gateway}"
                    ),
                    occurrence_key=None if reachable else "unreachable",
                )
            )
    return events


def run_agent_monitors(session: Session, now: datetime, config: MonitorSettings) -> int:
    """Run the agent monitors in the caller's transaction; returns how many alarms changed."""
    events = [
        *check_heartbeats(session, now, timedelta(seconds=config.heartbeat_missed_after)),
        *check_retired(session),
        *check_backups_overdue(session, now),
        *check_gateway_paths(session),
    ]
    return len(emit(session, events, now=now))


def agent_duty(config: MonitorSettings) -> Callable[[DutyContext], object]:
    """The leased duty running the agent monitors in one fenced transaction."""

    def run(context: DutyContext) -> object:
        with context.session() as session:
            return run_agent_monitors(session, context.now(session), config)

    return run
