"""Escalation policies and the incident clock: who is paged, when, and what the timeline says.

A policy is a list of levels, each with targets and a timeout. A triggered
incident pages level 0 at once; when a level's timeout passes unacknowledged
the next level is paged; after the last level the policy starts again from
level 0, `repeat` more times, then stops. Acknowledging stops the clock for
`ack_timeout_seconds`; an acknowledgement that runs out re-triggers the
incident at level 0. Resolving tells everyone who was paged.

Every step is one conditional UPDATE of the incident (it still has the state
and due time this node read), so two nodes ticking at once make each step
once; pages are outbox rows with a dedup key naming the step, so even a
repeated step queues no second page. Times are always passed in (`now`), so
tests drive the clock.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.models import User
from vaultwatch.catalog.soc_models import (
    EscalationPolicy,
    Incident,
    IncidentEvent,
    IncidentState,
    NotificationChannel,
    Severity,
)
from vaultwatch.catalog.users import normalize_email
from vaultwatch.protocol import API_PREFIX
from vaultwatch.soc.events import clean_text
from vaultwatch.soc.notify.outbox import queue_notification
from vaultwatch.soc.notify.webhook import check_webhook_url

SYSTEM_ACTOR = "system:escalation"
DEFAULT_POLICY = "default"
TARGET_KINDS = ("user", "email", "webhook")
MAX_LEVELS = 10
MAX_TARGETS = 20
MAX_REPEAT = 20
MIN_TIMEOUT = 1
MAX_TIMEOUT = 7 * 86400
DEFAULT_ACK_TIMEOUT = 3600
DEFAULT_UPDATE_INTERVAL = 3600


class PolicyNotFoundError(CatalogError):
    """No escalation policy has this id or name."""

    http_status = 404


class PolicyExistsError(CatalogError):
    """An escalation policy with this name already exists."""

    http_status = 409


class IncidentNotFoundError(CatalogError):
    """No incident has this id (or the caller's tenant is not affected by it)."""

    http_status = 404


@dataclass(frozen=True)
class Target:
    """Where one page goes once a policy target is resolved."""

    channel: NotificationChannel
    recipient: str
    label: str


# -- policies ----------------------------------------------------------------------------------


def _seconds(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError(f"{what} must be a whole number of seconds from {low} to {high}")
    return value


def _check_target(target: Any, where: str) -> dict[str, str]:
    if not isinstance(target, dict):
        raise ValidationError(f"{where} must be an object with kind and address")
    kind = target.get("kind")
    address = target.get("address")
    if kind not in TARGET_KINDS:
        raise ValidationError(f"{where} kind must be one of {', '.join(TARGET_KINDS)}")
    if not isinstance(address, str) or not address.strip():
        raise ValidationError(f"{where} needs an address")
    if kind == "email":
        address = normalize_email(address)
    elif kind == "webhook":
        address = check_webhook_url(address)
    else:
        address = address.strip()
        try:
            address = str(uuid.UUID(address))
        except ValueError:
            address = normalize_email(address)
    return {"kind": kind, "address": address}


def check_levels(levels: Any) -> list[dict[str, Any]]:
    """A policy's levels, validated and cleaned; ValidationError names the first bad one."""
    if not isinstance(levels, list) or not 1 <= len(levels) <= MAX_LEVELS:
        raise ValidationError(f"a policy needs 1 to {MAX_LEVELS} levels")
    cleaned: list[dict[str, Any]] = []
    for n, level in enumerate(levels):
        if not isinstance(level, dict):
            raise ValidationError(f"level {n} must be an object with targets and timeout_seconds")
        targets = level.get("targets")
        if not isinstance(targets, list) or not 1 <= len(targets) <= MAX_TARGETS:
            raise ValidationError(f"level {n} needs 1 to {MAX_TARGETS} targets")
        cleaned.append(
            {
                "targets": [
                    _check_target(t, f"level {n} target {i}") for i, t in enumerate(targets)
                ],
                "timeout_seconds": _seconds(
                    level.get("timeout_seconds"),
                    f"level {n} timeout_seconds",
                    MIN_TIMEOUT,
                    MAX_TIMEOUT,
                ),
            }
        )
    return cleaned


def create_policy(
    session: Session,
    *,
    name: str,
    levels: Any,
    repeat: int = 0,
    ack_timeout_seconds: int = DEFAULT_ACK_TIMEOUT,
    customer_update_interval_seconds: int = DEFAULT_UPDATE_INTERVAL,
) -> EscalationPolicy:
    """Store a validated policy; PolicyExistsError when the name is taken."""
    clean_name = clean_text(name, 200) if isinstance(name, str) else ""
    if not clean_name:
        raise ValidationError("a policy needs a name")
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 0 <= repeat <= MAX_REPEAT:
        raise ValidationError(f"repeat must be from 0 to {MAX_REPEAT}")
    policy = EscalationPolicy(
        name=clean_name,
        levels=check_levels(levels),
        repeat=repeat,
        ack_timeout_seconds=_seconds(ack_timeout_seconds, "ack_timeout_seconds", 60, MAX_TIMEOUT),
        customer_update_interval_seconds=_seconds(
            customer_update_interval_seconds, "customer_update_interval_seconds", 60, MAX_TIMEOUT
        ),
    )
    if session.scalar(select(EscalationPolicy.id).where(EscalationPolicy.name == clean_name)):
        raise PolicyExistsError(f"an escalation policy named {clean_name!r} already exists")
    try:
        with session.begin_nested():
            session.add(policy)
            session.flush()
    except IntegrityError:
        raise PolicyExistsError(
            f"an escalation policy named {clean_name!r} already exists"
        ) from None
    return policy


def get_policy(session: Session, ref: int | str) -> EscalationPolicy:
    """A policy by id or by name."""
    if isinstance(ref, int):
        policy = session.get(EscalationPolicy, ref)
    else:
        policy = session.scalar(select(EscalationPolicy).where(EscalationPolicy.name == ref))
    if policy is None:
        raise PolicyNotFoundError(f"no escalation policy {ref!r}")
    return policy


def list_policies(session: Session) -> list[EscalationPolicy]:
    """Every policy, by name."""
    return list(session.scalars(select(EscalationPolicy).order_by(EscalationPolicy.name)))


# -- the timeline ------------------------------------------------------------------------------


def record(
    session: Session,
    incident_id: int,
    kind: str,
    actor: str,
    text: str = "",
    details: dict[str, Any] | None = None,
    *,
    at: datetime,
) -> IncidentEvent:
    """Add one step to an incident's timeline (in the transaction that made the step)."""
    entry = IncidentEvent(
        incident_id=incident_id, at=at, kind=kind, actor=actor, text=text, details=details or {}
    )
    session.add(entry)
    return entry


def timeline(session: Session, incident_id: int) -> list[IncidentEvent]:
    """An incident's timeline, oldest first."""
    return list(
        session.scalars(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident_id)
            .order_by(IncidentEvent.at, IncidentEvent.id)
        )
    )


def get_incident(session: Session, incident_id: int) -> Incident:
    """The incident `incident_id`; IncidentNotFoundError when there is none."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise IncidentNotFoundError(f"no incident {incident_id}")
    return incident


# -- paging ------------------------------------------------------------------------------------


def resolve_target(session: Session, target: dict[str, Any]) -> Target | None:
    """Where a policy target's page goes; None for a user who is gone or disabled."""
    kind, address = target.get("kind"), str(target.get("address", ""))
    if kind == "email":
        return Target(NotificationChannel.EMAIL, address, address)
    if kind == "webhook":
        return Target(NotificationChannel.WEBHOOK, address, address)
    users = User.__table__.c  # the core table: staff are invisible to a tenant's session
    try:
        match = users.id == uuid.UUID(address)
    except ValueError:
        match = func.lower(users.email) == address.lower()
    row = session.execute(select(users.id, users.email, users.disabled_at).where(match)).first()
    if row is None or row.disabled_at is not None:
        return None
    return Target(NotificationChannel.EMAIL, row.email, f"user:{row.id}")


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]


def _page_text(incident: Incident, level: int, round_: int) -> tuple[str, str]:
    severity = Severity(incident.severity).label.upper()
    subject = f"[{severity}] Incident #{incident.id}: {incident.title}"
    body = (
        f"Incident #{incident.id} needs an owner.\n\n"
        f"Title:     {incident.title}\n"
        f"Severity:  {severity.lower()}\n"
        f"Escalation level {level}, round {round_ + 1}.\n"
        f"{'Crisis: many tenants are affected.' + chr(10) if incident.crisis else ''}\n"
        "Acknowledge it in the console or with "
        f"POST {API_PREFIX}/incidents/{incident.id}/ack to stop the paging.\n"
    )
    return subject, body


def page_level(
    session: Session, incident: Incident, policy: EscalationPolicy, *, step: datetime, now: datetime
) -> int:
    """Queue pages for every target of the incident's current level; returns how many queued.

    `step` (the due time being handled) names the step in each dedup key, so a
    re-trigger pages again while a repeated step does not.
    """
    levels = policy.levels
    if not 0 <= incident.escalation_level < len(levels):
        return 0
    level = levels[incident.escalation_level]
    subject, body = _page_text(incident, incident.escalation_level, incident.escalation_round)
    queued = 0
    for spec in level.get("targets", []):
        target = resolve_target(session, spec)
        if target is None:
            record(
                session,
                incident.id,
                "page_skipped",
                SYSTEM_ACTOR,
                f"{spec.get('kind')} {spec.get('address')} cannot be paged (unknown or disabled)",
                {"level": incident.escalation_level, "target": spec},
                at=now,
            )
            continue
        key = (
            f"incident:{incident.id}:page:{step.isoformat()}:"
            f"{_digest(incident.escalation_round, incident.escalation_level, target.channel, target.recipient)}"
        )
        if queue_notification(
            session,
            dedup_key=key,
            channel=target.channel,
            recipient=target.recipient,
            subject=subject,
            body=body,
            incident_id=incident.id,
            now=now,
        ):
            queued += 1
            record(
                session,
                incident.id,
                "paged",
                SYSTEM_ACTOR,
                f"paged {target.label} by {target.channel.value}",
                {
                    "level": incident.escalation_level,
                    "round": incident.escalation_round,
                    "channel": target.channel.value,
                    "recipient": target.recipient,
                    "target": target.label,
                    "notification": key,
                },
                at=now,
            )
    return queued


def level_timeout(policy: EscalationPolicy, level: int) -> timedelta:
    """How long level `level` has before the next one is paged."""
    return timedelta(seconds=int(policy.levels[level]["timeout_seconds"]))


def start(session: Session, incident: Incident, now: datetime) -> int:
    """Page level 0 of a just-triggered incident and set its clock; returns pages queued."""
    policy = session.get(EscalationPolicy, incident.policy_id) if incident.policy_id else None
    if policy is None or not policy.levels:
        incident.next_escalation_at = None
        record(
            session,
            incident.id,
            "no_policy",
            SYSTEM_ACTOR,
            "no escalation policy: nobody paged",
            at=now,
        )
        return 0
    incident.escalation_level = 0
    incident.escalation_round = 0
    incident.next_escalation_at = now + level_timeout(policy, 0)
    session.flush()
    return page_level(session, incident, policy, step=now, now=now)


def _guarded(
    session: Session, incident: Incident, expect: dict[str, Any], values: dict[str, Any]
) -> bool:
    """Apply `values` if the incident still has `expect` (another node may have moved it)."""
    conditions = [Incident.id == incident.id]
    for name, value in expect.items():
        column = getattr(Incident, name)
        conditions.append(column.is_(None) if value is None else column == value)
    result = session.execute(
        update(Incident)
        .where(*conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if (result.rowcount or 0) != 1:  # type: ignore[attr-defined]
        return False
    session.refresh(incident)
    return True


def _next_step(policy: EscalationPolicy, level: int, round_: int) -> tuple[int, int] | None:
    if level + 1 < len(policy.levels):
        return level + 1, round_
    if round_ < policy.repeat:
        return 0, round_ + 1
    return None


def _escalate(session: Session, incident: Incident, now: datetime) -> int:
    due = incident.next_escalation_at
    assert due is not None
    policy = session.get(EscalationPolicy, incident.policy_id) if incident.policy_id else None
    expect = {"state": IncidentState.TRIGGERED.value, "next_escalation_at": due}
    step = (
        _next_step(policy, incident.escalation_level, incident.escalation_round) if policy else None
    )
    if policy is None or step is None:
        if _guarded(session, incident, expect, {"next_escalation_at": None}):
            record(
                session,
                incident.id,
                "escalation_exhausted",
                SYSTEM_ACTOR,
                "every level has been paged; nobody acknowledged",
                at=now,
            )
        return 0
    level, round_ = step
    values = {
        "escalation_level": level,
        "escalation_round": round_,
        "next_escalation_at": now + level_timeout(policy, level),
    }
    if not _guarded(session, incident, expect, values):
        return 0
    kind = "escalated" if level > 0 else "repeated"
    record(
        session,
        incident.id,
        kind,
        SYSTEM_ACTOR,
        f"not acknowledged in time: level {level}, round {round_ + 1}",
        {"level": level, "round": round_},
        at=now,
    )
    return page_level(session, incident, policy, step=due, now=now)


def _retrigger(session: Session, incident: Incident, now: datetime) -> int:
    expires = incident.ack_expires_at
    assert expires is not None
    policy = session.get(EscalationPolicy, incident.policy_id) if incident.policy_id else None
    values: dict[str, Any] = {
        "state": IncidentState.TRIGGERED.value,
        "ack_expires_at": None,
        "escalation_level": 0,
        "escalation_round": 0,
        "next_escalation_at": now + level_timeout(policy, 0) if policy and policy.levels else None,
    }
    expect = {"state": IncidentState.ACKNOWLEDGED.value, "ack_expires_at": expires}
    if not _guarded(session, incident, expect, values):
        return 0
    record(
        session,
        incident.id,
        "ack_expired",
        SYSTEM_ACTOR,
        f"the acknowledgement by {incident.acknowledged_by} ran out: triggered again",
        {"acknowledged_by": incident.acknowledged_by},
        at=now,
    )
    if policy is None or not policy.levels:
        return 0
    return page_level(session, incident, policy, step=expires, now=now)


def escalate_due(session: Session, now: datetime, *, limit: int = 500) -> int:
    """The escalation tick: page the next level where a timeout passed, re-trigger expired acks.

    Returns how many pages were queued.
    """
    due: Sequence[Incident] = session.scalars(
        select(Incident)
        .where(Incident.state == IncidentState.TRIGGERED, Incident.next_escalation_at <= now)
        .order_by(Incident.next_escalation_at, Incident.id)
        .limit(limit)
    ).all()
    expired: Sequence[Incident] = session.scalars(
        select(Incident)
        .where(Incident.state == IncidentState.ACKNOWLEDGED, Incident.ack_expires_at <= now)
        .order_by(Incident.ack_expires_at, Incident.id)
        .limit(limit)
    ).all()
    pages = 0
    for incident in due:
        pages += _escalate(session, incident, now)
    for incident in expired:
        pages += _retrigger(session, incident, now)
    return pages


def ack_deadline(session: Session, incident: Incident, now: datetime) -> datetime:
    """When an acknowledgement made `now` runs out under the incident's policy."""
    policy = session.get(EscalationPolicy, incident.policy_id) if incident.policy_id else None
    seconds = policy.ack_timeout_seconds if policy else DEFAULT_ACK_TIMEOUT
    return now + timedelta(seconds=seconds)


def notify_resolved(session: Session, incident: Incident, now: datetime) -> int:
    """Tell everyone who was paged for the incident that it is resolved; returns how many."""
    paged: dict[tuple[str, str], None] = {}
    for entry in timeline(session, incident.id):
        if entry.kind == "paged":
            paged[(str(entry.details.get("channel")), str(entry.details.get("recipient")))] = None
    subject = f"[RESOLVED] Incident #{incident.id}: {incident.title}"
    body = (
        f"Incident #{incident.id} was resolved by {incident.resolved_by} "
        f"at {now.isoformat(timespec='seconds')}.\n\nTitle: {incident.title}\n"
    )
    told = 0
    for channel, recipient in paged:
        key = f"incident:{incident.id}:resolved:{_digest(channel, recipient)}"
        if queue_notification(
            session,
            dedup_key=key,
            channel=NotificationChannel(channel),
            recipient=recipient,
            subject=subject,
            body=body,
            incident_id=incident.id,
            now=now,
        ):
            told += 1
            record(
                session,
                incident.id,
                "notified",
                SYSTEM_ACTOR,
                f"told {recipient} by {channel} that it is resolved",
                {"channel": channel, "recipient": recipient, "notification": key},
                at=now,
            )
    return told


def current_time(session: Session, now: datetime | None) -> datetime:
    """`now` when the caller drives the clock, else the database's time."""
    return now if now is not None else database_now(session)
