"""One tenant's or one agent's whole picture, for the console's fleet drill-downs.

Each view is composed from the status, alarm and incident queries in the
caller's session, so a tenant-scoped session would see only its own data;
nothing here is stored or derived twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from vaultwatch.catalog.models import Tenant
from vaultwatch.catalog.soc_models import Alarm, Incident
from vaultwatch.soc import alarm_list, incidents, status
from vaultwatch.soc.status import AgentStatus, JobInfo, SnapshotInfo, StatusNotFoundError

MAX_AGENTS = status.MAX_PAGE
MAX_ALARMS = 200
MAX_INCIDENTS = 50
RECENT_JOBS = 20
RECENT_SNAPSHOTS = 5


@dataclass(frozen=True)
class TenantView:
    """A tenant's agents with their state, its open alarms and its incidents."""

    tenant_id: uuid.UUID
    name: str
    agents: list[AgentStatus]
    states: dict[str, int]
    alarms: list[Alarm]
    incidents: list[Incident]


@dataclass(frozen=True)
class AgentView:
    """An agent's status and sets, each set's last snapshots, its recent jobs and open alarms."""

    status: AgentStatus
    snapshots: dict[uuid.UUID, list[SnapshotInfo]]
    jobs: list[JobInfo]
    alarms: list[Alarm]


def tenant_view(session: Session, tenant_id: uuid.UUID) -> TenantView:
    """The tenant's page (404 for an unknown tenant)."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise StatusNotFoundError(f"no tenant {tenant_id}")
    agents = status.list_agent_status(session, tenant_id=tenant_id, limit=MAX_AGENTS).items
    states = {s.value: 0 for s in status.ProtectionState}
    for agent in agents:
        states[agent.state.value] += 1
    alarms = alarm_list.list_alarms(
        session, alarm_list.AlarmFilter(tenant_id=tenant_id), limit=MAX_ALARMS
    ).items
    found = incidents.list_incidents(session, tenant_id=tenant_id, limit=MAX_INCIDENTS)
    return TenantView(tenant.id, tenant.name, agents, states, alarms, found)


def agent_alarms(session: Session, agent_id: uuid.UUID, *, limit: int = MAX_ALARMS) -> list[Alarm]:
    """The agent's open alarms (by agent id or its topology entity), worst and newest first."""
    return list(
        session.scalars(
            select(Alarm)
            .where(
                Alarm.cleared_at.is_(None),
                or_(Alarm.agent_id == agent_id, Alarm.entity == f"agent:{agent_id}"),
            )
            .order_by(Alarm.severity.desc(), Alarm.last_occurrence.desc(), Alarm.id.desc())
            .limit(limit)
        )
    )


def agent_view(session: Session, agent_id: uuid.UUID) -> AgentView:
    """The agent's page (404 for an unknown agent)."""
    agent = status.agent_status(session, agent_id)
    snapshots = {
        bs.id: status.list_snapshots(session, bs.id, limit=RECENT_SNAPSHOTS)
        for bs in agent.backup_sets
    }
    jobs = status.list_jobs(session, agent_id=agent_id, limit=RECENT_JOBS)
    return AgentView(agent, snapshots, jobs, agent_alarms(session, agent_id))
