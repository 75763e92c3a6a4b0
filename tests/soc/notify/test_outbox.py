"""The outbox: queued once per key, claimed before sending, retried with backoff, given up."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.soc.notify.conftest import SmtpServer
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import Notification, NotificationChannel, NotificationState
from vaultwatch.soc.notify import deliver_due, queue_notification, retry_delay
from vaultwatch.soc.notify.email import EmailSender

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _queue(catalog: Catalog, key: str, recipient: str = "oncall@example.net") -> bool:
    with catalog.session() as session:
        return queue_notification(
            session,
            dedup_key=key,
            channel=NotificationChannel.EMAIL,
            recipient=recipient,
            subject=f"page {key}",
            body="body",
            now=T0,
        )


def _rows(catalog: Catalog) -> list[Notification]:
    with catalog.session() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_a_key_is_queued_once(catalog: Catalog) -> None:
    assert _queue(catalog, "incident:1:page:a") is True
    assert _queue(catalog, "incident:1:page:a") is False
    assert _queue(catalog, "incident:1:page:b") is True
    assert [r.dedup_key for r in _rows(catalog)] == ["incident:1:page:a", "incident:1:page:b"]


def test_bad_rows_are_refused(catalog: Catalog) -> None:
    with catalog.session() as session, pytest.raises(ValidationError, match="key"):
        queue_notification(
            session,
            dedup_key=" ",
            channel=NotificationChannel.EMAIL,
            recipient="a@b.c",
            subject="s",
            body="b",
            now=T0,
        )
    with catalog.session() as session, pytest.raises(ValidationError, match="recipient"):
        queue_notification(
            session,
            dedup_key="k",
            channel=NotificationChannel.EMAIL,
            recipient="",
            subject="s",
            body="b",
            now=T0,
        )
    assert _rows(catalog) == []


def test_due_messages_are_sent_and_marked(catalog: Catalog, smtp_server: SmtpServer) -> None:
    _queue(catalog, "k1", "a@example.net")
    _queue(catalog, "k2", "b@example.net")
    senders = {NotificationChannel.EMAIL: EmailSender(smtp_server.settings)}
    report = deliver_due(catalog, senders, T0)
    assert (report.sent, report.retried, report.failed) == (2, 0, 0)
    assert sorted(r.recipients[0] for r in smtp_server.mailbox.all()) == [
        "a@example.net",
        "b@example.net",
    ]
    rows = _rows(catalog)
    assert all(r.state == NotificationState.SENT and r.sent_at == T0 for r in rows)
    assert all(r.claimed_by is None and r.attempts == 1 for r in rows)
    assert deliver_due(catalog, senders, T0 + timedelta(hours=1)).attempted == 0
    assert len(smtp_server.mailbox.all()) == 2


def test_not_yet_due_and_unsendable_channels_wait(
    catalog: Catalog, smtp_server: SmtpServer
) -> None:
    _queue(catalog, "k1")
    senders = {NotificationChannel.EMAIL: EmailSender(smtp_server.settings)}
    assert deliver_due(catalog, senders, T0 - timedelta(seconds=1)).attempted == 0
    assert deliver_due(catalog, {}, T0).attempted == 0
    assert _rows(catalog)[0].state == NotificationState.PENDING


def test_failures_retry_with_backoff_then_fail(catalog: Catalog, smtp_server: SmtpServer) -> None:
    smtp_server.mailbox.refuse.add("gone@example.net")
    _queue(catalog, "k1", "gone@example.net")
    senders = {NotificationChannel.EMAIL: EmailSender(smtp_server.settings)}
    now = T0
    for attempt in range(1, 4):
        report = deliver_due(catalog, senders, now, max_attempts=4)
        assert report.retried == 1
        [row] = _rows(catalog)
        assert row.attempts == attempt
        assert row.state == NotificationState.PENDING
        assert row.next_attempt_at == now + timedelta(seconds=retry_delay(attempt))
        assert row.last_error is not None and "gone@example.net" in row.last_error
        # not due before its backoff is over
        assert (
            deliver_due(catalog, senders, row.next_attempt_at - timedelta(seconds=1)).attempted == 0
        )
        now = row.next_attempt_at
    report = deliver_due(catalog, senders, now, max_attempts=4)
    assert report.failed == 1
    [row] = _rows(catalog)
    assert (row.state, row.attempts) == (NotificationState.FAILED, 4)
    assert deliver_due(catalog, senders, now + timedelta(days=1)).attempted == 0
    assert smtp_server.mailbox.all() == []


def test_backoff_doubles_and_is_capped() -> None:
    assert [retry_delay(n, 30, 200) for n in (1, 2, 3, 4, 5)] == [30, 60, 120, 200, 200]


def test_a_live_claim_is_respected_and_an_expired_one_taken_over(
    catalog: Catalog, smtp_server: SmtpServer
) -> None:
    _queue(catalog, "k1")
    with catalog.session() as session:
        session.execute(
            update(Notification).values(
                claimed_by="other-node", claimed_until=T0 + timedelta(seconds=60)
            )
        )
    senders = {NotificationChannel.EMAIL: EmailSender(smtp_server.settings)}
    assert deliver_due(catalog, senders, T0 + timedelta(seconds=30)).attempted == 0
    assert deliver_due(catalog, senders, T0 + timedelta(seconds=61)).sent == 1
    assert len(smtp_server.mailbox.all()) == 1


def test_two_nodes_delivering_at_once_send_each_message_once(
    catalog: Catalog, smtp_server: SmtpServer
) -> None:
    for n in range(40):
        _queue(catalog, f"k{n}", f"user{n}@example.net")
    other = Catalog(catalog.engine.url)
    barrier = threading.Barrier(2)
    reports = []

    def node(cat: Catalog) -> None:
        sender = {NotificationChannel.EMAIL: EmailSender(smtp_server.settings)}
        barrier.wait()
        for _ in range(8):
            reports.append(deliver_due(cat, sender, T0, limit=5))

    threads = [threading.Thread(target=node, args=(c,)) for c in (catalog, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    other.dispose()
    received = sorted(r.recipients[0] for r in smtp_server.mailbox.all())
    assert received == sorted(f"user{n}@example.net" for n in range(40))
    assert sum(r.sent for r in reports) == 40
    assert all(r.state == NotificationState.SENT for r in _rows(catalog))
