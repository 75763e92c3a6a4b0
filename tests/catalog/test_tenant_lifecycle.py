"""Suspending, resuming, deleting, undeleting and purging a tenant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from vaultwatch.catalog import Agent, AuditEntry, Catalog, Role, User
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.enrollment import authenticate_agent, create_enrollment_token
from vaultwatch.catalog.errors import (
    TenantDeletedError,
    TenantStateError,
    TenantSuspendedError,
    ValidationError,
)
from vaultwatch.catalog.tenant_lifecycle import (
    begin_tenant_purge,
    delete_tenant,
    purge_tenant_records,
    resume_tenant,
    suspend_tenant,
    tenant_state,
    tenants_due_for_purge,
    undelete_tenant,
)
from vaultwatch.catalog.tenants import get_tenant
from vaultwatch.catalog.users import create_user

from .conftest import ACTOR, add_tenant, enroll


def _audited(catalog: Catalog, action: str) -> list[AuditEntry]:
    with catalog.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_a_suspended_tenant_authenticates_but_is_marked_and_enrolls_nobody(
    catalog: Catalog, key: bytes
) -> None:
    tenant = add_tenant(catalog, "Acme")
    enrolled = enroll(catalog, tenant, key)
    with catalog.session() as session:
        suspend_tenant(session, tenant.id, actor=ACTOR, reason="invoice  unpaid")
    with catalog.session() as session:
        checked = authenticate_agent(session, enrolled.credential, key=key)
        assert checked.suspended  # heartbeats and reads go on; the gateway refuses uploads
        assert tenant_state(get_tenant(session, tenant.id)) == "suspended"
        with pytest.raises(TenantSuspendedError):
            create_enrollment_token(session, tenant.id, key=key, created_by=ACTOR)
    (entry,) = _audited(catalog, "tenant.suspend")
    assert entry.details["reason"] == "invoice unpaid" and entry.actor == ACTOR
    with catalog.session() as session:
        resumed = resume_tenant(session, tenant.id, actor=ACTOR)
        assert resumed.suspended_at is None and resumed.suspension_reason is None
    with catalog.session() as session:
        assert not authenticate_agent(session, enrolled.credential, key=key).suspended
        with pytest.raises(TenantStateError, match="not suspended"):
            resume_tenant(session, tenant.id, actor=ACTOR)
        with pytest.raises(ValidationError):
            suspend_tenant(session, tenant.id, actor=ACTOR, reason="  ")
    assert len(_audited(catalog, "tenant.resume")) == 1


def test_deleting_retires_agents_and_disables_users_until_undeleted(
    catalog: Catalog, key: bytes
) -> None:
    tenant = add_tenant(catalog, "Acme")
    kept = enroll(catalog, tenant, key, hostname="srv1")
    earlier = enroll(catalog, tenant, key, hostname="old")
    with catalog.session() as session:
        agent = session.get(Agent, earlier.agent.id)
        assert agent is not None
        agent.retired_at = database_now(session) - timedelta(days=3)
        create_user(
            session,
            email="ann@acme.example",
            display_name="Ann",
            role=Role.CUSTOMER_ADMIN,
            password="correct horse battery",
            actor=ACTOR,
            tenant_id=tenant.id,
        )
    with catalog.session() as session:
        deleted = delete_tenant(session, tenant.id, actor=ACTOR, grace=timedelta(days=7))
        assert deleted.purge_after == deleted.deleted_at + timedelta(days=7)  # type: ignore[operator]
    with pytest.raises(TenantDeletedError), catalog.session() as session:
        authenticate_agent(session, kept.credential, key=key)
    with catalog.session() as session:
        user = session.scalars(select(User).where(User.tenant_id == tenant.id)).one()
        assert user.disabled_at is not None
        assert tenant_state(get_tenant(session, tenant.id)) == "deleted"
        assert tenants_due_for_purge(session) == []  # the grace period is not over
        with pytest.raises(TenantStateError):
            suspend_tenant(session, tenant.id, actor=ACTOR, reason="x")
    with catalog.session() as session:
        undelete_tenant(session, tenant.id, actor=ACTOR)
    with catalog.session() as session:
        assert authenticate_agent(session, kept.credential, key=key).id == kept.agent.id
        old = session.get(Agent, earlier.agent.id)
        assert old is not None and old.retired_at is not None  # retired before: stays retired
        user = session.scalars(select(User).where(User.tenant_id == tenant.id)).one()
        assert user.disabled_at is None
        assert tenant_state(get_tenant(session, tenant.id)) == "active"
    (entry,) = _audited(catalog, "tenant.delete")
    assert entry.details["agents_retired"] == 1 and entry.details["users_disabled"] == 1
    assert _audited(catalog, "tenant.undelete")[0].details["agents_restored"] == 1


def test_purging_removes_the_records_and_ends_undelete(catalog: Catalog, key: bytes) -> None:
    from vaultwatch.catalog.vaults import register_tenant_vault

    tenant, other = add_tenant(catalog, "Acme"), add_tenant(catalog, "Globex")
    enroll(catalog, tenant, key)
    survivor = enroll(catalog, other, key)
    with catalog.session() as session:
        register_tenant_vault(session, tenant.id, "/srv/vaults/acme", actor=ACTOR)
        delete_tenant(session, tenant.id, actor=ACTOR, grace=timedelta(0))
    with catalog.session() as session:
        with pytest.raises(TenantStateError):
            purge_tenant_records(session, tenant.id, actor=ACTOR)  # not begun
        assert [t.id for t in tenants_due_for_purge(session)] == [tenant.id]
        assert begin_tenant_purge(session, tenant.id, actor=ACTOR) == ["/srv/vaults/acme"]
    with catalog.session() as session:
        with pytest.raises(TenantStateError, match="purged"):
            undelete_tenant(session, tenant.id, actor=ACTOR)
        # Begun but not finished: found again, so a crash in between is recovered.
        assert [t.id for t in tenants_due_for_purge(session)] == [tenant.id]
        removed = purge_tenant_records(session, tenant.id, actor=ACTOR)
        assert removed["agents"] == 1 and removed["repositories"] == 1
        assert removed["agent_credentials"] == 1 and removed["enrollment_tokens"] == 1
    with catalog.session() as session:
        assert tenants_due_for_purge(session) == []
        assert tenant_state(get_tenant(session, tenant.id)) == "purged"
        agents = session.scalar(select(func.count()).select_from(Agent))
        assert agents == 1
        assert authenticate_agent(session, survivor.credential, key=key)
    assert len(_audited(catalog, "tenant.purge")) == 1
    assert len(_audited(catalog, "tenant.purge_start")) == 1
