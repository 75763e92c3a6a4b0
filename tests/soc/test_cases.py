"""Support cases: opening (API and email), escalation to the SOC, links, outside tickets, updates."""

from __future__ import annotations

import uuid
from datetime import timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from tests.soc.test_incidents import OPERATOR, T0, add_tenants, event
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import Role, User
from vaultwatch.catalog.soc_models import CaseState, Notification, SupportCase
from vaultwatch.soc import cases, incidents
from vaultwatch.soc.alarms import AlarmNotFoundError, raise_events
from vaultwatch.soc.escalation import IncidentNotFoundError

CUSTOMER = "user:00000000-0000-0000-0000-0000000000cc"


def _open(catalog: Catalog, tenant: uuid.UUID, **changes: object) -> SupportCase:
    fields: dict[str, object] = {
        "tenant_id": tenant,
        "subject": "Restores of /srv/data are slow",
        "text": "Since Monday a restore takes hours.",
        "actor": CUSTOMER,
        "contact_email": "Ops@Customer.example",
        "now": T0,
    }
    fields.update(changes)
    with catalog.session() as session:
        return cases.open_case(session, **fields)  # type: ignore[arg-type]


def _mail(catalog: Catalog) -> list[Notification]:
    with catalog.session() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_opening_a_case_records_it_and_tells_the_contact(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    case = _open(catalog, tenant)
    assert (case.state, case.owner_team, case.tenant_id) == (
        CaseState.OPEN,
        "customer_service",
        tenant,
    )
    assert case.contact_email == "ops@customer.example"
    assert case.next_update_at == T0 + timedelta(days=1)
    with catalog.session() as session:
        [entry] = cases.history(session, case.id)
    assert (entry.kind, entry.text, entry.actor) == (
        "opened",
        "Since Monday a restore takes hours.",
        CUSTOMER,
    )
    [mail] = _mail(catalog)
    assert mail.recipient == "ops@customer.example" and mail.case_id == case.id
    assert (
        mail.subject == f"[case #{case.id}] We received your case: Restores of /srv/data are slow"
    )


def test_without_a_contact_the_tenant_admins_hear_about_it(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    _open(catalog, tenant, contact_email=None)
    with catalog.session() as session:
        admin = session.scalars(select(User.email).where(User.tenant_id == tenant)).one()
    assert [m.recipient for m in _mail(catalog)] == [admin]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": " "}, "needs a subject"),
        ({"text": ""}, "must not be empty"),
        ({"priority": 9}, "priority"),
        ({"contact_email": "not an address"}, "not an email"),
        ({"tenant_id": uuid.UUID(int=3)}, "unknown tenant"),
        ({"update_interval_seconds": 5}, "update_interval_seconds"),
    ],
)
def test_bad_cases_are_refused_and_nothing_is_stored(
    catalog: Catalog, changes: dict[str, object], message: str
) -> None:
    [tenant] = add_tenants(catalog, 1)
    with pytest.raises(ValidationError, match=message):
        _open(catalog, tenant, **changes)
    with catalog.session() as session:
        assert session.scalars(select(SupportCase)).all() == []


def test_escalating_hands_the_case_to_the_soc(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    case = _open(catalog, tenant)
    with catalog.session() as session:
        escalated = cases.escalate(session, case.id, OPERATOR, "needs network analysis", now=T0)
        assert (escalated.state, escalated.owner_team) == (CaseState.ESCALATED, "soc")
        assert escalated.escalated_at == T0
        with pytest.raises(cases.CaseStateError, match="already with the operations center"):
            cases.escalate(session, case.id, OPERATOR, "again")
        internal = cases.history(session, case.id)
        customer = cases.history(session, case.id, customer_view=True)
    assert [e.kind for e in internal] == ["opened", "escalated", "status"]
    assert [e.kind for e in customer] == ["opened", "status"]  # the internal reason is hidden


def test_linking_alarms_and_incidents(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    case = _open(catalog, tenant)
    with catalog.session() as session:
        [raised] = raise_events(session, [event(tenant_id=tenant)], now=T0)
        incident = incidents.open_incident(
            session, title="srv1", severity="major", actor=OPERATOR, tenant_ids=[tenant], now=T0
        )
    with catalog.session() as session:
        linked = cases.link(
            session, case.id, OPERATOR, alarm_ids=[raised.id], incident_id=incident.id, now=T0
        )
        assert (linked.alarm_ids, linked.incident_id) == ([raised.id], incident.id)
        with pytest.raises(AlarmNotFoundError):
            cases.link(session, case.id, OPERATOR, alarm_ids=[424242])
        with pytest.raises(IncidentNotFoundError):
            cases.link(session, case.id, OPERATOR, incident_id=424242)


def test_outside_tickets_are_recorded_once(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    case = _open(catalog, tenant)
    with catalog.session() as session:
        updated = cases.add_external_ticket(
            session, case.id, OPERATOR, party="carrier", ticket="TT-4711", now=T0
        )
        assert updated.state == CaseState.WAITING_ON_THIRD_PARTY
        assert updated.external_tickets == [
            {"party": "carrier", "ticket": "TT-4711", "opened_at": T0.isoformat(), "by": OPERATOR}
        ]
        with pytest.raises(cases.CaseStateError, match="already recorded"):
            cases.add_external_ticket(session, case.id, OPERATOR, party="carrier", ticket="TT-4711")
        with pytest.raises(ValidationError, match="ticket number"):
            cases.add_external_ticket(session, case.id, OPERATOR, party="vendor", ticket=" ")


def test_the_customer_hears_from_us_every_interval_until_resolved(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    case = _open(catalog, tenant, update_interval_seconds=3600)
    with catalog.session() as session:
        cases.add_external_ticket(
            session, case.id, OPERATOR, party="carrier", ticket="TT-1", now=T0
        )
    with catalog.session() as session:
        assert cases.cases_due_for_update(session, T0 + timedelta(seconds=3599)) == []
        assert [c.id for c in cases.cases_due_for_update(session, T0 + timedelta(hours=1))] == [
            case.id
        ]
        assert cases.remind_due_cases(session, T0 + timedelta(hours=1)) == 1
        assert cases.remind_due_cases(session, T0 + timedelta(hours=1)) == 0
    updates = [m for m in _mail(catalog) if "Update on" in m.subject]
    assert len(updates) == 1
    assert "waiting on carrier (ticket TT-1)" in updates[0].body
    with catalog.session() as session:
        cases.send_update(
            session,
            case.id,
            OPERATOR,
            "The carrier replaced a line card.",
            now=T0 + timedelta(hours=1, minutes=30),
        )
        assert (
            cases.remind_due_cases(session, T0 + timedelta(hours=2)) == 0
        )  # the manual one counts
        assert cases.remind_due_cases(session, T0 + timedelta(hours=2, minutes=30)) == 1
        cases.resolve(
            session, case.id, OPERATOR, "Line card replaced.", now=T0 + timedelta(hours=3)
        )
        assert cases.cases_due_for_update(session, T0 + timedelta(days=9)) == []
    assert [m.subject for m in _mail(catalog)][
        -1
    ] == f"[case #{case.id}] Resolved: Restores of /srv/data are slow"


def test_resolved_cases_close_and_then_refuse_changes(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    case = _open(catalog, tenant)
    with catalog.session() as session:
        cases.resolve(session, case.id, OPERATOR, "fixed", now=T0)
        with pytest.raises(cases.CaseStateError, match="is resolved"):
            cases.escalate(session, case.id, OPERATOR, "late")
        closed = cases.close(session, case.id, OPERATOR, now=T0)
        assert (closed.state, closed.closed_at) == (CaseState.CLOSED, T0)
        with pytest.raises(cases.CaseStateError, match="is closed"):
            cases.add_note(session, case.id, OPERATOR, "more")
        with pytest.raises(cases.CaseStateError, match="already closed"):
            cases.close(session, case.id, OPERATOR)


def test_notes_are_internal_or_visible_and_customer_messages_reopen_waiting(
    catalog: Catalog,
) -> None:
    [tenant] = add_tenants(catalog, 1)
    case = _open(catalog, tenant)
    with catalog.session() as session:
        cases.add_note(session, case.id, OPERATOR, "looks like the WAN link", internal=True, now=T0)
        cases.add_note(session, case.id, OPERATOR, "we are checking", now=T0)
        session.get(SupportCase, case.id).state = CaseState.WAITING_ON_CUSTOMER  # type: ignore[union-attr]
    with catalog.session() as session:
        cases.add_note(session, case.id, CUSTOMER, "here are the logs", from_customer=True, now=T0)
        assert cases.get_case(session, case.id).state == CaseState.OPEN
        visible = [e.text for e in cases.history(session, case.id, customer_view=True)]
    assert visible == [
        "Since Monday a restore takes hours.",
        "we are checking",
        "here are the logs",
    ]


def test_a_tenant_session_sees_only_its_own_cases(catalog: Catalog) -> None:
    mine, theirs = add_tenants(catalog, 2)
    own = _open(catalog, mine)
    other = _open(catalog, theirs)
    with catalog.session(tenant_id=mine) as session:
        assert [c.id for c in cases.list_cases(session)] == [own.id]
        with pytest.raises(cases.CaseNotFoundError):
            cases.get_case(session, other.id)


def _email(sender: str, subject: str, body: str = "My backup failed last night.") -> bytes:
    message = EmailMessage()
    message["From"] = f"Pat Customer <{sender}>"
    message["To"] = "support@vaultwatch.example"
    message["Subject"] = subject
    message.set_content(body)
    return message.as_bytes()


def test_an_email_from_a_customer_opens_a_case_and_a_reply_adds_to_it(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    with catalog.session() as session:
        sender = session.scalars(select(User.email).where(User.tenant_id == tenant)).one()
    with catalog.session() as session:
        case = cases.open_case_from_email(session, _email(sender.upper(), "Backup failed"), now=T0)
    assert (case.tenant_id, case.opened_via, case.subject, case.contact_email) == (
        tenant,
        "email",
        "Backup failed",
        sender,
    )
    with catalog.session() as session:
        same = cases.open_case_from_email(
            session,
            _email(sender, f"Re: [case #{case.id}] Backup failed", "It failed again."),
            now=T0,
        )
        assert same.id == case.id
        assert [e.kind for e in cases.history(session, case.id)] == ["opened", "message"]
        assert len(session.scalars(select(SupportCase)).all()) == 1


def test_emails_from_strangers_or_without_text_are_refused(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    with catalog.session() as session:
        session.add(
            User(
                email="staff@soc.example",
                display_name="S",
                password_hash="x",
                role=Role.SOC_OPERATOR,
            )
        )
    with catalog.session() as session:
        with pytest.raises(ValidationError, match="not a customer's account"):
            cases.open_case_from_email(session, _email("stranger@example.net", "help"))
        with pytest.raises(ValidationError, match="not a customer's account"):
            cases.open_case_from_email(session, _email("staff@soc.example", "help"))
        with pytest.raises(ValidationError, match="no From"):
            cases.open_case_from_email(session, b"Subject: hi\r\n\r\nbody\r\n")
        html = EmailMessage()
        sender = session.scalars(select(User.email).where(User.tenant_id == tenant)).one()
        html["From"] = sender
        html["Subject"] = "html only"
        html.set_content("<p>hi</p>", subtype="html")
        with pytest.raises(ValidationError, match="no text/plain"):
            cases.open_case_from_email(session, html.as_bytes())
        assert session.scalars(select(SupportCase)).all() == []
