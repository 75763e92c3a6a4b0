"""What the customer portal reads and records beyond the protection status.

Storage used, the tenant's people and enrollment tokens, the crises that
affect it, where its agents enroll, and restore requests (recorded as SOC
events so an operator follows each one up). Every function works in the
caller's session: the portal opens it scoped to the customer's tenant, so a
row of another tenant is never seen and an id of one is "not found".
"""

from __future__ import annotations

import enum
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vaultwatch.catalog import audit
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.models import Agent, BackupSet, EnrollmentToken, Snapshot, User
from vaultwatch.catalog.soc_models import (
    EventSource,
    Incident,
    IncidentState,
    IncidentTenant,
    ServerNode,
    Severity,
)
from vaultwatch.soc.alarms import RaisedAlarm
from vaultwatch.soc.events import Event
from vaultwatch.soc.pipeline import process_events

RESTORE_GROUP = "restore.requested"
MAX_TARGET = 1024
MAX_NOTE = 2000
#: Long enough to resist guessing, short enough to type once before changing it.
ONE_TIME_PASSWORD_BYTES = 12


class SnapshotNotFoundError(CatalogError):
    """No snapshot with this id on this server (or it belongs to another tenant)."""

    http_status = 404


class TokenState(enum.StrEnum):
    """Where an enrollment token stands."""

    UNUSED = "unused"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True)
class TokenInfo:
    """An enrollment token as the tenant's admins see it (never its secret)."""

    id: uuid.UUID
    prefix: str
    note: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    agent_id: uuid.UUID | None
    hostname: str | None
    state: TokenState


@dataclass(frozen=True)
class RestoreRequest:
    """A recorded restore request: the alarm the SOC sees and what it names."""

    alarm: RaisedAlarm
    snapshot_id: uuid.UUID
    summary: str


def storage_by_agent(session: Session) -> dict[uuid.UUID | None, int]:
    """Bytes each server added to the vault (snapshots' `bytes_added`); None: rebuilt rows."""
    rows = session.execute(
        select(Snapshot.agent_id, func.coalesce(func.sum(Snapshot.bytes_added), 0)).group_by(
            Snapshot.agent_id
        )
    )
    return {agent_id: int(total) for agent_id, total in rows}


def storage_by_set(session: Session, agent_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Bytes each backup set of one server added to the vault."""
    rows = session.execute(
        select(Snapshot.backup_set_id, func.coalesce(func.sum(Snapshot.bytes_added), 0))
        .join(BackupSet, BackupSet.id == Snapshot.backup_set_id)
        .where(BackupSet.agent_id == agent_id)
        .group_by(Snapshot.backup_set_id)
    )
    return {set_id: int(total) for set_id, total in rows if set_id is not None}


def open_crises(session: Session, tenant_id: uuid.UUID) -> list[Incident]:
    """Unresolved crisis incidents that affect the tenant, newest first."""
    return list(
        session.scalars(
            select(Incident)
            .where(
                Incident.crisis.is_(True),
                Incident.state != IncidentState.RESOLVED,
                Incident.id.in_(
                    select(IncidentTenant.incident_id).where(IncidentTenant.tenant_id == tenant_id)
                ),
            )
            .order_by(Incident.created_at.desc(), Incident.id.desc())
        )
    )


def incident_titles(session: Session, incident_ids: set[int]) -> dict[int, Incident]:
    """The incidents behind a tenant's notices, by id."""
    if not incident_ids:
        return {}
    return {i.id: i for i in session.scalars(select(Incident).where(Incident.id.in_(incident_ids)))}


def tenant_users(session: Session) -> list[User]:
    """The users the session sees (a tenant's session: its own people), by email."""
    return list(session.scalars(select(User).order_by(func.lower(User.email))))


def one_time_password() -> str:
    """A random first password for a new user, shown once to the admin who made it."""
    return secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)


def enrollment_tokens(
    session: Session, *, now: datetime | None = None, limit: int = 100
) -> list[TokenInfo]:
    """The tenant's enrollment tokens, newest first, with the server that used each."""
    now = now or database_now(session)
    rows = session.execute(
        select(EnrollmentToken, Agent.hostname)
        .outerjoin(Agent, Agent.id == EnrollmentToken.agent_id)
        .order_by(EnrollmentToken.created_at.desc(), EnrollmentToken.id)
        .limit(limit)
    )
    out = []
    for token, hostname in rows:
        if token.used_at is not None:
            state = TokenState.USED
        elif token.expires_at <= now:
            state = TokenState.EXPIRED
        else:
            state = TokenState.UNUSED
        out.append(
            TokenInfo(
                id=token.id,
                prefix=token.prefix,
                note=token.note,
                created_at=token.created_at,
                expires_at=token.expires_at,
                used_at=token.used_at,
                agent_id=token.agent_id,
                hostname=hostname,
                state=state,
            )
        )
    return out


def gateway_urls(session: Session) -> list[str]:
    """The URLs of the service's gateway nodes that announce one, by site and name."""
    nodes = session.scalars(
        select(ServerNode)
        .where(ServerNode.url.is_not(None))
        .order_by(ServerNode.site, ServerNode.name)
    )
    return [n.url for n in nodes if n.url and "gateway" in (n.roles or [])]


def _clean(value: str, limit: int, what: str) -> str:
    text = " ".join(value.split()) if isinstance(value, str) else ""
    if len(text) > limit:
        raise ValidationError(f"{what} must be at most {limit} characters")
    if not text.isprintable():
        raise ValidationError(f"{what} must not contain control characters")
    return text


def request_restore(
    session: Session,
    agent_id: uuid.UUID,
    snapshot_id: uuid.UUID,
    *,
    actor: str,
    requested_by: str,
    target: str = "",
    note: str = "",
    now: datetime | None = None,
) -> RestoreRequest:
    """Record a customer's restore request: an SOC event for an operator and an audit entry.

    The snapshot must be one of `agent_id`'s (in the session's tenant). An
    empty target means "to the original location".
    """
    where = _clean(target, MAX_TARGET, "the restore target") or "the original location"
    remark = _clean(note, MAX_NOTE, "the note")
    row = session.execute(
        select(Snapshot, Agent)
        .join(Agent, Agent.id == Snapshot.agent_id)
        .where(Snapshot.id == snapshot_id, Snapshot.agent_id == agent_id)
    ).first()
    if row is None:
        raise SnapshotNotFoundError(f"no snapshot {snapshot_id} on this server")
    snapshot, agent = row
    now = now or database_now(session)
    summary = (
        f"restore requested by {requested_by}: snapshot {snapshot.vault_snapshot_id[:12]} "
        f"of {agent.hostname} ({snapshot.finished_at:%Y-%m-%d %H:%M} UTC) to {where}"
    )
    event = Event(
        node=agent.hostname,
        alert_group=RESTORE_GROUP,
        summary=summary,
        severity=Severity.INDETERMINATE,
        alert_key=f"{snapshot.id}|{where}",
        source=EventSource.INTERNAL,
        entity=f"agent:{agent.id}",
        tenant_id=agent.tenant_id,
        agent_id=agent.id,
        occurred_at=now,
        attributes={
            "snapshot_id": str(snapshot.id),
            "vault_snapshot_id": snapshot.vault_snapshot_id,
            "target": where,
            "requested_by": requested_by,
            **({"note": remark} if remark else {}),
        },
    )
    raised = process_events(session, [event], now=now)
    audit.record(
        session,
        actor,
        "restore.request",
        agent.tenant_id,
        target=f"snapshot:{snapshot.id}",
        details={"agent_id": str(agent.id), "target": where, "alarm_id": raised[0].id},
        at=now,
    )
    return RestoreRequest(raised[0], snapshot.id, summary)


__all__ = [
    "RESTORE_GROUP",
    "RestoreRequest",
    "SnapshotNotFoundError",
    "TokenInfo",
    "TokenState",
    "enrollment_tokens",
    "gateway_urls",
    "incident_titles",
    "one_time_password",
    "open_crises",
    "request_restore",
    "storage_by_agent",
    "storage_by_set",
    "tenant_users",
]
