"""Customer status updates: drafted, approved, sent to the tenant's admins, shown on the portal."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.soc.test_incidents import OPERATOR, T0, add_policy, add_tenants
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import Role, User
from vaultwatch.catalog.soc_models import (
    CustomerUpdate,
    CustomerUpdateKind,
    CustomerUpdateState,
    Notification,
    NotificationChannel,
)
from vaultwatch.soc import customer_updates, escalation, incidents


def _open(catalog: Catalog, tenants: list[uuid.UUID]) -> int:
    with catalog.session() as session:
        return incidents.open_incident(
            session,
            title="gateway gw1 down",
            severity="critical",
            actor=OPERATOR,
            tenant_ids=tenants,
            now=T0,
        ).id


def _customer_mail(catalog: Catalog) -> list[Notification]:
    with catalog.session() as session:
        return list(
            session.scalars(
                select(Notification)
                .where(Notification.dedup_key.like("customer-update:%"))
                .order_by(Notification.id)
            )
        )


def _admin(catalog: Catalog, tenant: uuid.UUID) -> str:
    with catalog.session() as session:
        return session.scalars(
            select(User.email).where(
                User.tenant_id == tenant,
                User.role == Role.CUSTOMER_ADMIN,
                User.disabled_at.is_(None),
            )
        ).one()


def test_the_first_notice_waits_for_approval_then_goes_to_the_admins(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    with catalog.session() as session:
        session.add_all(
            [
                User(
                    tenant_id=tenant,
                    email="viewer@t.example",
                    display_name="V",
                    password_hash="x",
                    role=Role.CUSTOMER_VIEWER,
                ),
                User(
                    tenant_id=tenant,
                    email="gone@t.example",
                    display_name="G",
                    password_hash="x",
                    role=Role.CUSTOMER_ADMIN,
                    disabled_at=T0,
                ),
            ]
        )
    incident_id = _open(catalog, [tenant])
    with catalog.session() as session:
        [draft] = customer_updates.updates_of(session, incident_id)
        assert (draft.kind, draft.state) == (
            CustomerUpdateKind.FIRST_NOTICE,
            CustomerUpdateState.DRAFT,
        )
        assert customer_updates.portal_notices(session, tenant) == []
    assert _customer_mail(catalog) == []
    later = T0 + timedelta(minutes=3)
    hook = "https://hooks.example.net/t"
    with catalog.session() as session:
        [published] = customer_updates.publish_update(
            session,
            draft.id,
            actor=OPERATOR,
            text="We are looking into gateway gw1.\nMore soon.",
            webhooks={tenant: hook},
            now=later,
        )
        assert published.published_by == OPERATOR and published.published_at == later
        [notice] = customer_updates.portal_notices(session, tenant)
        assert notice.text == "We are looking into gateway gw1.\nMore soon."
        incident = escalation.get_incident(session, incident_id)
        assert incident.next_customer_update_at == later + timedelta(hours=1)
        assert "customer_update_published" in [
            e.kind for e in escalation.timeline(session, incident_id)
        ]
    mail = _customer_mail(catalog)
    assert [(m.channel, m.recipient) for m in mail] == [
        (NotificationChannel.EMAIL, _admin(catalog, tenant)),
        (NotificationChannel.WEBHOOK, hook),
    ]
    assert mail[0].subject == "Service notice: gateway gw1 down"
    assert mail[0].body == "We are looking into gateway gw1.\nMore soon."
    assert all(m.tenant_id == tenant for m in mail)
    with catalog.session() as session, pytest.raises(customer_updates.CustomerUpdateStateError):
        customer_updates.publish_update(session, draft.id, actor=OPERATOR, now=later)


def test_in_a_crisis_one_update_goes_to_every_affected_tenant(catalog: Catalog) -> None:
    tenants = add_tenants(catalog, 6)
    incident_id = _open(catalog, tenants[:5])
    with (
        catalog.session() as session,
        pytest.raises(ValidationError, match="in a crisis every affected tenant"),
    ):
        customer_updates.draft_update(
            session, incident_id, text="partial", actor=OPERATOR, tenant_ids=tenants[:2]
        )
    with catalog.session() as session:
        drafts = customer_updates.updates_of(session, incident_id)
        batch = customer_updates.publish_update(session, drafts[2].id, actor=OPERATOR, now=T0)
    assert sorted(r.tenant_id for r in batch) == sorted(tenants[:5])
    assert {r.state for r in batch} == {CustomerUpdateState.PUBLISHED}
    recipients = sorted(m.recipient for m in _customer_mail(catalog))
    assert recipients == sorted(_admin(catalog, t) for t in tenants[:5])
    with catalog.session() as session:
        assert customer_updates.portal_notices(session, tenants[5]) == []
        for tenant in tenants[:5]:
            assert len(customer_updates.portal_notices(session, tenant)) == 1


def test_outside_a_crisis_tenants_can_be_told_separately(catalog: Catalog) -> None:
    tenants = add_tenants(catalog, 3)
    incident_id = _open(catalog, tenants[:2])
    with catalog.session() as session:
        [row] = customer_updates.draft_update(
            session, incident_id, text="only you", actor=OPERATOR, tenant_ids=tenants[:1], now=T0
        )
        customer_updates.publish_update(session, row.id, actor=OPERATOR, now=T0)
        with pytest.raises(ValidationError, match="not affected"):
            customer_updates.draft_update(
                session, incident_id, text="x", actor=OPERATOR, tenant_ids=tenants[2:]
            )
    assert [m.recipient for m in _customer_mail(catalog)] == [_admin(catalog, tenants[0])]


def test_a_tenant_session_sees_only_its_own_updates(catalog: Catalog) -> None:
    tenants = add_tenants(catalog, 2)
    incident_id = _open(catalog, tenants)
    with catalog.session(tenant_id=tenants[0]) as session:
        rows = customer_updates.updates_of(session, incident_id)
    assert [r.tenant_id for r in rows] == [tenants[0]]


def test_regular_updates_are_drafted_at_the_policy_interval(catalog: Catalog) -> None:
    add_policy(catalog, customer_update_interval_seconds=1800)
    [tenant] = add_tenants(catalog, 1)
    incident_id = _open(catalog, [tenant])
    with catalog.session() as session:
        assert customer_updates.remind_due_updates(session, T0 + timedelta(seconds=1799)) == 0
        # the first notice is still a draft: remind, but draft nothing more
        assert customer_updates.remind_due_updates(session, T0 + timedelta(seconds=1800)) == 1
        assert len(customer_updates.updates_of(session, incident_id)) == 1
        [first] = customer_updates.updates_of(session, incident_id)
        customer_updates.publish_update(
            session, first.id, actor=OPERATOR, now=T0 + timedelta(seconds=1900)
        )
    with catalog.session() as session:
        assert customer_updates.remind_due_updates(session, T0 + timedelta(seconds=3699)) == 0
        assert customer_updates.remind_due_updates(session, T0 + timedelta(seconds=3700)) == 1
        assert customer_updates.remind_due_updates(session, T0 + timedelta(seconds=3700)) == 0
        rows = customer_updates.updates_of(session, incident_id)
    assert [(r.kind, r.state) for r in rows] == [
        (CustomerUpdateKind.FIRST_NOTICE, CustomerUpdateState.PUBLISHED),
        (CustomerUpdateKind.UPDATE, CustomerUpdateState.DRAFT),
    ]


def test_resolving_drafts_the_resolution_notice_and_ends_reminders(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    incident_id = _open(catalog, [tenant])
    with catalog.session() as session:
        incidents.resolve(session, incident_id, OPERATOR, now=T0 + timedelta(minutes=30))
    with catalog.session() as session:
        rows = customer_updates.updates_of(session, incident_id)
        assert rows[-1].kind == CustomerUpdateKind.RESOLUTION
        assert customer_updates.remind_due_updates(session, T0 + timedelta(days=1)) == 0
        with pytest.raises(customer_updates.CustomerUpdateStateError, match="resolved"):
            customer_updates.draft_update(session, incident_id, text="more", actor=OPERATOR)
        customer_updates.publish_update(
            session, rows[-1].id, actor=OPERATOR, now=T0 + timedelta(hours=1)
        )
    [mail] = [m for m in _customer_mail(catalog)]
    assert mail.subject == "Resolved: gateway gw1 down"


@pytest.mark.parametrize("text", ["", "   ", "x" * 10001])
def test_bad_update_text_is_refused(catalog: Catalog, text: str) -> None:
    [tenant] = add_tenants(catalog, 1)
    incident_id = _open(catalog, [tenant])
    with pytest.raises(ValidationError, match="update text"), catalog.session() as session:
        customer_updates.draft_update(session, incident_id, text=text, actor=OPERATOR)
    with catalog.session() as session:
        assert session.scalars(select(CustomerUpdate)).all() != []  # the first notice only
        assert len(session.scalars(select(CustomerUpdate)).all()) == 1


def test_unknown_updates_and_incidents_are_not_found(catalog: Catalog) -> None:
    with catalog.session() as session:
        with pytest.raises(customer_updates.CustomerUpdateNotFoundError):
            customer_updates.publish_update(session, 12345, actor=OPERATOR)
        with pytest.raises(escalation.IncidentNotFoundError):
            customer_updates.draft_update(session, 12345, text="x", actor=OPERATOR)


def test_customer_webhooks_come_from_settings() -> None:
    tenant = uuid.uuid4()
    hooks = customer_updates.customer_webhooks(
        {"soc": {"customer_webhooks": {str(tenant): "https://h.example/x"}}}
    )
    assert hooks == {tenant: "https://h.example/x"}
    with pytest.raises(ValidationError, match="not a tenant id"):
        customer_updates.customer_webhooks({"soc": {"customer_webhooks": {"acme": "https://h/x"}}})
