"""Escalation: level 0 at trigger, next level at its timeout, repeats, ack, ack expiry, resolve.

The clock is passed in, so every step is at an exact instant; two nodes
ticking and delivering at once send every page exactly once.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.soc.notify.conftest import SmtpServer, smtp_server
from tests.soc.test_incidents import OPERATOR, T0, add_tenants, event
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import Role, User
from vaultwatch.catalog.soc_models import (
    IncidentState,
    Notification,
    NotificationChannel,
)
from vaultwatch.soc import escalation, incidents
from vaultwatch.soc.notify import deliver_due
from vaultwatch.soc.notify.email import EmailSender
from vaultwatch.soc.pipeline import process_events

__all__ = ["smtp_server"]  # a fixture

LEVELS = [
    {
        "targets": [
            {"kind": "email", "address": "first@soc.example"},
            {"kind": "user", "address": "oncall@soc.example"},
        ],
        "timeout_seconds": 300,
    },
    {"targets": [{"kind": "email", "address": "lead@soc.example"}], "timeout_seconds": 600},
]


def _setup(catalog: Catalog, repeat: int = 1) -> int:
    with catalog.session() as session:
        session.add(
            User(
                id=uuid.uuid4(),
                email="oncall@soc.example",
                display_name="On call",
                password_hash="x",
                role=Role.SOC_OPERATOR,
            )
        )
        escalation.create_policy(
            session, name="default", levels=LEVELS, repeat=repeat, ack_timeout_seconds=1800
        )
    with catalog.session() as session:
        return incidents.open_incident(
            session, title="gateway gw1 down", severity="critical", actor=OPERATOR, now=T0
        ).id


def _pages(catalog: Catalog) -> list[tuple[str, datetime]]:
    with catalog.session() as session:
        rows = session.execute(
            select(Notification.recipient, Notification.created_at).order_by(Notification.id)
        ).all()
    return [(r.recipient, r.created_at) for r in rows]


def _tick(catalog: Catalog, at: datetime) -> int:
    with catalog.session() as session:
        return escalation.escalate_due(session, at)


def test_the_trigger_pages_level_zero_and_records_who_how_when(catalog: Catalog) -> None:
    incident_id = _setup(catalog)
    assert _pages(catalog) == [("first@soc.example", T0), ("oncall@soc.example", T0)]
    with catalog.session() as session:
        incident = escalation.get_incident(session, incident_id)
        assert incident.next_escalation_at == T0 + timedelta(seconds=300)
        paged = [e for e in escalation.timeline(session, incident_id) if e.kind == "paged"]
    assert [(e.at, e.details["recipient"], e.details["channel"]) for e in paged] == [
        (T0, "first@soc.example", "email"),
        (T0, "oncall@soc.example", "email"),
    ]
    assert paged[1].details["target"].startswith("user:")


def test_each_level_pages_at_its_timeout_then_the_policy_repeats_then_stops(
    catalog: Catalog,
) -> None:
    incident_id = _setup(catalog, repeat=1)
    assert _tick(catalog, T0 + timedelta(seconds=299)) == 0
    assert _tick(catalog, T0 + timedelta(seconds=300)) == 1
    assert _pages(catalog)[-1] == ("lead@soc.example", T0 + timedelta(seconds=300))
    assert _tick(catalog, T0 + timedelta(seconds=300)) == 0  # the same tick again: nothing
    assert _tick(catalog, T0 + timedelta(seconds=899)) == 0
    assert _tick(catalog, T0 + timedelta(seconds=900)) == 2  # round 2 starts at level 0
    assert _tick(catalog, T0 + timedelta(seconds=1200)) == 1
    assert _tick(catalog, T0 + timedelta(seconds=1800)) == 0  # no more rounds
    assert _tick(catalog, T0 + timedelta(days=1)) == 0
    assert [p[0] for p in _pages(catalog)] == [
        "first@soc.example",
        "oncall@soc.example",
        "lead@soc.example",
        "first@soc.example",
        "oncall@soc.example",
        "lead@soc.example",
    ]
    with catalog.session() as session:
        incident = escalation.get_incident(session, incident_id)
        assert incident.next_escalation_at is None
        kinds = [e.kind for e in escalation.timeline(session, incident_id)]
    assert kinds.count("escalated") == 2
    assert kinds.count("repeated") == 1
    assert kinds[-1] == "escalation_exhausted"


def test_acknowledging_stops_the_clock(catalog: Catalog) -> None:
    incident_id = _setup(catalog)
    with catalog.session() as session:
        incidents.acknowledge(session, incident_id, OPERATOR, now=T0 + timedelta(seconds=100))
    for seconds in (300, 900, 1200, 1899):
        assert _tick(catalog, T0 + timedelta(seconds=seconds)) == 0
    assert len(_pages(catalog)) == 2


def test_an_expired_acknowledgement_triggers_again_at_level_zero(catalog: Catalog) -> None:
    incident_id = _setup(catalog)
    assert _tick(catalog, T0 + timedelta(seconds=300)) == 1  # level 1
    with catalog.session() as session:
        incidents.acknowledge(session, incident_id, OPERATOR, now=T0 + timedelta(seconds=400))
    expiry = T0 + timedelta(seconds=400 + 1800)
    assert _tick(catalog, expiry - timedelta(seconds=1)) == 0
    assert _tick(catalog, expiry) == 2
    with catalog.session() as session:
        incident = escalation.get_incident(session, incident_id)
        assert incident.state == IncidentState.TRIGGERED
        assert (incident.escalation_level, incident.escalation_round) == (0, 0)
        assert incident.next_escalation_at == expiry + timedelta(seconds=300)
        kinds = [e.kind for e in escalation.timeline(session, incident_id)]
    assert "ack_expired" in kinds
    assert _pages(catalog)[-2:] == [("first@soc.example", expiry), ("oncall@soc.example", expiry)]
    assert _tick(catalog, expiry + timedelta(seconds=300)) == 1


def test_resolving_tells_everyone_who_was_paged(catalog: Catalog) -> None:
    incident_id = _setup(catalog)
    _tick(catalog, T0 + timedelta(seconds=300))
    with catalog.session() as session:
        incidents.resolve(session, incident_id, OPERATOR, now=T0 + timedelta(seconds=400))
    assert _tick(catalog, T0 + timedelta(days=1)) == 0
    with catalog.session() as session:
        told = session.scalars(
            select(Notification.recipient)
            .where(Notification.subject.like("[RESOLVED]%"))
            .order_by(Notification.recipient)
        ).all()
        notified = [e for e in escalation.timeline(session, incident_id) if e.kind == "notified"]
    assert told == ["first@soc.example", "lead@soc.example", "oncall@soc.example"]
    assert len(notified) == 3


def test_a_disabled_user_is_skipped_and_the_timeline_says_so(catalog: Catalog) -> None:
    with catalog.session() as session:
        session.add(
            User(
                email="oncall@soc.example",
                display_name="On call",
                password_hash="x",
                role=Role.SOC_OPERATOR,
                disabled_at=T0,
            )
        )
        escalation.create_policy(session, name="p", levels=LEVELS)
    with catalog.session() as session:
        incident = incidents.open_incident(
            session, title="x", severity="major", actor=OPERATOR, policy="p", now=T0
        )
        kinds = [e.kind for e in escalation.timeline(session, incident.id)]
    assert [p[0] for p in _pages(catalog)] == ["first@soc.example"]
    assert "page_skipped" in kinds


def test_a_customers_event_still_pages_staff_users(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    with catalog.session() as session:
        session.add(
            User(
                email="oncall@soc.example",
                display_name="On call",
                password_hash="x",
                role=Role.SOC_OPERATOR,
            )
        )
        escalation.create_policy(session, name="default", levels=LEVELS)
    with catalog.session(tenant_id=tenant) as session:
        process_events(session, [event(tenant_id=tenant)], now=T0)
    assert [p[0] for p in _pages(catalog)] == ["first@soc.example", "oncall@soc.example"]


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ([], "1 to 10 levels"),
        ([{"targets": [], "timeout_seconds": 60}], "level 0 needs 1 to 20 targets"),
        ([{"targets": [{"kind": "sms", "address": "1"}], "timeout_seconds": 60}], "kind must be"),
        (
            [{"targets": [{"kind": "email", "address": "nope"}], "timeout_seconds": 60}],
            "not an email",
        ),
        (
            [{"targets": [{"kind": "webhook", "address": "ftp://x"}], "timeout_seconds": 60}],
            "http",
        ),
        ([{"targets": [{"kind": "email", "address": "a@b.c"}], "timeout_seconds": 0}], "timeout"),
        ([{"targets": [{"kind": "email", "address": "a@b.c"}]}], "timeout_seconds"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(
    catalog: Catalog, levels: list[object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message), catalog.session() as session:
        escalation.create_policy(session, name="bad", levels=levels)


def test_policy_names_are_unique(catalog: Catalog) -> None:
    _setup(catalog)
    with pytest.raises(escalation.PolicyExistsError), catalog.session() as session:
        escalation.create_policy(session, name="default", levels=LEVELS)


def test_two_nodes_ticking_and_delivering_at_once_send_each_page_once(
    catalog: Catalog, smtp_server: SmtpServer
) -> None:
    _setup(catalog, repeat=1)
    with catalog.session() as session:
        for n in range(3):
            incidents.open_incident(
                session, title=f"node {n} down", severity="major", actor=OPERATOR, now=T0
            )
    other = Catalog(catalog.engine.url)
    steps = [T0 + timedelta(seconds=s) for s in (0, 300, 300, 900, 1200, 1800, 2400)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def node(cat: Catalog) -> None:
        senders = {NotificationChannel.EMAIL: EmailSender(smtp_server.settings)}
        try:
            for at in steps:
                barrier.wait(30)
                with cat.session() as session:
                    escalation.escalate_due(session, at)
                deliver_due(cat, senders, at, limit=3)
            deliver_due(cat, senders, steps[-1])
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=node, args=(c,)) for c in (catalog, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    other.dispose()
    assert errors == []
    received = smtp_server.mailbox.all()
    keys = [r.message["X-Vaultwatch-Notification"] for r in received]
    # per incident: 2 + 1 in round 1, 2 + 1 in round 2
    assert len(received) == 4 * 6
    assert len(set(keys)) == len(keys)
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 24
