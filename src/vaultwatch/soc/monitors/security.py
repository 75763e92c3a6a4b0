"""Security monitor: what the audit log says an agent tried and was refused.

An agent credential may only add objects to its vault; a delete or an
overwrite is refused and audited by the gateway (``vault.delete_refused``,
``vault.overwrite_refused``). Ransomware on a customer's server tries exactly
that, so each refusal raises a major ``vault.write_refused`` alarm on the
agent. The monitor reads the audit log after the last entry it saw (each
entry counts once: its id names the occurrence), so the gateway stays
unaware of the operations center.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from vaultwatch.catalog.models import AuditEntry
from vaultwatch.catalog.soc_models import EventSource, Severity
from vaultwatch.soc.duties import DutyContext
from vaultwatch.soc.events import Event
from vaultwatch.soc.monitors import emit

REFUSED = ("vault.delete_refused", "vault.overwrite_refused")
WRITE_REFUSED = "vault.write_refused"
#: How far back a monitor that just started reads the audit log.
START_LOOKBACK = timedelta(hours=1)
MAX_ENTRIES = 1000


def refused_write_events(session: Session, after_id: int | None) -> tuple[list[Event], int | None]:
    """Events for refused writes audited after `after_id` (None: the last hour); the new mark."""
    stmt = select(AuditEntry).where(AuditEntry.action.in_(REFUSED))
    if after_id is None:
        newest = session.scalar(select(AuditEntry.occurred_at).order_by(AuditEntry.id.desc()))
        if newest is None:
            return [], None
        stmt = stmt.where(AuditEntry.occurred_at >= newest - START_LOOKBACK)
    else:
        stmt = stmt.where(AuditEntry.id > after_id)
    entries = list(session.scalars(stmt.order_by(AuditEntry.id).limit(MAX_ENTRIES)))
    mark = entries[-1].id if entries else after_id
    if mark is None:
        mark = session.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()))
    events = []
    for entry in entries:
        kind, _, ident = entry.actor.partition(":")
        if kind != "agent":
            continue
        try:
            agent_id = uuid.UUID(ident)
        except ValueError:
            continue
        hostname = str((entry.details or {}).get("hostname") or f"agent {agent_id}")
        verb = "delete" if entry.action == "vault.delete_refused" else "overwrite"
        events.append(
            Event(
                node=hostname,
                alert_group=WRITE_REFUSED,
                entity=f"agent:{agent_id}",
                identifier=f"agent:{agent_id}|{WRITE_REFUSED}",
                tenant_id=entry.tenant_id,
                agent_id=agent_id,
                source=EventSource.MONITOR,
                severity=Severity.MAJOR,
                summary=f"agent {hostname} tried to {verb} {entry.target or 'an object'} in its "
                "vault and was refused (agents may only add; ransomware tries this)",
                occurrence_key=f"audit:{entry.id}",
                attributes={"audit_id": str(entry.id), "action": entry.action},
            )
        )
    return events, mark


def security_duty() -> Callable[[DutyContext], object]:
    """The leased duty: turn new refusals in the audit log into alarms."""
    mark: dict[str, int | None] = {"after": None}

    def run(context: DutyContext) -> object:
        with context.session() as session:
            events, after = refused_write_events(session, mark["after"])
            changed = len(emit(session, events, now=context.now(session))) if events else 0
        mark["after"] = after
        return changed

    return run
