"""Incidents: which alarms need an owner, who they affect, and their life (open, ack, resolve).

An alarm opens an incident when it is at least major, or when it is an RPO
breach (alert group ``backup.overdue``) whatever its severity, or when an
operator decides so. Symptoms (``suppressed_by`` set) and silenced alarms
never open one: their root cause or the maintenance window speaks for them.

Affected tenants: the alarm's own tenant when it has one. Otherwise the
alarm is about infrastructure (``gateway:``, ``site:``, ``node:``, ``store:``)
and the affected tenants are those with an agent (``agent:<id>``) below its
entity in ``topology_edges``; a site or gateway alarm whose topology names no
agents affects every tenant that has active agents, because we cannot rule
any of them out. With `crisis_threshold` tenants or more (default 5) the
incident is a crisis: one customer update goes to every affected tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.db import one_of
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.models import Agent, Tenant
from vaultwatch.catalog.soc_models import (
    Alarm,
    EscalationPolicy,
    Incident,
    IncidentState,
    IncidentTenant,
    NotificationChannel,
    Severity,
)
from vaultwatch.server_config import ServerSettings
from vaultwatch.soc import cases, customer_updates, escalation, topology
from vaultwatch.soc.alarms import RaisedAlarm, get_alarm
from vaultwatch.soc.escalation import IncidentNotFoundError, get_incident, record, timeline
from vaultwatch.soc.events import Event, clean_text
from vaultwatch.soc.notify import Sender, deliver_due
from vaultwatch.soc.notify.email import EmailSender, smtp_settings
from vaultwatch.soc.notify.webhook import WebhookSender

if TYPE_CHECKING:
    from vaultwatch.soc.duties import Duty

__all__ = [
    "IncidentNotFoundError",
    "IncidentRules",
    "IncidentStateError",
    "acknowledge",
    "affected_tenants",
    "get_incident",
    "incident_duties",
    "incident_rules",
    "list_incidents",
    "open_incident",
    "open_incidents_for",
    "resolve",
    "resolve_cleared",
    "tenants_of",
    "timeline",
]

SYSTEM_ACTOR = "system:incidents"
MAX_TITLE = 500
MAX_TENANTS_LISTED = 100000
INFRASTRUCTURE_WIDE = ("site", "gateway")


class IncidentStateError(CatalogError):
    """The incident is not in a state that allows this (e.g. acknowledging a resolved one)."""

    http_status = 409


@dataclass(frozen=True)
class IncidentRules:
    """When an alarm becomes an incident, what counts as a crisis, and which policy pages."""

    min_severity: Severity = Severity.MAJOR
    rpo_alert_groups: frozenset[str] = field(default_factory=lambda: frozenset({"backup.overdue"}))
    crisis_threshold: int = 5
    policy: str | None = escalation.DEFAULT_POLICY

    def opens_incident(self, alarm: Any) -> bool:
        """True for an open, unsuppressed, unsilenced alarm that is bad enough or an RPO breach.

        `alarm` is an Alarm or a row with its columns of the same names.
        """
        if alarm.cleared_at is not None or alarm.suppressed_by is not None:
            return False
        if alarm.silence_id is not None:
            return False
        return self.bad_enough(alarm.severity, alarm.alert_group)

    def bad_enough(self, severity: int, alert_group: str) -> bool:
        """Severe enough for an incident, or an RPO breach whatever its severity."""
        return severity >= self.min_severity or alert_group in self.rpo_alert_groups


def incident_rules(extra: dict[str, Any]) -> IncidentRules:
    """Rules from the server settings' ``[soc.incidents]`` table (defaults where absent)."""
    soc = extra.get("soc", {})
    section = soc.get("incidents", {}) if isinstance(soc, dict) else {}
    if not isinstance(section, dict):
        raise ValidationError("[soc.incidents] must be a table")
    rules = IncidentRules()
    threshold = section.get("crisis_threshold", rules.crisis_threshold)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise ValidationError("[soc.incidents] crisis_threshold must be a positive integer")
    try:
        minimum = Severity.parse(section.get("min_severity", rules.min_severity.label))
    except ValueError as exc:
        raise ValidationError(f"[soc.incidents] min_severity: {exc}") from None
    groups = section.get("rpo_alert_groups", sorted(rules.rpo_alert_groups))
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ValidationError("[soc.incidents] rpo_alert_groups must be a list of alert groups")
    policy = section.get("policy", rules.policy)
    if policy is not None and not isinstance(policy, str):
        raise ValidationError("[soc.incidents] policy must be a policy name")
    return IncidentRules(
        min_severity=minimum,
        rpo_alert_groups=frozenset(groups),
        crisis_threshold=threshold,
        policy=policy,
    )


DEFAULT_RULES = IncidentRules()


# -- affected tenants --------------------------------------------------------------------------


def _tenants_with_agents(
    session: Session, agent_ids: Iterable[uuid.UUID] | None
) -> list[uuid.UUID]:
    stmt = select(Agent.tenant_id).where(Agent.retired_at.is_(None)).distinct()
    if agent_ids is not None:
        ids = list(agent_ids)
        if not ids:
            return []
        stmt = stmt.where(Agent.id.in_(ids))
    return sorted(session.scalars(stmt.limit(MAX_TENANTS_LISTED)), key=str)


def affected_tenants(session: Session, entity: str, tenant_id: uuid.UUID | None) -> list[uuid.UUID]:
    """The tenants an alarm on `entity` affects (see the module docstring for the rule)."""
    if tenant_id is not None:
        return [tenant_id]
    entities = [entity, *topology.descendants(session, entity)]
    agent_ids: list[uuid.UUID] = []
    for name in entities:
        if topology.kind_of(name) == "agent":
            try:
                agent_ids.append(uuid.UUID(name.split(":", 1)[1]))
            except ValueError:
                continue
    found = _tenants_with_agents(session, agent_ids)
    if not found and topology.kind_of(entity) in INFRASTRUCTURE_WIDE:
        return _tenants_with_agents(session, None)
    return found


# -- life of an incident -----------------------------------------------------------------------


def _policy_id(session: Session, policy: int | str | None, rules: IncidentRules) -> int | None:
    if policy is not None:
        return escalation.get_policy(session, policy).id
    if rules.policy is None:
        return None
    return session.scalar(select(EscalationPolicy.id).where(EscalationPolicy.name == rules.policy))


def open_incident(
    session: Session,
    *,
    title: str,
    severity: Severity | str | int,
    actor: str,
    tenant_ids: Sequence[uuid.UUID] = (),
    root_alarm_id: int | None = None,
    policy: int | str | None = None,
    now: datetime | None = None,
    rules: IncidentRules = DEFAULT_RULES,
) -> Incident:
    """Open an incident, page level 0 of its policy and draft the first customer notice."""
    now = escalation.current_time(session, now)
    clean_title = clean_text(title, MAX_TITLE) if isinstance(title, str) else ""
    if not clean_title:
        raise ValidationError("an incident needs a title")
    try:
        level = Severity.parse(severity)
    except ValueError as exc:
        raise ValidationError(f"incident severity: {exc}") from None
    if level == Severity.CLEAR:
        raise ValidationError("an incident cannot have severity clear")
    tenants = sorted(set(tenant_ids), key=str)
    if tenants:
        known = set(session.scalars(select(Tenant.id).where(Tenant.id.in_(tenants))))
        missing = [str(t) for t in tenants if t not in known]
        if missing:
            raise ValidationError(f"unknown tenant(s): {', '.join(missing[:5])}")
    policy_id = _policy_id(session, policy, rules)
    crisis = len(tenants) >= rules.crisis_threshold
    incident = Incident(
        title=clean_title,
        severity=int(level),
        state=IncidentState.TRIGGERED,
        crisis=crisis,
        root_alarm_id=root_alarm_id,
        policy_id=policy_id,
        created_at=now,
        created_by=actor,
    )
    session.add(incident)
    session.flush()
    session.add_all(IncidentTenant(incident_id=incident.id, tenant_id=t) for t in tenants)
    record(
        session,
        incident.id,
        "triggered",
        actor,
        clean_title,
        {"root_alarm_id": root_alarm_id, "tenants": len(tenants), "severity": level.label},
        at=now,
    )
    if crisis:
        record(
            session,
            incident.id,
            "crisis",
            actor,
            f"{len(tenants)} tenants affected: crisis mode, one update goes to all",
            {"tenants": len(tenants), "threshold": rules.crisis_threshold},
            at=now,
        )
    session.flush()
    escalation.start(session, incident, now)
    if tenants:
        customer_updates.draft_first_notice(session, incident, now=now)
    return incident


def open_incident_for_alarm(
    session: Session,
    alarm_id: int,
    *,
    actor: str,
    title: str | None = None,
    severity: Severity | str | int | None = None,
    policy: int | str | None = None,
    now: datetime | None = None,
    rules: IncidentRules = DEFAULT_RULES,
) -> Incident:
    """An operator's choice: open an incident for any live alarm, even a minor one."""
    alarm = get_alarm(session, alarm_id)
    if alarm.incident_id is not None:
        current = session.get(Incident, alarm.incident_id)
        if current is not None and current.state != IncidentState.RESOLVED:
            raise IncidentStateError(f"alarm {alarm_id} already has open incident {current.id}")
    incident = open_incident(
        session,
        title=title or alarm.summary,
        severity=severity if severity is not None else max(alarm.severity, Severity.INDETERMINATE),
        actor=actor,
        tenant_ids=affected_tenants(session, alarm.entity, alarm.tenant_id),
        root_alarm_id=alarm.id,
        policy=policy,
        now=now,
        rules=rules,
    )
    alarm.incident_id = incident.id
    return incident


def _group_key(alert_group: str, tenant_id: uuid.UUID | None) -> tuple[str, str]:
    return alert_group, str(tenant_id) if tenant_id is not None else ""


def _open_incident_by_group(
    session: Session, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], Incident]:
    """The open incident already gathering each (alert group, tenant), from its root alarm."""
    if not keys:
        return {}
    # Open incidents first (a few), then their root alarms by key: joined in one statement,
    # the planner, misled by statistics a storm has outdated, read every alarm of the groups.
    incidents = list(
        session.scalars(
            select(Incident)
            .where(Incident.state != IncidentState.RESOLVED, Incident.root_alarm_id.is_not(None))
            .order_by(Incident.id)
        )
    )
    if not incidents:
        return {}
    roots = {
        row.id: (row.alert_group, row.tenant_id)
        for row in session.execute(
            select(Alarm.id, Alarm.alert_group, Alarm.tenant_id).where(
                one_of(session, Alarm.id, {i.root_alarm_id for i in incidents})
            )
        )
    }
    rows = [(i, *roots[i.root_alarm_id]) for i in incidents if i.root_alarm_id in roots]
    found: dict[tuple[str, str], Incident] = {}
    for incident, group, tenant in rows:
        key = _group_key(group, tenant)
        if key in keys:
            found.setdefault(key, incident)
    return found


def _affected_by_many(session: Session, alarms: Sequence[Any]) -> list[uuid.UUID]:
    """The tenants a group of alarms affects, with one topology walk for all of them."""
    own = {a.tenant_id for a in alarms if a.tenant_id is not None}
    entities = sorted({a.entity for a in alarms if a.tenant_id is None})
    if not entities:
        return sorted(own, key=str)
    below = topology._walk(session, entities, upwards=False, depth=topology.MAX_DEPTH)
    agent_ids: list[uuid.UUID] = []
    for name in [*entities, *below]:
        if topology.kind_of(name) == "agent":
            try:
                agent_ids.append(uuid.UUID(name.split(":", 1)[1]))
            except ValueError:
                continue
    found = set(_tenants_with_agents(session, agent_ids))
    if not found and any(topology.kind_of(e) in INFRASTRUCTURE_WIDE for e in entities):
        found = set(_tenants_with_agents(session, None))
    return sorted(own | found, key=str)


def _join(session: Session, incident: Incident, tenants: Sequence[uuid.UUID]) -> None:
    """Add tenants a joining alarm affects to an open incident."""
    have = set(tenants_of(session, incident.id))
    new = [t for t in tenants if t not in have]
    session.add_all(IncidentTenant(incident_id=incident.id, tenant_id=t) for t in new)


def incidents_to_join(
    session: Session,
    problems: Sequence[tuple[str, Event]],
    *,
    rules: IncidentRules = DEFAULT_RULES,
) -> dict[str, int]:
    """identifier -> the open incident of its group, for the batch's problems bad enough for one.

    The alarm store writes it into each new alarm's row: a storm's alarms are
    stored once, where joining them afterwards rewrote every row (and every
    index entry) a second time, a third of the cost of storing the batch.
    `open_incidents_for` then records the join, and takes it back from an
    alarm that a silence or a root cause claimed in the same batch.
    """
    wanted = {
        identifier: _group_key(event.alert_group, event.tenant_id)
        for identifier, event in problems
        if rules.bad_enough(event.severity, event.alert_group)
    }
    if not wanted:
        return {}
    existing = _open_incident_by_group(session, set(wanted.values()))
    return {identifier: existing[key].id for identifier, key in wanted.items() if key in existing}


def open_incidents_for(
    session: Session,
    raised: Sequence[RaisedAlarm],
    now: datetime | None = None,
    *,
    rules: IncidentRules = DEFAULT_RULES,
) -> list[Incident]:
    """Gather the raised alarms that need an owner into incidents; returns those opened.

    Alarms of one alert group and tenant (or of the infrastructure, with no
    tenant) belong to one open incident: a storm of a hundred disks filling
    up is one incident with a hundred alarms, not a hundred pages. An alarm
    joins the open incident of its group when there is one, else the first
    alarm of its group in the batch opens one. Runs in the pipeline's
    transaction, so the alarm rows are locked by this batch.
    """
    candidates = [r.id for r in raised if not r.cleared]
    if not candidates:
        return []
    # New alarms stored already in their group's open incident (`incidents_to_join`).
    joined_at_insert = {r.id: r.incident_id for r in raised if r.created and r.incident_id}
    # Only the primary key in SQL, the rest in Python: with other conditions the planner,
    # misled by statistics a storm has outdated, walked the open-alarms index instead.
    fetched = select(
        Alarm.id,
        Alarm.severity,
        Alarm.alert_group,
        Alarm.tenant_id,
        Alarm.entity,
        Alarm.summary,
        Alarm.incident_id,
        Alarm.cleared_at,
        Alarm.suppressed_by,
        Alarm.silence_id,
    ).where(one_of(session, Alarm.id, candidates))
    rows = [
        row
        for row in session.execute(fetched.order_by(Alarm.id)).all()
        if rules.opens_incident(row)
    ]
    if joined_at_insert:
        _leave_incidents(session, set(joined_at_insert) - {row.id for row in rows})
    if not rows:
        return []
    current = {
        i.id
        for i in session.scalars(
            select(Incident).where(
                Incident.id.in_({r.incident_id for r in rows if r.incident_id is not None}),
                Incident.state != IncidentState.RESOLVED,
            )
        )
    }
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        if row.id in joined_at_insert or row.incident_id not in current:
            groups.setdefault(_group_key(row.alert_group, row.tenant_id), []).append(row)
    if not groups:
        return []
    now = escalation.current_time(session, now)
    existing = _open_incident_by_group(session, set(groups))
    opened: list[Incident] = []
    for key, members in groups.items():
        tenants = _affected_by_many(session, members)
        incident = existing.get(key)
        if incident is None:
            first = members[0]
            title = first.summary
            if len(members) > 1:
                title = f"{first.summary} (and {len(members) - 1} more {first.alert_group} alarms)"
            incident = open_incident(
                session,
                title=title,
                severity=max(m.severity for m in members),
                actor=SYSTEM_ACTOR,
                tenant_ids=tenants,
                root_alarm_id=first.id,
                now=now,
                rules=rules,
            )
            opened.append(incident)
        else:
            _join(session, incident, tenants)
            record(
                session,
                incident.id,
                "alarms_joined",
                SYSTEM_ACTOR,
                f"{len(members)} more {key[0]} alarm(s) joined",
                {"alarm_ids": [m.id for m in members[:100]]},
                at=now,
            )
        to_move = [m.id for m in members if joined_at_insert.get(m.id) != incident.id]
        if to_move:
            session.execute(
                update(Alarm)
                .where(one_of(session, Alarm.id, to_move))
                .values(incident_id=incident.id)
                .execution_options(synchronize_session=False)
            )
    return opened


def _leave_incidents(session: Session, alarm_ids: set[int]) -> None:
    """Take new alarms out of the incident they were stored in (silenced or a symptom now)."""
    if alarm_ids:
        session.execute(
            update(Alarm)
            .where(one_of(session, Alarm.id, sorted(alarm_ids)))
            .values(incident_id=None)
            .execution_options(synchronize_session=False)
        )


def resolve_cleared(
    session: Session, raised: Sequence[RaisedAlarm], now: datetime | None = None
) -> list[Incident]:
    """Resolve the open incidents whose every alarm has now cleared; returns them.

    The service's own problems end when their alarms clear (the gateway
    answers again): the incident resolves by itself, everyone paged is told,
    and the customers' resolution notice is drafted for an operator to send.
    """
    cleared = [r.id for r in raised if r.cleared]
    if not cleared:
        return []
    ids = set(
        session.scalars(
            select(Alarm.incident_id).where(Alarm.id.in_(cleared), Alarm.incident_id.is_not(None))
        )
    )
    if not ids:
        return []
    still_open = set(
        session.scalars(
            select(Alarm.incident_id).where(Alarm.incident_id.in_(ids), Alarm.cleared_at.is_(None))
        )
    )
    resolved = []
    for incident in session.scalars(
        select(Incident).where(
            Incident.id.in_(ids - still_open), Incident.state != IncidentState.RESOLVED
        )
    ):
        resolved.append(
            resolve(session, incident.id, SYSTEM_ACTOR, now=now, note="every alarm has cleared")
        )
    return resolved


def acknowledge(
    session: Session, incident_id: int, actor: str, *, now: datetime | None = None, note: str = ""
) -> Incident:
    """Someone owns it: stop paging until the acknowledgement expires (or re-acknowledge)."""
    now = escalation.current_time(session, now)
    incident = get_incident(session, incident_id)
    if incident.state == IncidentState.RESOLVED:
        raise IncidentStateError(f"incident {incident_id} is resolved")
    expires = escalation.ack_deadline(session, incident, now)
    result = session.execute(
        update(Incident)
        .where(Incident.id == incident.id, Incident.state != IncidentState.RESOLVED)
        .values(
            state=IncidentState.ACKNOWLEDGED,
            acknowledged_at=now,
            acknowledged_by=actor,
            ack_expires_at=expires,
            next_escalation_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if (result.rowcount or 0) != 1:  # type: ignore[attr-defined]
        raise IncidentStateError(f"incident {incident_id} is resolved")
    session.refresh(incident)
    record(
        session,
        incident.id,
        "acknowledged",
        actor,
        clean_text(note, 2000) if note else "",
        {"expires_at": expires.isoformat()},
        at=now,
    )
    return incident


def resolve(
    session: Session, incident_id: int, actor: str, *, now: datetime | None = None, note: str = ""
) -> Incident:
    """It is over: stop the clock, tell everyone paged, draft the customers' resolution notice."""
    now = escalation.current_time(session, now)
    incident = get_incident(session, incident_id)
    result = session.execute(
        update(Incident)
        .where(Incident.id == incident.id, Incident.state != IncidentState.RESOLVED)
        .values(
            state=IncidentState.RESOLVED,
            resolved_at=now,
            resolved_by=actor,
            next_escalation_at=None,
            ack_expires_at=None,
            next_customer_update_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if (result.rowcount or 0) != 1:  # type: ignore[attr-defined]
        raise IncidentStateError(f"incident {incident_id} is already resolved")
    session.refresh(incident)
    record(session, incident.id, "resolved", actor, clean_text(note, 2000) if note else "", at=now)
    escalation.notify_resolved(session, incident, now)
    if tenants_of(session, incident.id):
        customer_updates.draft_resolution_notice(session, incident, now=now)
    return incident


def tenants_of(session: Session, incident_id: int) -> list[uuid.UUID]:
    """The tenants an incident affects."""
    return list(
        session.scalars(
            select(IncidentTenant.tenant_id)
            .where(IncidentTenant.incident_id == incident_id)
            .order_by(IncidentTenant.tenant_id)
        )
    )


def list_incidents(
    session: Session,
    *,
    state: IncidentState | None = None,
    tenant_id: uuid.UUID | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Incident]:
    """Incidents newest first; with `tenant_id`, only those affecting that tenant."""
    stmt = select(Incident).order_by(Incident.created_at.desc(), Incident.id.desc())
    if state is not None:
        stmt = stmt.where(Incident.state == state)
    if tenant_id is not None:
        stmt = stmt.where(
            Incident.id.in_(
                select(IncidentTenant.incident_id).where(IncidentTenant.tenant_id == tenant_id)
            )
        )
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def visible_incident(session: Session, incident_id: int, tenant_id: uuid.UUID | None) -> Incident:
    """The incident, if a caller of `tenant_id` (None: staff) may see it; 404 otherwise."""
    incident = get_incident(session, incident_id)
    if tenant_id is not None and tenant_id not in tenants_of(session, incident_id):
        raise IncidentNotFoundError(f"no incident {incident_id}")
    return incident


def incident_duties(catalog: Catalog, settings: ServerSettings) -> list[Duty]:
    """The background work incidents and cases need, for the duty runner.

    Escalation tick, outbox delivery, customer update reminders and case
    update reminders; each takes its time from the duty context (the test
    clock, else the database's clock).
    """
    from vaultwatch.soc.duties import Duty, DutyContext  # the runner imports the pipeline

    senders: dict[NotificationChannel, Sender] = {NotificationChannel.WEBHOOK: WebhookSender()}
    smtp = smtp_settings(settings.extra, settings.data_dir)
    if smtp is not None:
        senders[NotificationChannel.EMAIL] = EmailSender(smtp)

    def escalate(ctx: DutyContext) -> int:
        with ctx.session() as session:
            return escalation.escalate_due(session, ctx.now(session))

    def deliver(ctx: DutyContext) -> int:
        with catalog.session() as session:
            now = ctx.now(session)
        return deliver_due(catalog, senders, now).attempted

    def customer_reminders(ctx: DutyContext) -> int:
        with ctx.session() as session:
            return customer_updates.remind_due_updates(session, ctx.now(session))

    def case_reminders(ctx: DutyContext) -> int:
        with ctx.session() as session:
            return cases.remind_due_cases(session, ctx.now(session))

    return [
        Duty("incidents.escalate", 2.0, escalate),
        Duty("notifications.deliver", 2.0, deliver),
        Duty("incidents.customer-updates", 60.0, customer_reminders),
        Duty("cases.status-updates", 300.0, case_reminders),
    ]
