"""A tenant's life after creation: suspended and resumed, deleted, undeleted, purged.

Suspension is reversible and keeps everything working except adding to the
vault: agents still send heartbeats (the SOC sees them alive, not silent)
and may read their vault to restore. Deletion is reversible for a grace
period: the tenant's agents are retired and its users disabled at once, its
vault and records stay until `purge_after`, and the purge duty removes them
then (see `vaultwatch.soc.tenant_purge`). Undeleting brings back exactly the
agents and users the deletion retired or disabled (they carry the deletion's
timestamp); ones retired or disabled before stay so.

The tenant row itself is never removed: the audit log refers to it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.orm import Session

from vaultwatch.catalog import audit
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import TenantStateError, ValidationError
from vaultwatch.catalog.models import Agent, Base, Repository, Tenant, User
from vaultwatch.catalog.tenants import get_tenant

#: How long a deleted tenant's data is kept before the purge duty removes it.
DEFAULT_DELETION_GRACE = timedelta(days=30)
MAX_DELETION_GRACE = timedelta(days=365)
MAX_REASON_LENGTH = 500


def tenant_state(tenant: Tenant) -> str:
    """`active`, `suspended`, `deleted` (within the grace period) or `purged`."""
    if tenant.purged_at is not None:
        return "purged"
    if tenant.deleted_at is not None:
        return "deleted"
    return "suspended" if tenant.suspended_at is not None else "active"


def _live(session: Session, tenant_id: uuid.UUID) -> Tenant:
    tenant = get_tenant(session, tenant_id)
    if tenant.deleted_at is not None:
        raise TenantStateError(f"tenant {tenant.name} is {tenant_state(tenant)}")
    return tenant


def suspend_tenant(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Tenant:
    """Refuse the tenant's uploads (and new enrollments) until it is resumed.

    Suspending a suspended tenant only updates the reason.
    """
    reason = " ".join(reason.split())
    if not reason or len(reason) > MAX_REASON_LENGTH:
        raise ValidationError(f"a suspension needs a reason of 1 to {MAX_REASON_LENGTH} characters")
    tenant = _live(session, tenant_id)
    now = now or database_now(session)
    already = tenant.suspended_at is not None
    if not already:
        tenant.suspended_at = now
    tenant.suspension_reason = reason
    audit.record(
        session,
        actor,
        "tenant.suspend",
        tenant.id,
        target=f"tenant:{tenant.id}",
        details={"reason": reason, "already_suspended": already},
        at=now,
    )
    session.flush()
    return tenant


def resume_tenant(
    session: Session, tenant_id: uuid.UUID, *, actor: str, now: datetime | None = None
) -> Tenant:
    """Lift a suspension: uploads are accepted again at the agents' next request."""
    tenant = _live(session, tenant_id)
    if tenant.suspended_at is None:
        raise TenantStateError(f"tenant {tenant.name} is not suspended")
    now = now or database_now(session)
    suspended_for = (now - tenant.suspended_at).total_seconds()
    tenant.suspended_at = None
    tenant.suspension_reason = None
    audit.record(
        session,
        actor,
        "tenant.resume",
        tenant.id,
        target=f"tenant:{tenant.id}",
        details={"suspended_seconds": int(suspended_for)},
        at=now,
    )
    session.flush()
    return tenant


def delete_tenant(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    actor: str,
    grace: timedelta = DEFAULT_DELETION_GRACE,
    now: datetime | None = None,
) -> Tenant:
    """Delete the tenant: agents retired and users disabled now, data purged after `grace`."""
    if not timedelta(0) <= grace <= MAX_DELETION_GRACE:
        raise ValidationError(
            f"the grace period must be between 0 and {MAX_DELETION_GRACE.days} days"
        )
    tenant = _live(session, tenant_id)
    now = now or database_now(session)
    tenant.deleted_at = now
    tenant.purge_after = now + grace
    retired = session.execute(
        update(Agent)
        .where(Agent.tenant_id == tenant.id, Agent.retired_at.is_(None))
        .values(retired_at=now)
        .execution_options(synchronize_session=False)
    )
    disabled = session.execute(
        update(User)
        .where(User.tenant_id == tenant.id, User.disabled_at.is_(None))
        .values(disabled_at=now)
        .execution_options(synchronize_session=False)
    )
    audit.record(
        session,
        actor,
        "tenant.delete",
        tenant.id,
        target=f"tenant:{tenant.id}",
        details={
            "name": tenant.name,
            "purge_after": tenant.purge_after.isoformat(),
            "agents_retired": _count(retired),
            "users_disabled": _count(disabled),
        },
        at=now,
    )
    session.flush()
    return tenant


def undelete_tenant(
    session: Session, tenant_id: uuid.UUID, *, actor: str, now: datetime | None = None
) -> Tenant:
    """Take a deletion back within the grace period: its agents and users return."""
    tenant = get_tenant(session, tenant_id)
    if tenant.deleted_at is None or tenant.purged_at is not None:
        raise TenantStateError(
            f"tenant {tenant.name} is {tenant_state(tenant)}: only a deleted tenant whose "
            "data is not purged yet can be undeleted"
        )
    now = now or database_now(session)
    deleted_at = tenant.deleted_at
    restored = session.execute(
        update(Agent)
        .where(Agent.tenant_id == tenant.id, Agent.retired_at == deleted_at)
        .values(retired_at=None)
        .execution_options(synchronize_session=False)
    )
    enabled = session.execute(
        update(User)
        .where(User.tenant_id == tenant.id, User.disabled_at == deleted_at)
        .values(disabled_at=None)
        .execution_options(synchronize_session=False)
    )
    tenant.deleted_at = None
    tenant.purge_after = None
    audit.record(
        session,
        actor,
        "tenant.undelete",
        tenant.id,
        target=f"tenant:{tenant.id}",
        details={"agents_restored": _count(restored), "users_enabled": _count(enabled)},
        at=now,
    )
    session.flush()
    # The bulk updates bypassed the identity map: reload what this session already holds.
    session.expire_all()
    return tenant


def tenants_due_for_purge(session: Session, now: datetime | None = None) -> list[Tenant]:
    """Deleted tenants past their grace period whose data is not (all) removed yet.

    A purge that started (`purged_at` set) but did not finish still has its
    vault or agent rows, so it is found again and finished.
    """
    now = now or database_now(session)
    leftovers = or_(
        select(Repository.id).where(Repository.tenant_id == Tenant.id).exists(),
        select(Agent.id).where(Agent.tenant_id == Tenant.id).exists(),
    )
    statement = (
        select(Tenant)
        .where(
            Tenant.deleted_at.is_not(None),
            Tenant.purge_after <= now,
            or_(Tenant.purged_at.is_(None), leftovers),
        )
        .order_by(Tenant.purge_after, Tenant.id)
    )
    return list(session.execute(statement).scalars())


def begin_tenant_purge(
    session: Session, tenant_id: uuid.UUID, *, actor: str, now: datetime | None = None
) -> list[str]:
    """Mark the purge as started (no undelete from here on); returns the vault locations to empty.

    Refuses a tenant that is not deleted or whose grace period is not over.
    Calling it again for a purge that did not finish returns the locations again.
    """
    tenant = get_tenant(session, tenant_id)
    now = now or database_now(session)
    if tenant.deleted_at is None or tenant.purge_after is None or tenant.purge_after > now:
        raise TenantStateError(f"tenant {tenant.name} is not due for purging")
    if tenant.purged_at is None:
        tenant.purged_at = now
        audit.record(
            session,
            actor,
            "tenant.purge_start",
            tenant.id,
            target=f"tenant:{tenant.id}",
            details={"deleted_at": tenant.deleted_at.isoformat()},
            at=now,
        )
        session.flush()
    locations: list[str] = []
    for repository in session.execute(
        select(Repository).where(Repository.tenant_id == tenant.id)
    ).scalars():
        locations.append(repository.primary_location)
        if repository.secondary_location:
            locations.append(repository.secondary_location)
    return locations


def purge_tenant_records(
    session: Session, tenant_id: uuid.UUID, *, actor: str, now: datetime | None = None
) -> dict[str, int]:
    """Remove a purged tenant's records (after its vaults were emptied); returns rows per table.

    Needs `begin_tenant_purge` first. Users stay, disabled, because cases
    and journals name them; the audit log and the tenant row stay.
    """
    tenant = get_tenant(session, tenant_id)
    if tenant.purged_at is None:
        raise TenantStateError(f"the purge of tenant {tenant.name} has not begun")
    now = now or database_now(session)
    removed: dict[str, int] = {}
    for table in _purged_tables():
        result = session.execute(delete(table).where(table.c.tenant_id == tenant.id))
        removed[table.name] = _count(result)
    audit.record(
        session,
        actor,
        "tenant.purge",
        tenant.id,
        target=f"tenant:{tenant.id}",
        details={"removed": removed},
        at=now,
    )
    session.flush()
    return removed


#: What a purge removes: the tenant's agents and everything recorded about their backups.
PURGED_TABLES = frozenset(
    {
        "heartbeats",
        "jobs",
        "snapshots",
        "backup_sets",
        "agent_credentials",
        "enrollment_tokens",
        "agents",
        "repositories",
    }
)


def _purged_tables() -> list[Table]:
    """`PURGED_TABLES`, plus any tenant table that points at them without ON DELETE, dependents first.

    A table added later that refers to, say, the vault's rows without a
    cascade would otherwise make the purge fail on its foreign key; rows that
    cascade or are set to NULL (the SOC's alarms, say) are left to the database.
    """
    names = set(PURGED_TABLES)
    tables = Base.metadata.tables.values()
    grew = True
    while grew:
        grew = False
        for table in tables:
            if table.name in names or "tenant_id" not in table.c:
                continue
            if any(
                fk.column.table.name in names and fk.ondelete is None for fk in table.foreign_keys
            ):
                names.add(table.name)
                grew = True
    return [t for t in reversed(Base.metadata.sorted_tables) if t.name in names]


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
