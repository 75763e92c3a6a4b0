"""The operations center's tables and vocabulary: alarms, incidents, cases, notifications ...

The enums spell each concept once for the tables, the ingestion parsers, the
API schemas and the CLI. Severities are integers, as in the Netcool/OMNIbus
ObjectServer, so "worst first" is a plain sort and "major or above" a plain
comparison. The alarm store is one row per identifier (deduplicated in one
INSERT ... ON CONFLICT, see `vaultwatch.soc.alarms`); cleared alarms move to
`alarm_history` with the same id, so their journal stays attached.
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
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from vaultwatch.catalog.models import Base, HasTenant, TenantScoped
from vaultwatch.catalog.types import BigIntId, EnumText, check_in, utcnow


class Severity(enum.IntEnum):
    """How bad an alarm is; 0 (clear) means the problem is over."""

    CLEAR = 0
    INDETERMINATE = 1
    WARNING = 2
    MINOR = 3
    MAJOR = 4
    CRITICAL = 5

    @classmethod
    def parse(cls, text: str | int) -> Severity:
        """``"major"``, ``"MAJOR"``, ``4`` or ``"4"`` -> Severity.MAJOR; ValueError otherwise."""
        if isinstance(text, bool):
            raise ValueError(f"unknown severity {text!r}")
        if isinstance(text, int):
            return cls(text)
        cleaned = text.strip().lower()
        if cleaned.isdigit():
            return cls(int(cleaned))
        try:
            return cls[cleaned.upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r}: use one of {names}") from None

    @property
    def label(self) -> str:
        """The lower-case name shown to people and written in JSON."""
        return self.name.lower()


class EventType(enum.StrEnum):
    """A problem raises or repeats an alarm; a resolution clears it (generic clear)."""

    PROBLEM = "problem"
    RESOLUTION = "resolution"


class AlarmClass(enum.StrEnum):
    """Which team's problem it is; decided by classification rules, with the reason kept."""

    NETWORK = "network"
    HARDWARE = "hardware"
    SOFTWARE = "software"
    UNKNOWN = "unknown"


class EventSource(enum.StrEnum):
    """Where an event came from."""

    INTERNAL = "internal"
    API = "api"
    ALERTMANAGER = "alertmanager"
    SYSLOG = "syslog"
    SNMP = "snmp"
    MONITOR = "monitor"
    PROBE = "probe"


class IncidentState(enum.StrEnum):
    """An incident pages until acknowledged, and is over once resolved."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class CaseState(enum.StrEnum):
    """A support case's life, from the customer's question to its closure."""

    OPEN = "open"
    ESCALATED = "escalated"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    WAITING_ON_THIRD_PARTY = "waiting_on_third_party"
    RESOLVED = "resolved"
    CLOSED = "closed"


class NotificationChannel(enum.StrEnum):
    """How a notification travels."""

    EMAIL = "email"
    WEBHOOK = "webhook"
    PORTAL = "portal"


class NotificationState(enum.StrEnum):
    """A notification in the outbox: pending until sent, or failed after its retries."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class CustomerUpdateKind(enum.StrEnum):
    """What a customer status update says about its incident."""

    FIRST_NOTICE = "first_notice"
    UPDATE = "update"
    RESOLUTION = "resolution"


class CustomerUpdateState(enum.StrEnum):
    """Operators write or approve the text before it is sent."""

    DRAFT = "draft"
    PUBLISHED = "published"


# -- tables ------------------------------------------------------------------------------------

_SEVERITY_RANGE = "severity BETWEEN 0 AND 5"

#: Alert groups that say "this entity is down or unreachable": only these can be root causes.
#: The open-roots index below is partial on them; a change here needs a migration of it.
ROOT_ALERT_GROUPS: tuple[str, ...] = (
    "gateway.down",
    "gateway.unreachable",
    "node.down",
    "node.unreachable",
    "site.down",
    "site.unreachable",
    "store.down",
    "store.unavailable",
)
OPEN_ROOTS_WHERE = "cleared_at IS NULL AND alert_group IN ({})".format(
    ", ".join(f"'{group}'" for group in ROOT_ALERT_GROUPS)
)
"""The open alarms that can be roots: a handful among a storm's thousands."""


class ApiKey(HasTenant, Base):
    """A person's or a script's key for the SOC and portal API, stored as a keyed digest.

    The key acts as its user, with the user's role; `tenant_id` is the
    user's (empty for staff), copied so a customer key is scoped without a join.
    """

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class _AlarmColumns:
    """The columns an alarm has, live (`alarms`) or archived (`alarm_history`)."""

    identifier: Mapped[str] = mapped_column(String(255))
    node: Mapped[str] = mapped_column(String(255))
    entity: Mapped[str] = mapped_column(String(300), index=True)
    alert_group: Mapped[str] = mapped_column(String(100))
    alert_key: Mapped[str] = mapped_column(String(255), default="")
    severity: Mapped[int] = mapped_column(SmallInteger)
    last_problem_severity: Mapped[int] = mapped_column(SmallInteger)
    type: Mapped[EventType] = mapped_column(EnumText(EventType))
    summary: Mapped[str] = mapped_column(String(1000))
    alarm_class: Mapped[AlarmClass] = mapped_column(EnumText(AlarmClass))
    class_reason: Mapped[str] = mapped_column(String(300), default="")
    source: Mapped[EventSource] = mapped_column(EnumText(EventSource))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    tally: Mapped[int] = mapped_column(BigInteger, default=1)
    first_occurrence: Mapped[datetime]
    last_occurrence: Mapped[datetime]
    last_occurrence_key: Mapped[str | None] = mapped_column(String(200))
    state_change: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None]
    owner: Mapped[str | None] = mapped_column(String(200))
    suppressed_by: Mapped[int | None] = mapped_column(BigInteger, index=True)
    silence_id: Mapped[int | None] = mapped_column(BigInteger)
    incident_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    runbook: Mapped[str | None] = mapped_column(String(500))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Alarm(_AlarmColumns, HasTenant, Base):
    """One deduplicated alarm: every repeat of its identifier adds to `tally`.

    `suppressed_by` names the root-cause alarm when this one is a symptom;
    `silence_id` the silence or maintenance window that mutes it. Neither
    is a foreign key, so a root can be archived while symptoms still point at it.
    """

    __tablename__ = "alarms"
    __table_args__ = (
        UniqueConstraint("identifier"),
        CheckConstraint(_SEVERITY_RANGE, name="severity"),
        CheckConstraint(check_in("type", EventType), name="type"),
        CheckConstraint(check_in("alarm_class", AlarmClass), name="alarm_class"),
        # The list, worst first: open alarms only, so a LIMIT reads just the first page.
        # `cleared_at` (always NULL here) makes it a covering index for SQLite's counters.
        Index(
            "ix_alarms_open_worst_first",
            "severity",
            "last_occurrence",
            "id",
            "cleared_at",
            postgresql_where=text("cleared_at IS NULL"),
            sqlite_where=text("cleared_at IS NULL"),
        ),
        Index(None, "last_occurrence"),
        Index(None, "alert_group", "last_occurrence"),
        Index(None, "node"),
        Index(None, "state_change"),  # the console's change feed
        # Housekeeping finds the alarms cleared long enough ago; open alarms (most of them,
        # and every new one in a storm) are not in it. The counters read the open index.
        Index(
            "ix_alarms_cleared",
            "cleared_at",
            postgresql_where=text("cleared_at IS NOT NULL"),
            sqlite_where=text("cleared_at IS NOT NULL"),
        ),
        Index(None, "tenant_id", "severity"),
        # Correlation asks on every batch whether a root is open and whether any alarm is a
        # symptom. Both indexes hold only those few alarms, so the answer stays one index
        # probe even when a storm has outdated the statistics the planner would otherwise
        # trust (it then scanned 90,000 open alarms per batch).
        Index(
            "ix_alarms_open_roots",
            "entity",
            "severity",
            postgresql_where=text(OPEN_ROOTS_WHERE),
            sqlite_where=text(OPEN_ROOTS_WHERE),
        ),
        Index(
            "ix_alarms_suppressed",
            "suppressed_by",
            postgresql_where=text("suppressed_by IS NOT NULL"),
            sqlite_where=text("suppressed_by IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # Not indexed as a whole (most alarms are no symptom): see ix_alarms_suppressed.
    suppressed_by: Mapped[int | None] = mapped_column(BigInteger)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"))


class AlarmHistory(_AlarmColumns, HasTenant, Base):
    """A cleared alarm kept after housekeeping moved it out of the live list (same id)."""

    __tablename__ = "alarm_history"
    __table_args__ = (Index(None, "tenant_id", "archived_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"))
    archived_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AlarmJournalEntry(HasTenant, Base):
    """One thing done to an alarm (acknowledged, assigned, noted, cleared, diagnosed ...).

    `alarm_id` is no foreign key: the journal outlives the move to history.
    """

    __tablename__ = "alarm_journal"
    __table_args__ = (Index(None, "alarm_id", "at"), Index(None, "at"))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    alarm_id: Mapped[int] = mapped_column(BigInteger)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    text: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ServerNode(Base):
    """A server process's host (gateway, backup server, web server, worker) and its latest health.

    `health` holds the latest measurements (CPU, memory, free disk, latencies,
    certificate expiry, hardware); `node_health_samples` keeps their history.
    """

    __tablename__ = "server_nodes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    site: Mapped[str] = mapped_column(String(200), default="default")
    roles: Mapped[list[str]] = mapped_column(default=list)
    url: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    health: Mapped[dict[str, Any]] = mapped_column(default=dict)


class NodeHealthSample(Base):
    """One health report of a node, for history charts (bounded by housekeeping)."""

    __tablename__ = "node_health_samples"
    __table_args__ = (Index(None, "node_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    node_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("server_nodes.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TopologyEdge(Base):
    """`child` depends on `parent` (agent -> gateway, gateway -> site, store -> site).

    Entities are named `kind:name` (``agent:<id>``, ``gateway:gw1``,
    ``site:dc1``); correlation walks these edges upwards to find a root cause.
    """

    __tablename__ = "topology_edges"
    __table_args__ = (UniqueConstraint("child", "parent"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    child: Mapped[str] = mapped_column(String(300), index=True)
    parent: Mapped[str] = mapped_column(String(300), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Probe(Base):
    """A synthetic check (TCP connect, TLS handshake, HTTP) and its latest result."""

    __tablename__ = "probes"
    __table_args__ = (CheckConstraint("kind IN ('tcp', 'tls', 'http')", name="kind"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(String(500))
    entity: Mapped[str] = mapped_column(String(300))
    interval_seconds: Mapped[int] = mapped_column(Integer, default=30)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=5.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_at: Mapped[datetime | None]
    last_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(String(500))


class Silence(HasTenant, Base):
    """Mutes matching alarms between `starts_at` and `ends_at`; a maintenance window recurs.

    `matchers` is a list of ``{"field": ..., "op": "=" | "!=" | "=~", "value": ...}``.
    A maintenance window has `recurrence` (a cron expression) and
    `duration_seconds`; a one-off silence has neither.
    """

    __tablename__ = "silences"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("(recurrence IS NULL) = (duration_seconds IS NULL)", name="recurring"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="silence")
    matchers: Mapped[list[Any]] = mapped_column(default=list)
    comment: Mapped[str] = mapped_column(String(1000))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    recurrence: Mapped[str | None] = mapped_column(String(100))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    reminded_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]


class EscalationPolicy(Base):
    """Who is paged, in which order, how long each level has, and how often to repeat.

    `levels` is a list of ``{"targets": [{"kind": "user"|"email"|"webhook", "address": ...}],
    "timeout_seconds": N}``.
    """

    __tablename__ = "escalation_policies"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    levels: Mapped[list[Any]] = mapped_column(default=list)
    repeat: Mapped[int] = mapped_column(Integer, default=0)
    ack_timeout_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    customer_update_interval_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Incident(Base):
    """A problem someone must own: pages along its policy until acknowledged, then resolved.

    The tenants it affects are in `incident_tenants`; with many of them it is
    a crisis and every one is told together.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint(check_in("state", IncidentState), name="state"),
        CheckConstraint(_SEVERITY_RANGE, name="severity"),
        Index(None, "state", "next_escalation_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(500))
    severity: Mapped[int] = mapped_column(SmallInteger)
    state: Mapped[IncidentState] = mapped_column(EnumText(IncidentState))
    crisis: Mapped[bool] = mapped_column(Boolean, default=False)
    root_alarm_id: Mapped[int | None] = mapped_column(BigInteger)
    policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("escalation_policies.id", ondelete="SET NULL")
    )
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalation_round: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    ack_expires_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    next_customer_update_at: Mapped[datetime | None]


class IncidentTenant(TenantScoped, Base):
    """A tenant an incident affects: it is told, and sees the incident on its status page."""

    __tablename__ = "incident_tenants"
    __table_args__ = (UniqueConstraint("incident_id", "tenant_id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))


class IncidentEvent(Base):
    """The incident's timeline: triggered, paged whom and how, acknowledged, escalated, resolved."""

    __tablename__ = "incident_timeline"
    __table_args__ = (Index(None, "incident_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CustomerUpdate(TenantScoped, Base):
    """A status update for one tenant about an incident: drafted, approved, sent, shown."""

    __tablename__ = "customer_updates"
    __table_args__ = (
        CheckConstraint(check_in("kind", CustomerUpdateKind), name="kind"),
        CheckConstraint(check_in("state", CustomerUpdateState), name="state"),
        Index(None, "incident_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    kind: Mapped[CustomerUpdateKind] = mapped_column(EnumText(CustomerUpdateKind))
    state: Mapped[CustomerUpdateState] = mapped_column(EnumText(CustomerUpdateState))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(200))


class SupportCase(TenantScoped, Base):
    """A customer's question or problem, owned by customer service or, once escalated, the SOC.

    `external_tickets` records work with outside parties:
    ``[{"party": "carrier", "ticket": "TT-1", "opened_at": ...}]``.
    """

    __tablename__ = "support_cases"
    __table_args__ = (
        CheckConstraint(check_in("state", CaseState), name="state"),
        Index(None, "state", "next_update_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(300))
    state: Mapped[CaseState] = mapped_column(EnumText(CaseState))
    priority: Mapped[int] = mapped_column(SmallInteger, default=3)
    owner_team: Mapped[str] = mapped_column(String(50), default="customer_service")
    owner: Mapped[str | None] = mapped_column(String(200))
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_via: Mapped[str] = mapped_column(String(20), default="api")
    contact_email: Mapped[str | None] = mapped_column(String(320))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    escalated_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    alarm_ids: Mapped[list[Any]] = mapped_column(default=list)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    external_tickets: Mapped[list[Any]] = mapped_column(default=list)
    update_interval_seconds: Mapped[int] = mapped_column(Integer, default=86400)
    next_update_at: Mapped[datetime | None]


class CaseEntry(TenantScoped, Base):
    """One entry of a case's history: a message, a note, an escalation, an update sent."""

    __tablename__ = "case_entries"
    __table_args__ = (Index(None, "case_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("support_cases.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(50))
    text: Mapped[str] = mapped_column(Text, default="")
    visible_to_customer: Mapped[bool] = mapped_column(Boolean, default=True)


class Notification(HasTenant, Base):
    """The outbox: one message to send once, retried until sent or given up.

    `dedup_key` is unique, so the same page or update is queued once however
    many nodes decide to send it; a sender claims a row with a conditional
    UPDATE (`claimed_by`, `claimed_until`) before it sends.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(check_in("channel", NotificationChannel), name="channel"),
        CheckConstraint(check_in("state", NotificationState), name="state"),
        Index(None, "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(300), unique=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    channel: Mapped[NotificationChannel] = mapped_column(EnumText(NotificationChannel))
    recipient: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    case_id: Mapped[int | None] = mapped_column(ForeignKey("support_cases.id", ondelete="SET NULL"))
    state: Mapped[NotificationState] = mapped_column(EnumText(NotificationState))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class SnapshotHold(TenantScoped, Base):
    """Keeps a backup set's snapshots from retention (ransomware guard, legal hold).

    Snapshots finished before `held_before` are held until an operator releases the hold.
    """

    __tablename__ = "snapshot_holds"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    backup_set_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("backup_sets.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(500))
    held_before: Mapped[datetime]
    alarm_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(200))


class SavedView(Base):
    """An operator's named console filter (the list's query string), private to that user."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
