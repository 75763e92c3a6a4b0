"""What the service knows about each protected server: its derived protection state, and why.

The state is computed from the catalog on every read (heartbeats, backup
sets, snapshots, jobs, silences), never stored, so it cannot drift from the
facts it is made of. Every function works in the caller's session: a
tenant-scoped session sees, counts and lists only its own tenant.

A backup set is *protected* while less than half its RPO has passed since
its last good snapshot, *at_risk* beyond half, and *unprotected* once the RPO
is breached or its last job failed. An agent takes the worst of its sets,
unless it is silent (unprotected), has no sets (not_configured), has every
set disabled (paused) or is in a maintenance window (maintenance).
"""

from __future__ import annotations

import base64
import binascii
import enum
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now, session_tenant
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.models import (
    FINAL_JOB_STATES,
    Agent,
    BackupSet,
    Job,
    JobState,
    Snapshot,
    Tenant,
)
from vaultwatch.catalog.soc_models import ServerNode
from vaultwatch.soc import silences

#: How often agents send a heartbeat by default (the agent configuration's `heartbeat`).
HEARTBEAT_INTERVAL = timedelta(seconds=60)
#: An agent that missed this many heartbeats is silent.
MISSED_HEARTBEATS = 3
SILENT_AFTER = HEARTBEAT_INTERVAL * MISSED_HEARTBEATS
#: A job not heard from for this long while running is stalled.
STALLED_AFTER = timedelta(minutes=5)
#: A server node not heard from for this long is down.
NODE_DOWN_AFTER = timedelta(minutes=2)
#: Beyond this fraction of the RPO used, a set is at risk.
AT_RISK_FRACTION = 0.5

MAX_PAGE = 500
_SCAN_BATCH = 500


class StatusNotFoundError(CatalogError):
    """No agent, job or backup set with this id (or it belongs to another tenant)."""

    http_status = 404


class ProtectionState(enum.StrEnum):
    """How safe a server's data is now, as customers and operators see it."""

    PROTECTED = "protected"
    AT_RISK = "at_risk"
    UNPROTECTED = "unprotected"
    NOT_CONFIGURED = "not_configured"
    PAUSED = "paused"
    MAINTENANCE = "maintenance"


class Reason(enum.StrEnum):
    """Why a state was chosen; each state has its own reasons."""

    WITHIN_RPO = "within_rpo"
    RPO_HALF_USED = "rpo_half_used"
    NO_SNAPSHOT_YET = "no_snapshot_yet"
    RPO_BREACHED = "rpo_breached"
    LAST_JOB_FAILED = "last_job_failed"
    AGENT_SILENT = "agent_silent"
    NO_BACKUP_SETS = "no_backup_sets"
    ALL_SETS_DISABLED = "all_sets_disabled"
    SET_DISABLED = "set_disabled"
    MAINTENANCE_WINDOW = "maintenance_window"


#: Worst first: an agent takes the state of its worst enabled set.
_SEVERITY = {
    ProtectionState.UNPROTECTED: 3,
    ProtectionState.AT_RISK: 2,
    ProtectionState.PROTECTED: 1,
}

ACTIVE_JOB_STATES = frozenset(set(JobState) - FINAL_JOB_STATES)


@dataclass(frozen=True)
class SnapshotInfo:
    """The summary of one snapshot in a vault."""

    id: uuid.UUID
    vault_snapshot_id: str
    backup_set_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    hostname: str
    paths: list[str]
    tags: list[str]
    started_at: datetime
    finished_at: datetime
    files_total: int
    bytes_total: int
    files_new: int
    files_changed: int
    bytes_added: int


@dataclass(frozen=True)
class SetStatus:
    """One backup set's protection: when it was last safe and how much of its RPO is used."""

    id: uuid.UUID
    name: str
    mode: str
    enabled: bool
    rpo_target_seconds: int
    state: ProtectionState
    reason: Reason
    detail: str
    last_good_snapshot: SnapshotInfo | None
    rpo_used: float | None
    last_job_id: uuid.UUID | None
    last_job_state: str | None
    last_job_finished_at: datetime | None
    last_job_error: str | None


@dataclass(frozen=True)
class AgentStatus:
    """One protected server: what it last said, and its derived state with the reason."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    hostname: str
    state: ProtectionState
    reason: Reason
    detail: str
    last_heartbeat_at: datetime | None
    version: str | None
    host_facts: dict[str, Any]
    free_disk_bytes: int | None
    gateway_reachable: bool | None
    enrolled_at: datetime
    backup_sets: list[SetStatus] = field(default_factory=list)


@dataclass(frozen=True)
class AgentPage:
    """One page of agents; `next_cursor` fetches the next (None on the last page)."""

    items: list[AgentStatus]
    next_cursor: str | None


@dataclass
class TenantSummary:
    """One tenant's agents counted by state."""

    tenant_id: uuid.UUID
    tenant_name: str
    agents: int
    states: dict[str, int]
    suspended: bool = False
    """The tenant is suspended: its agents' uploads are refused until it is resumed."""
    suspension_reason: str | None = None


@dataclass(frozen=True)
class FleetSummary:
    """Every agent the session can see, counted by state, in total and per tenant."""

    at: datetime
    agents: int
    states: dict[str, int]
    tenants: list[TenantSummary]
    running_jobs: int
    nodes: int | None
    nodes_down: int | None


@dataclass(frozen=True)
class JobInfo:
    """A job and its progress: what it does, how far it is, how fast, and what went wrong."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    hostname: str
    backup_set_id: uuid.UUID | None
    backup_set: str | None
    kind: str
    state: str
    phase: str | None
    current_file: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    bytes_done: int
    bytes_total: int | None
    files_done: int
    files_total: int | None
    percent: float | None
    rate_bytes_per_second: float | None
    eta_seconds: int | None
    resumed_bytes: int | None
    stalled: bool
    error_count: int
    errors: list[str]
    snapshot_id: uuid.UUID | None


@dataclass(frozen=True)
class NodeInfo:
    """A server node and its latest health."""

    id: uuid.UUID
    name: str
    site: str
    roles: list[str]
    url: str | None
    version: str | None
    started_at: datetime | None
    last_seen_at: datetime | None
    up: bool
    health: dict[str, Any]


# -- maintenance -------------------------------------------------------------------------------


def agent_alarm_fields(agent: Any) -> dict[str, str]:
    """The alarm fields every alarm about this agent (with id, hostname, tenant_id) carries."""
    return {
        "node": agent.hostname,
        "entity": f"agent:{agent.id}",
        "tenant_id": str(agent.tenant_id),
    }


def agents_in_maintenance(session: Session, agents: Sequence[Any], now: datetime) -> set[uuid.UUID]:
    """The agents a silence or maintenance window in force covers as a whole.

    A silence covers an agent when it would mute any alarm about it: its
    matchers hold on the agent's node (hostname), entity (``agent:<id>``) and
    tenant alone. A silence that also needs an alert group mutes some of the
    agent's alarms, not the agent. Recurring windows count only during an
    occurrence.
    """
    if not agents:
        return set()
    active = silences.active_silences(session, now)
    if not active:
        return set()
    return {
        agent.id
        for agent in agents
        if any(silence.matches(agent_alarm_fields(agent)) for silence in active)
    }


# -- derivation --------------------------------------------------------------------------------


def _snapshot_info(row: Any) -> SnapshotInfo:
    """A snapshot summary from an ORM row or a row of `_SNAPSHOT_COLUMNS`."""
    return SnapshotInfo(
        id=row.id,
        vault_snapshot_id=row.vault_snapshot_id,
        backup_set_id=row.backup_set_id,
        agent_id=row.agent_id,
        hostname=row.hostname,
        paths=list(row.paths),
        tags=list(row.tags),
        started_at=row.started_at,
        finished_at=row.finished_at,
        files_total=row.files_total,
        bytes_total=row.bytes_total,
        files_new=row.files_new,
        files_changed=row.files_changed,
        bytes_added=row.bytes_added,
    )


#: Columns read instead of ORM objects: loading objects cost 4 of 5 seconds for 5000 agents.
_SNAPSHOT_COLUMNS = tuple(getattr(Snapshot, name) for name in SnapshotInfo.__dataclass_fields__)
_SET_COLUMNS = (
    BackupSet.id,
    BackupSet.agent_id,
    BackupSet.name,
    BackupSet.mode,
    BackupSet.enabled,
    BackupSet.rpo_target_seconds,
    BackupSet.created_at,
)
_JOB_COLUMNS = (Job.id, Job.backup_set_id, Job.state, Job.finished_at, Job.errors)
_AGENT_COLUMNS = (
    Agent.id,
    Agent.tenant_id,
    Agent.hostname,
    Agent.last_seen_at,
    Agent.version,
    Agent.host_facts,
    Agent.free_disk_bytes,
    Agent.gateway_reachable,
    Agent.enrolled_at,
)


def _latest_snapshots(session: Session, set_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    if not set_ids:
        return {}
    newest = (
        select(Snapshot.backup_set_id, func.max(Snapshot.finished_at).label("at"))
        .where(Snapshot.backup_set_id.in_(set_ids))
        .group_by(Snapshot.backup_set_id)
        .subquery()
    )
    rows = session.execute(
        select(*_SNAPSHOT_COLUMNS)
        .join(
            newest,
            (Snapshot.backup_set_id == newest.c.backup_set_id)
            & (Snapshot.finished_at == newest.c.at),
        )
        .order_by(Snapshot.id)
    )
    return {row.backup_set_id: row for row in rows if row.backup_set_id is not None}


def _latest_final_jobs(session: Session, set_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    if not set_ids:
        return {}
    newest = (
        select(Job.backup_set_id, func.max(Job.finished_at).label("at"))
        .where(Job.backup_set_id.in_(set_ids), Job.state.in_(list(FINAL_JOB_STATES)))
        .where(Job.state != JobState.CANCELLED)
        .group_by(Job.backup_set_id)
        .subquery()
    )
    rows = session.execute(
        select(*_JOB_COLUMNS)
        .join(
            newest,
            (Job.backup_set_id == newest.c.backup_set_id) & (Job.finished_at == newest.c.at),
        )
        .order_by(Job.id)
    )
    return {row.backup_set_id: row for row in rows if row.backup_set_id is not None}


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _set_status(bs: Any, snapshot: Any | None, job: Any | None, now: datetime) -> SetStatus:
    """One set's state from rows of `_SET_COLUMNS`, `_SNAPSHOT_COLUMNS` and `_JOB_COLUMNS`."""
    rpo = bs.rpo_target_seconds
    since = snapshot.finished_at if snapshot is not None else bs.created_at
    used = max(0.0, (now - since).total_seconds()) / rpo
    failed = job is not None and job.state == JobState.FAILED
    last_error = (job.errors[-1] if job is not None and job.errors else None) if failed else None
    state: ProtectionState
    if not bs.enabled:
        state, reason, detail = ProtectionState.PAUSED, Reason.SET_DISABLED, "backup set disabled"
    elif failed:
        state, reason = ProtectionState.UNPROTECTED, Reason.LAST_JOB_FAILED
        detail = "the last backup failed" + (f": {last_error}" if last_error else "")
    elif used > 1:
        state, reason = ProtectionState.UNPROTECTED, Reason.RPO_BREACHED
        what = "no snapshot" if snapshot is None else "last good snapshot"
        detail = f"RPO of {_ago(rpo)} breached: {what} for {_ago((now - since).total_seconds())}"
    elif snapshot is None:
        state, reason = ProtectionState.AT_RISK, Reason.NO_SNAPSHOT_YET
        detail = f"no snapshot yet ({used:.0%} of the RPO used)"
    elif used > AT_RISK_FRACTION:
        state, reason = ProtectionState.AT_RISK, Reason.RPO_HALF_USED
        detail = f"{used:.0%} of the {_ago(rpo)} RPO used since the last good snapshot"
    else:
        state, reason = ProtectionState.PROTECTED, Reason.WITHIN_RPO
        detail = f"{used:.0%} of the {_ago(rpo)} RPO used"
    return SetStatus(
        id=bs.id,
        name=bs.name,
        mode=bs.mode.value,
        enabled=bs.enabled,
        rpo_target_seconds=rpo,
        state=state,
        reason=reason,
        detail=detail,
        last_good_snapshot=_snapshot_info(snapshot) if snapshot is not None else None,
        rpo_used=round(used, 4),
        last_job_id=job.id if job is not None else None,
        last_job_state=job.state.value if job is not None else None,
        last_job_finished_at=job.finished_at if job is not None else None,
        last_job_error=last_error,
    )


def _agent_state(
    agent: Any, sets: list[SetStatus], maintenance: bool, now: datetime, silent_after: timedelta
) -> tuple[ProtectionState, Reason, str]:
    if maintenance:
        return ProtectionState.MAINTENANCE, Reason.MAINTENANCE_WINDOW, "in a maintenance window"
    if not sets:
        return ProtectionState.NOT_CONFIGURED, Reason.NO_BACKUP_SETS, "no backup sets"
    enabled = [s for s in sets if s.enabled]
    if not enabled:
        return ProtectionState.PAUSED, Reason.ALL_SETS_DISABLED, "every backup set is disabled"
    if agent.last_seen_at is None or agent.last_seen_at < now - silent_after:
        detail = (
            "never sent a heartbeat"
            if agent.last_seen_at is None
            else f"no heartbeat for {_ago((now - agent.last_seen_at).total_seconds())}"
        )
        return ProtectionState.UNPROTECTED, Reason.AGENT_SILENT, detail
    worst = max(enabled, key=lambda s: (_SEVERITY[s.state], s.rpo_used or 0.0))
    prefix = (
        f"{worst.name}: " if len(enabled) > 1 or worst.state != ProtectionState.PROTECTED else ""
    )
    if worst.state == ProtectionState.PROTECTED and len(enabled) > 1:
        return worst.state, worst.reason, f"all {len(enabled)} backup sets within their RPO"
    return worst.state, worst.reason, prefix + worst.detail


def _statuses(
    session: Session,
    agents: Sequence[Any],
    now: datetime,
    *,
    silent_after: timedelta,
    maintenance: set[uuid.UUID] | None,
) -> list[AgentStatus]:
    """Derive the status of `agents` (ORM rows or rows of `_AGENT_COLUMNS`) in five queries."""
    if not agents:
        return []
    ids = [a.id for a in agents]
    sets_by_agent: dict[uuid.UUID, list[Any]] = {i: [] for i in ids}
    for bs in session.execute(
        select(*_SET_COLUMNS).where(BackupSet.agent_id.in_(ids)).order_by(BackupSet.name)
    ):
        sets_by_agent[bs.agent_id].append(bs)
    set_ids = [bs.id for group in sets_by_agent.values() for bs in group]
    snapshots = _latest_snapshots(session, set_ids)
    jobs = _latest_final_jobs(session, set_ids)
    tenant_ids = {a.tenant_id for a in agents}
    names = {
        tid: name
        for tid, name in session.execute(
            select(Tenant.id, Tenant.name).where(Tenant.id.in_(tenant_ids))
        )
    }
    covered = (
        maintenance if maintenance is not None else agents_in_maintenance(session, agents, now)
    )
    out: list[AgentStatus] = []
    for agent in agents:
        sets = [
            _set_status(bs, snapshots.get(bs.id), jobs.get(bs.id), now)
            for bs in sets_by_agent[agent.id]
        ]
        state, reason, detail = _agent_state(agent, sets, agent.id in covered, now, silent_after)
        out.append(
            AgentStatus(
                id=agent.id,
                tenant_id=agent.tenant_id,
                tenant_name=names.get(agent.tenant_id, ""),
                hostname=agent.hostname,
                state=state,
                reason=reason,
                detail=detail,
                last_heartbeat_at=agent.last_seen_at,
                version=agent.version,
                host_facts=dict(agent.host_facts or {}),
                free_disk_bytes=agent.free_disk_bytes,
                gateway_reachable=agent.gateway_reachable,
                enrolled_at=agent.enrolled_at,
                backup_sets=sets,
            )
        )
    return out


def agent_status(
    session: Session,
    agent_id: uuid.UUID,
    *,
    now: datetime | None = None,
    silent_after: timedelta = SILENT_AFTER,
    maintenance: set[uuid.UUID] | None = None,
) -> AgentStatus:
    """One agent's status with its backup sets (404 for another tenant's agent)."""
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise StatusNotFoundError(f"no agent {agent_id}")
    now = now or database_now(session)
    return _statuses(session, [agent], now, silent_after=silent_after, maintenance=maintenance)[0]


# -- listing -----------------------------------------------------------------------------------


def encode_cursor(agent: AgentStatus) -> str:
    """An opaque position after `agent` in the (hostname, id) order."""
    raw = f"{agent.hostname}\x00{agent.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    """The position a cursor names; ValidationError for anything not made by `encode_cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        hostname, _, agent_id = raw.partition("\x00")
        return hostname, uuid.UUID(agent_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("invalid cursor") from None


def _iter_statuses(
    session: Session,
    now: datetime,
    *,
    tenant_id: uuid.UUID | None,
    after: tuple[str, uuid.UUID] | None,
    silent_after: timedelta,
    maintenance: set[uuid.UUID] | None,
    batch_size: int = _SCAN_BATCH,
) -> Iterator[AgentStatus]:
    """Every active agent's status in (hostname, id) order, derived a batch at a time."""
    position = after
    while True:
        statement = select(*_AGENT_COLUMNS).where(Agent.retired_at.is_(None))
        if tenant_id is not None:
            statement = statement.where(Agent.tenant_id == tenant_id)
        if position is not None:
            statement = statement.where(
                tuple_(Agent.hostname, Agent.id) > tuple_(position[0], position[1])
            )
        batch = list(
            session.execute(statement.order_by(Agent.hostname, Agent.id).limit(batch_size))
        )
        if not batch:
            return
        yield from _statuses(
            session, batch, now, silent_after=silent_after, maintenance=maintenance
        )
        position = (batch[-1].hostname, batch[-1].id)
        if len(batch) < batch_size:
            return


def list_agent_status(
    session: Session,
    *,
    state: ProtectionState | None = None,
    tenant_id: uuid.UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
    offset: int = 0,
    now: datetime | None = None,
    silent_after: timedelta = SILENT_AFTER,
    maintenance: set[uuid.UUID] | None = None,
) -> AgentPage:
    """A page of agents (hostname order), optionally of one state and tenant.

    The state is derived, so a state filter scans agents in batches until the
    page is full; memory stays bounded by the batch size either way.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise ValidationError("offset must not be negative")
    if cursor is not None and offset:
        raise ValidationError("give either a cursor or an offset, not both")
    after = decode_cursor(cursor) if cursor else None
    now = now or database_now(session)
    items: list[AgentStatus] = []
    skipped = 0
    more = False
    for status in _iter_statuses(
        session,
        now,
        tenant_id=tenant_id,
        after=after,
        silent_after=silent_after,
        maintenance=maintenance,
        # Without a state filter the page's size is known: read no more agents than it needs.
        batch_size=_SCAN_BATCH if state is not None else min(_SCAN_BATCH, offset + limit + 1),
    ):
        if state is not None and status.state != state:
            continue
        if skipped < offset:
            skipped += 1
            continue
        if len(items) == limit:
            more = True
            break
        items.append(status)
    return AgentPage(items, encode_cursor(items[-1]) if more and items else None)


def fleet_summary(
    session: Session,
    *,
    now: datetime | None = None,
    silent_after: timedelta = SILENT_AFTER,
    maintenance: set[uuid.UUID] | None = None,
) -> FleetSummary:
    """Every visible agent counted by state, in total and per tenant (tenants by name)."""
    now = now or database_now(session)
    totals = {s.value: 0 for s in ProtectionState}
    per_tenant: dict[uuid.UUID, TenantSummary] = {}
    # Deleted tenants (their agents are retired) are not part of the active fleet.
    live_tenants = select(Tenant.id, Tenant.name, Tenant.suspended_at, Tenant.suspension_reason)
    for tid, name, suspended_at, reason in session.execute(
        live_tenants.where(Tenant.deleted_at.is_(None))
    ):
        per_tenant[tid] = TenantSummary(
            tid, name, 0, {s.value: 0 for s in ProtectionState}, suspended_at is not None, reason
        )
    count = 0
    for status in _iter_statuses(
        session,
        now,
        tenant_id=None,
        after=None,
        silent_after=silent_after,
        maintenance=maintenance,
    ):
        count += 1
        totals[status.state.value] += 1
        entry = per_tenant.get(status.tenant_id)
        if entry is None:
            entry = per_tenant[status.tenant_id] = TenantSummary(
                status.tenant_id, status.tenant_name, 0, {s.value: 0 for s in ProtectionState}
            )
        entry.states[status.state.value] += 1
        entry.agents += 1
    running = session.scalar(
        select(func.count()).select_from(Job).where(Job.state.in_(list(ACTIVE_JOB_STATES)))
    )
    # Server nodes are the service's own machines: a customer's view does not count them.
    nodes = list_nodes(session, now=now) if session_tenant(session) is None else None
    return FleetSummary(
        at=now,
        agents=count,
        states=totals,
        tenants=sorted(per_tenant.values(), key=lambda t: (t.tenant_name.lower(), t.tenant_id)),
        running_jobs=int(running or 0),
        nodes=len(nodes) if nodes is not None else None,
        nodes_down=sum(1 for n in nodes if not n.up) if nodes is not None else None,
    )


# -- jobs, snapshots, nodes --------------------------------------------------------------------


def _job_info(job: Job, hostname: str, set_name: str | None, now: datetime) -> JobInfo:
    percent: float | None = None
    if job.bytes_total:
        percent = round(min(100.0, 100.0 * job.bytes_done / job.bytes_total), 1)
    elif job.files_total:
        percent = round(min(100.0, 100.0 * job.files_done / job.files_total), 1)
    active = job.state in ACTIVE_JOB_STATES
    return JobInfo(
        id=job.id,
        tenant_id=job.tenant_id,
        agent_id=job.agent_id,
        hostname=hostname,
        backup_set_id=job.backup_set_id,
        backup_set=set_name,
        kind=job.kind.value,
        state=job.state.value,
        phase=job.phase,
        current_file=job.current_file if active else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
        bytes_done=job.bytes_done,
        bytes_total=job.bytes_total,
        files_done=job.files_done,
        files_total=job.files_total,
        percent=percent,
        rate_bytes_per_second=job.rate_bytes_per_second,
        eta_seconds=job.eta_seconds,
        resumed_bytes=job.resumed_bytes,
        stalled=(
            job.state == JobState.RUNNING
            and job.updated_at is not None
            and job.updated_at < now - STALLED_AFTER
        ),
        error_count=job.error_count,
        errors=list(job.errors),
        snapshot_id=job.snapshot_id,
    )


def list_jobs(
    session: Session,
    *,
    running: bool = False,
    agent_id: uuid.UUID | None = None,
    backup_set_id: uuid.UUID | None = None,
    limit: int = 50,
    now: datetime | None = None,
) -> list[JobInfo]:
    """Jobs, newest first; with `running`, only those not finished (queued, running, waiting)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
    now = now or database_now(session)
    statement = (
        select(Job, Agent.hostname, BackupSet.name)
        .join(Agent, Agent.id == Job.agent_id)
        .outerjoin(BackupSet, BackupSet.id == Job.backup_set_id)
    )
    if running:
        statement = statement.where(Job.state.in_(list(ACTIVE_JOB_STATES)))
    if agent_id is not None:
        statement = statement.where(Job.agent_id == agent_id)
    if backup_set_id is not None:
        statement = statement.where(Job.backup_set_id == backup_set_id)
    rows = session.execute(statement.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit))
    return [_job_info(job, hostname, set_name, now) for job, hostname, set_name in rows]


def job_detail(session: Session, job_id: uuid.UUID, *, now: datetime | None = None) -> JobInfo:
    """One job with its progress and errors (404 for another tenant's job)."""
    row = session.execute(
        select(Job, Agent.hostname, BackupSet.name)
        .join(Agent, Agent.id == Job.agent_id)
        .outerjoin(BackupSet, BackupSet.id == Job.backup_set_id)
        .where(Job.id == job_id)
    ).first()
    if row is None:
        raise StatusNotFoundError(f"no job {job_id}")
    job, hostname, set_name = row
    return _job_info(job, hostname, set_name, now or database_now(session))


def list_snapshots(
    session: Session, backup_set_id: uuid.UUID, *, limit: int = 100
) -> list[SnapshotInfo]:
    """A backup set's snapshots, newest first (404 for another tenant's set)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
    if session.get(BackupSet, backup_set_id) is None:
        raise StatusNotFoundError(f"no backup set {backup_set_id}")
    rows = session.scalars(
        select(Snapshot)
        .where(Snapshot.backup_set_id == backup_set_id)
        .order_by(Snapshot.finished_at.desc(), Snapshot.id)
        .limit(limit)
    )
    return [_snapshot_info(row) for row in rows]


def list_nodes(
    session: Session, *, now: datetime | None = None, down_after: timedelta = NODE_DOWN_AFTER
) -> list[NodeInfo]:
    """The service's server nodes by site and name; `up` means heard from within `down_after`."""
    now = now or database_now(session)
    rows = session.scalars(select(ServerNode).order_by(ServerNode.site, ServerNode.name))
    return [
        NodeInfo(
            id=node.id,
            name=node.name,
            site=node.site,
            roles=list(node.roles),
            url=node.url,
            version=node.version,
            started_at=node.started_at,
            last_seen_at=node.last_seen_at,
            up=node.last_seen_at is not None and node.last_seen_at >= now - down_after,
            health=dict(node.health or {}),
        )
        for node in rows
    ]


__all__ = [
    "AgentPage",
    "AgentStatus",
    "FleetSummary",
    "JobInfo",
    "NodeInfo",
    "ProtectionState",
    "Reason",
    "SetStatus",
    "SnapshotInfo",
    "StatusNotFoundError",
    "TenantSummary",
    "agent_alarm_fields",
    "agent_status",
    "agents_in_maintenance",
    "fleet_summary",
    "job_detail",
    "list_agent_status",
    "list_jobs",
    "list_nodes",
    "list_snapshots",
]
