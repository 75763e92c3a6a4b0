"""The notification outbox: queue once, claim before sending, retry with backoff, give up.

Queueing is ``INSERT ... ON CONFLICT (dedup_key) DO NOTHING``: when several
nodes decide to send the same page, one row exists. Delivery claims rows with
one conditional UPDATE (pending, due, and not claimed by a live claim), so two
nodes delivering at once never both own a row; the claimer sends, then marks
the row sent. A node that dies mid-send leaves a claim that expires after
`claim_seconds`, and another node sends it then: delivery is exactly once
while nodes live, at least once when one dies between sending and recording.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vaultwatch.backoff import backoff_bound
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import Notification, NotificationChannel, NotificationState
from vaultwatch.errors import VaultwatchError
from vaultwatch.soc.events import clean_text

log = logging.getLogger("vaultwatch.soc.notify")

MAX_ATTEMPTS = 5
BASE_DELAY_SECONDS = 30.0
MAX_DELAY_SECONDS = 3600.0
CLAIM_SECONDS = 120.0
BATCH = 100
MAX_SUBJECT = 300
MAX_RECIPIENT = 500
MAX_BODY = 20000
MAX_DEDUP_KEY = 300


class DeliveryError(VaultwatchError):
    """A sender could not hand a message over (connection refused, rejected, timed out)."""

    http_status = 502


@dataclass(frozen=True)
class OutgoingMessage:
    """What a sender needs of one outbox row."""

    id: int
    dedup_key: str
    channel: NotificationChannel
    recipient: str
    subject: str
    body: str
    tenant_id: uuid.UUID | None
    incident_id: int | None
    case_id: int | None


class Sender(Protocol):
    """Delivers one message over one channel; raises DeliveryError when it cannot."""

    def send(self, message: OutgoingMessage) -> None:
        """Hand `message` over, or raise."""


@dataclass
class DeliveryReport:
    """What one `deliver_due` pass did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        """Messages this pass claimed and tried."""
        return self.sent + self.retried + self.failed


def retry_delay(
    attempts: int, base: float = BASE_DELAY_SECONDS, maximum: float = MAX_DELAY_SECONDS
) -> float:
    """Seconds before the next try after `attempts` failures: doubling from `base`, capped.

    Deterministic (no jitter): the outbox is drained by one duty per node,
    not by a fleet, and a stored due time must be reproducible in tests.
    """
    return backoff_bound(attempts - 1, base, maximum)


def queue_notification(
    session: Session,
    *,
    dedup_key: str,
    channel: NotificationChannel,
    recipient: str,
    subject: str,
    body: str,
    tenant_id: uuid.UUID | None = None,
    incident_id: int | None = None,
    case_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Queue a message unless one with `dedup_key` exists; True when this call queued it."""
    key = dedup_key.strip()
    if not key or len(key) > MAX_DEDUP_KEY:
        raise ValidationError(f"a notification key must be 1 to {MAX_DEDUP_KEY} characters")
    address = recipient.strip()
    if not address or len(address) > MAX_RECIPIENT:
        raise ValidationError(f"a notification recipient must be 1 to {MAX_RECIPIENT} characters")
    now = now or database_now(session)
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert_fn(Notification)
        .values(
            dedup_key=key,
            tenant_id=tenant_id,
            channel=NotificationChannel(channel).value,
            recipient=address,
            subject=clean_text(subject, MAX_SUBJECT) or "(no subject)",
            body=body[:MAX_BODY],
            incident_id=incident_id,
            case_id=case_id,
            state=NotificationState.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Notification.dedup_key])
        .returning(Notification.id)
    )
    return session.execute(stmt).first() is not None


def _node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _claim(
    catalog: Catalog,
    channels: Sequence[NotificationChannel],
    now: datetime,
    claimer: str,
    claim_seconds: float,
    limit: int,
) -> list[OutgoingMessage]:
    free = or_(Notification.claimed_until.is_(None), Notification.claimed_until <= now)
    due = (
        Notification.state == NotificationState.PENDING,
        Notification.next_attempt_at <= now,
        Notification.channel.in_(list(channels)),
        free,
    )
    with catalog.session() as session:
        ids = list(
            session.scalars(
                select(Notification.id)
                .where(*due)
                .order_by(Notification.next_attempt_at, Notification.id)
                .limit(limit)
            )
        )
        if not ids:
            return []
        rows = session.execute(
            update(Notification)
            .where(Notification.id.in_(ids), *due)
            .values(claimed_by=claimer, claimed_until=now + timedelta(seconds=claim_seconds))
            .returning(
                Notification.id,
                Notification.dedup_key,
                Notification.channel,
                Notification.recipient,
                Notification.subject,
                Notification.body,
                Notification.tenant_id,
                Notification.incident_id,
                Notification.case_id,
            )
            .execution_options(synchronize_session=False)
        ).all()
    return sorted(
        (
            OutgoingMessage(
                id=r.id,
                dedup_key=r.dedup_key,
                channel=NotificationChannel(r.channel),
                recipient=r.recipient,
                subject=r.subject,
                body=r.body,
                tenant_id=r.tenant_id,
                incident_id=r.incident_id,
                case_id=r.case_id,
            )
            for r in rows
        ),
        key=lambda m: m.id,
    )


def _record(
    catalog: Catalog,
    message: OutgoingMessage,
    claimer: str,
    now: datetime,
    error: str | None,
    max_attempts: int,
) -> NotificationState:
    with catalog.session() as session:
        attempts = session.scalar(
            select(Notification.attempts).where(Notification.id == message.id)
        )
        tries = int(attempts or 0) + 1
        if error is None:
            values: dict[str, object] = {"state": NotificationState.SENT, "sent_at": now}
            outcome = NotificationState.SENT
        elif tries >= max_attempts:
            values = {"state": NotificationState.FAILED}
            outcome = NotificationState.FAILED
        else:
            values = {"next_attempt_at": now + timedelta(seconds=retry_delay(tries))}
            outcome = NotificationState.PENDING
        session.execute(
            update(Notification)
            .where(Notification.id == message.id, Notification.claimed_by == claimer)
            .values(
                attempts=tries,
                claimed_by=None,
                claimed_until=None,
                last_error=error[:1000] if error else None,
                **values,
            )
            .execution_options(synchronize_session=False)
        )
    return outcome


def deliver_due(
    catalog: Catalog,
    senders: Mapping[NotificationChannel, Sender],
    now: datetime,
    *,
    claimer: str | None = None,
    limit: int = BATCH,
    claim_seconds: float = CLAIM_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
) -> DeliveryReport:
    """Send every due message of a channel in `senders`; failures retry, then fail for good.

    Messages of channels without a sender stay queued for a node that has one.
    """
    report = DeliveryReport()
    if not senders:
        return report
    me = claimer or _node_name()
    for message in _claim(catalog, list(senders), now, me, claim_seconds, limit):
        error: str | None = None
        try:
            senders[message.channel].send(message)
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # a sender bug must not stop the other messages
            log.exception("sending notification %s failed unexpectedly", message.id)
            error = f"{type(exc).__name__}: {exc}"
        outcome = _record(catalog, message, me, now, error, max_attempts)
        if outcome == NotificationState.SENT:
            report.sent += 1
        elif outcome == NotificationState.FAILED:
            log.warning(
                "notification %s to %s failed for good: %s", message.id, message.recipient, error
            )
            report.failed += 1
        else:
            report.retried += 1
    return report
