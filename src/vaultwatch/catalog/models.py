"""The catalog's tables as SQLAlchemy 2 models.

Every row that belongs to a customer carries `tenant_id` (the `TenantScoped`
mixin), so a tenant-scoped session can filter all of them the same way (see
`vaultwatch.catalog.db`). Backup data never lives here: the catalog holds what
the SOC and the portal query, and what it knows of a vault can be rebuilt from
the vault.

Later features add their tables in new migrations; the naming convention below
keeps constraint names stable so those migrations can alter them on both engines.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

from vaultwatch.catalog.types import (
    BigIntId,
    EnumText,
    JSONList,
    JSONObject,
    UTCDateTime,
    check_in,
    utcnow,
)
from vaultwatch.job_states import FINAL_JOB_STATES as FINAL_JOB_STATES
from vaultwatch.job_states import JobState as JobState

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with the naming convention every migration relies on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSONObject,
        list[str]: JSONList,
        list[Any]: JSONList,
    }


class Role(enum.StrEnum):
    """What a user may do. Customer roles belong to one tenant; staff roles to none."""

    CUSTOMER_ADMIN = "customer_admin"
    CUSTOMER_VIEWER = "customer_viewer"
    SOC_OPERATOR = "soc_operator"
    SOC_SUPERVISOR = "soc_supervisor"
    DC_TECHNICIAN = "dc_technician"
    ADMINISTRATOR = "administrator"

    @property
    def is_customer(self) -> bool:
        """True for roles that must belong to a tenant."""
        return self in CUSTOMER_ROLES


CUSTOMER_ROLES = frozenset({Role.CUSTOMER_ADMIN, Role.CUSTOMER_VIEWER})


class BackupMode(enum.StrEnum):
    """Continuous sets back up on change events; scheduled sets follow a cron schedule."""

    CONTINUOUS = "continuous"
    SCHEDULED = "scheduled"


class JobKind(enum.StrEnum):
    """What a job does; each kind reports progress the same way."""

    BACKUP = "backup"
    RESTORE = "restore"
    CHECK = "check"
    PRUNE = "prune"


#: Final states whose backup wrote a snapshot the catalog records.
SNAPSHOT_JOB_STATES = frozenset({JobState.SUCCEEDED, JobState.PARTIAL})


def _customer_roles_sql() -> str:
    return ", ".join(f"'{role.value}'" for role in sorted(CUSTOMER_ROLES))


class HasTenant:
    """Marker for every model with a `tenant_id`; tenant-scoped sessions filter on it.

    Rows with an empty `tenant_id` (staff users, service-wide audit entries)
    are invisible to a tenant-scoped session, as they should be.
    """


class TenantScoped(HasTenant):
    """Mixin for rows that always belong to one tenant."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("tenants.id"), index=True)


class Tenant(Base):
    """A customer. `name_key` is the case- and space-insensitive form that must be unique."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    escrow_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    suspended_at: Mapped[datetime | None]
    """Set while the tenant is suspended: its agents' uploads are refused."""
    suspension_reason: Mapped[str | None] = mapped_column(String(500))
    deleted_at: Mapped[datetime | None]
    """Set when the tenant was deleted; its data is kept until `purge_after`."""
    purge_after: Mapped[datetime | None]
    purged_at: Mapped[datetime | None]
    """Set once housekeeping removed the deleted tenant's data; the row stays for the audit log."""

    def __repr__(self) -> str:
        return f"Tenant(id={self.id}, name={self.name!r})"


class User(HasTenant, Base):
    """A person who logs into the portal or the console.

    Customer users belong to exactly one tenant; staff (SOC, data center,
    administrators) belong to none. A CHECK constraint keeps that true.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(check_in("role", Role), name="role"),
        CheckConstraint(
            f"(role IN ({_customer_roles_sql()})) = (tenant_id IS NOT NULL)",
            name="tenant_matches_role",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(EnumText(Role))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]

    tenant: Mapped[Tenant | None] = relationship()


class Agent(TenantScoped, Base):
    """An enrolled protected server, with the facts from its latest heartbeat.

    The latest heartbeat is copied here so the SOC's "who is silent" query is
    one indexed scan; the history is in `heartbeats`.
    """

    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    hostname: Mapped[str] = mapped_column(String(255))
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None] = mapped_column(index=True)
    version: Mapped[str | None] = mapped_column(String(64))
    host_facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    free_disk_bytes: Mapped[int | None] = mapped_column(BigInteger)
    gateway_reachable: Mapped[bool | None] = mapped_column(Boolean)
    gateway_node: Mapped[str | None] = mapped_column(String(200))
    """The gateway node that received the latest heartbeat (the agent sits behind it)."""

    tenant: Mapped[Tenant] = relationship()


class AgentCredential(TenantScoped, Base):
    """An agent's secret, stored as a keyed digest; several allow rotation without downtime."""

    __tablename__ = "agent_credentials"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A rotated-in credential not used yet: its first use revokes the agent's others."""

    agent: Mapped[Agent] = relationship()


class EnrollmentToken(TenantScoped, Base):
    """A single-use, expiring invitation for one server to enroll into a tenant."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))


class Heartbeat(TenantScoped, Base):
    """One heartbeat as received, for trends (free disk over time, flapping reachability)."""

    __tablename__ = "heartbeats"
    __table_args__ = (Index(None, "agent_id", "received_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[str] = mapped_column(String(64))
    host_facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    free_disk_bytes: Mapped[int | None] = mapped_column(BigInteger)
    gateway_reachable: Mapped[bool] = mapped_column(Boolean)


class Repository(TenantScoped, Base):
    """A tenant's vault: where its packs live, and the replica at the second site.

    Locations are repository URLs as the stores read them (`/srv/vault/acme`,
    `s3:https://host/bucket/prefix`); they never contain credentials.
    `vault_id` is the id the repository gives itself, to match a rebuilt catalog.
    """

    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    primary_location: Mapped[str] = mapped_column(String(1024))
    secondary_location: Mapped[str | None] = mapped_column(String(1024))
    vault_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BackupSet(TenantScoped, Base):
    """What one agent protects, and its policy.

    Paths, excludes and retention are documents (they are read and written as
    a whole); mode and RPO target are columns because the SOC filters on them.
    A scheduled set must have a schedule (cron syntax).
    """

    __tablename__ = "backup_sets"
    __table_args__ = (
        UniqueConstraint("agent_id", "name"),
        CheckConstraint(check_in("mode", BackupMode), name="mode"),
        CheckConstraint("mode <> 'scheduled' OR schedule IS NOT NULL", name="schedule_required"),
        CheckConstraint("rpo_target_seconds > 0", name="rpo_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id"), index=True)
    repository_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("repositories.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    paths: Mapped[list[str]]
    excludes: Mapped[list[str]] = mapped_column(default=list)
    mode: Mapped[BackupMode] = mapped_column(EnumText(BackupMode))
    schedule: Mapped[str | None] = mapped_column(String(100))
    rpo_target_seconds: Mapped[int] = mapped_column(Integer)
    retention: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The retention the agent's configuration asks for (it can only add to `operator_retention`)."""
    operator_retention: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    """The retention an operator set; None: the service's default for the set's mode."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    agent: Mapped[Agent] = relationship()
    repository: Mapped[Repository] = relationship()


class Snapshot(TenantScoped, Base):
    """The summary of a snapshot in a vault; the vault's snapshot is the truth.

    `agent_id` and `backup_set_id` may be unknown when the row was rebuilt
    from the vault alone.
    """

    __tablename__ = "snapshots"
    __table_args__ = (
        UniqueConstraint("repository_id", "vault_snapshot_id"),
        Index(None, "backup_set_id", "finished_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    repository_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("repositories.id"))
    backup_set_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backup_sets.id", ondelete="SET NULL")
    )
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    vault_snapshot_id: Mapped[str] = mapped_column(String(64))
    hostname: Mapped[str] = mapped_column(String(255))
    paths: Mapped[list[str]]
    tags: Mapped[list[str]] = mapped_column(default=list)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    files_total: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    files_new: Mapped[int] = mapped_column(BigInteger, default=0)
    files_changed: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_added: Mapped[int] = mapped_column(BigInteger, default=0)
    # What the new content took in packs (compressed, encrypted); None from agents that
    # do not report it. The ransomware guard compares it with bytes_added.
    bytes_stored: Mapped[int | None] = mapped_column(BigInteger)


class TrashState(enum.StrEnum):
    """Where a trashed vault object is: in the trash, removed for good, or put back."""

    TRASHED = "trashed"
    PURGED = "purged"
    RESTORED = "restored"


class VaultTrash(TenantScoped, Base):
    """One vault object the service's retention moved to the vault's ``trash/``.

    It stays there until `purge_after` (the grace period), and is put back
    when a snapshot turns out to need it. `kind` is snapshot, manifest or pack.
    """

    __tablename__ = "vault_trash"
    __table_args__ = (
        UniqueConstraint("repository_id", "name", "trashed_at"),
        CheckConstraint(check_in("state", TrashState), name="state"),
        Index(None, "repository_id", "state", "purge_after"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    repository_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("repositories.id"))
    name: Mapped[str] = mapped_column(String(300))
    trash_name: Mapped[str] = mapped_column(String(400))
    kind: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    snapshot: Mapped[str | None] = mapped_column(String(64))
    """For snapshots and manifests: the snapshot id."""
    state: Mapped[TrashState] = mapped_column(EnumText(TrashState), default=TrashState.TRASHED)
    trashed_at: Mapped[datetime]
    purge_after: Mapped[datetime]
    done_at: Mapped[datetime | None]
    """When it was purged or restored."""


class Job(TenantScoped, Base):
    """A unit of work on an agent and its live progress.

    `updated_at` moves with every progress report, so a running job whose
    `updated_at` is old is stalled. `errors` keeps the most recent messages;
    `error_count` counts them all. `phase`, `current_file` and `resumed_bytes`
    (what an earlier try already stored) are reported by newer agents only.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(check_in("kind", JobKind), name="kind"),
        CheckConstraint(check_in("state", JobState), name="state"),
        Index(None, "tenant_id", "state"),
        Index(None, "agent_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id"))
    backup_set_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backup_sets.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[JobKind] = mapped_column(EnumText(JobKind))
    state: Mapped[JobState] = mapped_column(EnumText(JobState), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    files_done: Mapped[int] = mapped_column(BigInteger, default=0)
    files_total: Mapped[int | None] = mapped_column(BigInteger)
    rate_bytes_per_second: Mapped[float | None] = mapped_column(Float)
    eta_seconds: Mapped[int | None] = mapped_column(Integer)
    phase: Mapped[str | None] = mapped_column(String(50))
    current_file: Mapped[str | None] = mapped_column(String(1024))
    resumed_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[str]] = mapped_column(default=list)
    snapshot_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("snapshots.id", ondelete="SET NULL")
    )

    agent: Mapped[Agent] = relationship()
    snapshot: Mapped[Snapshot | None] = relationship()


class AuditEntry(HasTenant, Base):
    """One privileged action: who did what to which thing, and when.

    `tenant_id` is empty for service-wide actions. Rows are only ever added.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "tenant_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"))
    target: Mapped[str | None] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Lease(Base):
    """A named duty held by one node until `expires_at`.

    `epoch` grows every time the holder changes: a fencing token that lets a
    duty refuse work stamped by a holder that has since lost the lease.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    epoch: Mapped[int] = mapped_column(BigInteger, default=1)
