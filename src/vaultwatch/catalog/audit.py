"""The audit log: every privileged action, recorded in the same transaction as the action.

Recording inside the caller's transaction means an action and its audit
entry land together or not at all. Details never carry secrets: values under
keys that look like secrets are replaced before they are stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from vaultwatch.catalog.models import AuditEntry
from vaultwatch.catalog.types import utcnow

REDACTED = "[redacted]"
_SECRET_WORDS = ("password", "passphrase", "secret", "token", "credential")


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    if lowered.endswith(("_id", "_prefix")) or lowered in ("prefix", "key_id"):
        return False
    if lowered == "key" or lowered.endswith("_key"):
        return True
    return any(word in lowered for word in _SECRET_WORDS)


def redact(details: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `details` with secret-looking values replaced, at any depth."""
    clean: dict[str, Any] = {}
    for name, value in details.items():
        if _looks_secret(name):
            clean[name] = REDACTED
        elif isinstance(value, Mapping):
            clean[name] = redact(value)
        else:
            clean[name] = value
    return clean


def user_actor(user_id: uuid.UUID) -> str:
    """How a person appears as an actor."""
    return f"user:{user_id}"


def agent_actor(agent_id: uuid.UUID) -> str:
    """How an agent appears as an actor."""
    return f"agent:{agent_id}"


def system_actor(duty: str) -> str:
    """How a background duty of the service appears as an actor."""
    return f"system:{duty}"


def record(
    session: Session,
    actor: str,
    action: str,
    tenant_id: uuid.UUID | None,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> AuditEntry:
    """Add an audit entry to the session's transaction and return it.

    `actor` is `user:<id>`, `agent:<id>` or `system:<duty>` (see the helpers);
    `action` is a dotted verb such as `tenant.create`; `target` names the thing
    acted on, e.g. `agent:<id>`.
    """
    if not actor or not action:
        raise ValueError("an audit entry needs an actor and an action")
    entry = AuditEntry(
        occurred_at=at or utcnow(),
        actor=actor,
        action=action,
        tenant_id=tenant_id,
        target=target,
        details=redact(details or {}),
    )
    session.add(entry)
    return entry
