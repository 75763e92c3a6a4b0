"""What the service knows, over HTTP: fleet summary, agents, jobs, snapshots and server nodes.

Handlers parse, open a session scoped by the caller's key (customers see
only their tenant; another tenant's ids are 404, never 403) and call
`vaultwatch.soc.status`. Server nodes are the service's own machines: staff only.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from vaultwatch.soc import status
from vaultwatch.soc.api.auth import Caller, CatalogDep, Staff, scoped_session

router = APIRouter(tags=["status"])


@router.get("/status", response_model=status.FleetSummary, summary="Fleet summary")
def get_status(principal: Caller, catalog: CatalogDep) -> status.FleetSummary:
    """Agents counted by protection state, in total and per tenant; running jobs; nodes."""
    with scoped_session(catalog, principal) as session:
        return status.fleet_summary(session)


@router.get("/agents", response_model=status.AgentPage, summary="Protected servers")
def list_agents(
    principal: Caller,
    catalog: CatalogDep,
    state: status.ProtectionState | None = None,
    tenant: Annotated[uuid.UUID | None, Query(alias="tenant")] = None,
    limit: Annotated[int, Query(ge=1, le=status.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> status.AgentPage:
    """Agents in hostname order with their state and reason; follow `next_cursor` for more."""
    with scoped_session(catalog, principal) as session:
        return status.list_agent_status(
            session, state=state, tenant_id=tenant, limit=limit, cursor=cursor, offset=offset
        )


@router.get("/agents/{agent_id}", response_model=status.AgentStatus, summary="One server")
def get_agent(agent_id: uuid.UUID, principal: Caller, catalog: CatalogDep) -> status.AgentStatus:
    """One agent: heartbeat, version, host facts, and each backup set's protection."""
    with scoped_session(catalog, principal) as session:
        return status.agent_status(session, agent_id)


@router.get("/jobs", response_model=list[status.JobInfo], summary="Jobs and their progress")
def list_jobs(
    principal: Caller,
    catalog: CatalogDep,
    running: bool = False,
    agent_id: uuid.UUID | None = None,
    backup_set_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=status.MAX_PAGE)] = 50,
) -> list[status.JobInfo]:
    """Jobs newest first; `running=true` for those not finished, with phase, rate and ETA."""
    with scoped_session(catalog, principal) as session:
        return status.list_jobs(
            session, running=running, agent_id=agent_id, backup_set_id=backup_set_id, limit=limit
        )


@router.get("/jobs/{job_id}", response_model=status.JobInfo, summary="One job")
def get_job(job_id: uuid.UUID, principal: Caller, catalog: CatalogDep) -> status.JobInfo:
    """One job with its progress, result and errors."""
    with scoped_session(catalog, principal) as session:
        return status.job_detail(session, job_id)


@router.get(
    "/backup-sets/{backup_set_id}/snapshots",
    response_model=list[status.SnapshotInfo],
    summary="A backup set's snapshots",
)
def get_snapshots(
    backup_set_id: uuid.UUID,
    principal: Caller,
    catalog: CatalogDep,
    limit: Annotated[int, Query(ge=1, le=status.MAX_PAGE)] = 100,
) -> list[status.SnapshotInfo]:
    """The set's snapshots, newest first."""
    with scoped_session(catalog, principal) as session:
        return status.list_snapshots(session, backup_set_id, limit=limit)


@router.get("/nodes", response_model=list[status.NodeInfo], summary="Server nodes")
def get_nodes(principal: Staff, catalog: CatalogDep) -> list[status.NodeInfo]:
    """Gateways, backup, web and worker nodes with their latest health."""
    with scoped_session(catalog, principal) as session:
        return status.list_nodes(session)
