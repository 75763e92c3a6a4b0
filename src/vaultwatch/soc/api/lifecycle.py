"""The managed service's lifecycle over HTTP: enrollment tokens, agents, tenants.

Parse, authorize, call the catalog's lifecycle functions, render. Tokens and
agents may be managed by an administrator, a SOC supervisor, or a customer
admin for their own tenant (their session sees nothing else, so another
tenant's ids are 404). Suspending, resuming, deleting and undeleting a
tenant is for administrators only. Every action lands in the audit log as
the key's user.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from vaultwatch.catalog import Role
from vaultwatch.catalog.agent_lifecycle import find_agent, retire_agent
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.enrollment import (
    list_enrollment_tokens,
    revoke_agent_credentials,
    revoke_enrollment_token,
    token_state,
)
from vaultwatch.catalog.models import Agent, EnrollmentToken, Tenant
from vaultwatch.catalog.tenant_lifecycle import (
    DEFAULT_DELETION_GRACE,
    MAX_DELETION_GRACE,
    MAX_REASON_LENGTH,
    delete_tenant,
    resume_tenant,
    suspend_tenant,
    tenant_state,
    undelete_tenant,
)
from vaultwatch.catalog.tenants import get_tenant, list_tenants
from vaultwatch.soc.api.auth import Caller, CatalogDep, scoped_session
from vaultwatch.soc.apikeys import Principal

router = APIRouter(tags=["lifecycle"])

MANAGERS = (Role.ADMINISTRATOR, Role.SOC_SUPERVISOR, Role.CUSTOMER_ADMIN)


class TokenOut(BaseModel):
    """An enrollment token, named by its prefix (the secret is not kept)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    prefix: str
    state: str
    note: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    agent_id: uuid.UUID | None

    @classmethod
    def of(cls, token: EnrollmentToken, now: datetime) -> TokenOut:
        """The API form of a token row."""
        return cls(
            id=token.id,
            tenant_id=token.tenant_id,
            prefix=token.prefix,
            state=token_state(token, now),
            note=token.note,
            created_by=token.created_by,
            created_at=token.created_at,
            expires_at=token.expires_at,
            used_at=token.used_at,
            revoked_at=token.revoked_at,
            agent_id=token.agent_id,
        )


class AgentLifecycleOut(BaseModel):
    """An agent after a lifecycle action."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    hostname: str
    retired_at: datetime | None
    credentials_revoked: int | None
    """How many credentials this action revoked (for a revocation)."""


class TenantOut(BaseModel):
    """A tenant and where it is in its life."""

    id: uuid.UUID
    name: str
    state: str
    created_at: datetime
    suspended_at: datetime | None
    suspension_reason: str | None
    deleted_at: datetime | None
    purge_after: datetime | None
    purged_at: datetime | None

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        """The API form of a tenant row."""
        return cls(
            id=tenant.id,
            name=tenant.name,
            state=tenant_state(tenant),
            created_at=tenant.created_at,
            suspended_at=tenant.suspended_at,
            suspension_reason=tenant.suspension_reason,
            deleted_at=tenant.deleted_at,
            purge_after=tenant.purge_after,
            purged_at=tenant.purged_at,
        )


class SuspendIn(BaseModel):
    """Why the tenant is suspended (shown to the SOC and in the audit log)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=MAX_REASON_LENGTH)


def _manager(principal: Principal) -> Principal:
    principal.require(*MANAGERS)
    return principal


def _administrator(principal: Principal) -> Principal:
    principal.require(Role.ADMINISTRATOR)
    return principal


# -- enrollment tokens --------------------------------------------------------------------------


@router.get("/enrollment-tokens", response_model=list[TokenOut], summary="Enrollment tokens")
def get_tokens(
    principal: Caller,
    catalog: CatalogDep,
    tenant: uuid.UUID | None = None,
    include_finished: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TokenOut]:
    """Tokens that can still enroll a server (all, used, revoked and expired ones too, with `include_finished`)."""
    with scoped_session(catalog, _manager(principal)) as session:
        now = database_now(session)
        rows = list_enrollment_tokens(
            session, tenant_id=tenant, include_finished=include_finished, now=now, limit=limit
        )
        return [TokenOut.of(t, now) for t in rows]


@router.post(
    "/enrollment-tokens/{token_ref}/revoke",
    response_model=TokenOut,
    summary="Revoke an enrollment token",
)
def revoke_token(token_ref: str, principal: Caller, catalog: CatalogDep) -> TokenOut:
    """Nobody can enroll with the token any more (by id or prefix; a used token is 409)."""
    with scoped_session(catalog, _manager(principal)) as session:
        token = revoke_enrollment_token(session, token_ref, actor=principal.actor)
        return TokenOut.of(token, database_now(session))


# -- agents ------------------------------------------------------------------------------------


def _agent_out(agent: Agent, revoked: int | None) -> AgentLifecycleOut:
    return AgentLifecycleOut(
        id=agent.id,
        tenant_id=agent.tenant_id,
        hostname=agent.hostname,
        retired_at=agent.retired_at,
        credentials_revoked=revoked,
    )


@router.post(
    "/agents/{agent_id}/credentials/revoke",
    response_model=AgentLifecycleOut,
    summary="Revoke an agent's credentials",
)
def revoke_credentials(
    agent_id: uuid.UUID, principal: Caller, catalog: CatalogDep
) -> AgentLifecycleOut:
    """Every credential of the agent stops working at once (401 "revoked"); it must enroll again."""
    with scoped_session(catalog, _manager(principal)) as session:
        agent = find_agent(session, str(agent_id))
        revoked = revoke_agent_credentials(session, agent.id, actor=principal.actor)
        return _agent_out(agent, revoked)


@router.post("/agents/{agent_id}/retire", response_model=AgentLifecycleOut, summary="Retire")
def retire(agent_id: uuid.UUID, principal: Caller, catalog: CatalogDep) -> AgentLifecycleOut:
    """The server leaves the fleet: credentials revoked, monitors stop, snapshots kept."""
    with scoped_session(catalog, _manager(principal)) as session:
        agent = find_agent(session, str(agent_id))
        return _agent_out(retire_agent(session, agent.id, actor=principal.actor), None)


# -- tenants -----------------------------------------------------------------------------------


@router.get("/tenants", response_model=list[TenantOut], summary="Tenants and their state")
def get_tenants(principal: Caller, catalog: CatalogDep) -> list[TenantOut]:
    """Every tenant with its state (a customer's key sees its own)."""
    with scoped_session(catalog, principal) as session:
        return [TenantOut.of(t) for t in list_tenants(session)]


@router.get("/tenants/{tenant_id}", response_model=TenantOut, summary="One tenant")
def get_one_tenant(tenant_id: uuid.UUID, principal: Caller, catalog: CatalogDep) -> TenantOut:
    """The tenant and its state."""
    with scoped_session(catalog, principal) as session:
        return TenantOut.of(get_tenant(session, tenant_id))


@router.post("/tenants/{tenant_id}/suspend", response_model=TenantOut, summary="Suspend")
def suspend(
    tenant_id: uuid.UUID, body: SuspendIn, principal: Caller, catalog: CatalogDep
) -> TenantOut:
    """Refuse the tenant's uploads and enrollments until resumed (reads still work)."""
    with catalog.session() as session:
        tenant = suspend_tenant(
            session, tenant_id, actor=_administrator(principal).actor, reason=body.reason
        )
        return TenantOut.of(tenant)


@router.post("/tenants/{tenant_id}/resume", response_model=TenantOut, summary="Resume")
def resume(tenant_id: uuid.UUID, principal: Caller, catalog: CatalogDep) -> TenantOut:
    """Lift the suspension."""
    with catalog.session() as session:
        return TenantOut.of(
            resume_tenant(session, tenant_id, actor=_administrator(principal).actor)
        )


@router.delete("/tenants/{tenant_id}", response_model=TenantOut, summary="Delete a tenant")
def delete(
    tenant_id: uuid.UUID,
    principal: Caller,
    catalog: CatalogDep,
    grace_days: Annotated[int, Query(ge=0, le=MAX_DELETION_GRACE.days)] = (
        DEFAULT_DELETION_GRACE.days
    ),
) -> TenantOut:
    """Retire its agents and disable its users now; its data is purged after `grace_days`."""
    with catalog.session() as session:
        tenant = delete_tenant(
            session,
            tenant_id,
            actor=_administrator(principal).actor,
            grace=timedelta(days=grace_days),
        )
        return TenantOut.of(tenant)


@router.post("/tenants/{tenant_id}/undelete", response_model=TenantOut, summary="Undelete")
def undelete(tenant_id: uuid.UUID, principal: Caller, catalog: CatalogDep) -> TenantOut:
    """Take a deletion back within its grace period: agents and users return."""
    with catalog.session() as session:
        return TenantOut.of(
            undelete_tenant(session, tenant_id, actor=_administrator(principal).actor)
        )
