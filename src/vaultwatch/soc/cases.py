"""Support cases: a customer's question, owned by customer service or, once escalated, the SOC.

A case opens from the API (the tenant always comes from the caller's
credential) or from an email (`open_case_from_email`; a reply whose subject
names ``[case #N]`` adds to that case instead). Customer service may
escalate it to the SOC, which then owns it until it is resolved. A case can
be linked to alarms and an incident, and records tickets opened with outside
parties (carrier, vendor). Until it is resolved the customer hears from us
at least every `update_interval_seconds`: the reminder duty sends a status
update whenever one is due (`cases_due_for_update`). Every step is an entry
in the case's history; internal notes are hidden from the customer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage
from email.utils import parseaddr

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.models import Role, Tenant, User
from vaultwatch.catalog.soc_models import (
    CaseEntry,
    CaseState,
    Incident,
    NotificationChannel,
    SupportCase,
)
from vaultwatch.catalog.users import normalize_email
from vaultwatch.soc.alarms import get_alarm
from vaultwatch.soc.customer_updates import clean_body
from vaultwatch.soc.escalation import IncidentNotFoundError, current_time
from vaultwatch.soc.events import clean_text
from vaultwatch.soc.notify.outbox import queue_notification

SYSTEM_ACTOR = "system:cases"
SOC_TEAM = "soc"
SERVICE_TEAM = "customer_service"
MAX_SUBJECT = 300
MAX_PARTY = 100
MAX_TICKET = 100
MAX_LINKED_ALARMS = 100
MAX_EMAIL_BYTES = 1024 * 1024
DEFAULT_UPDATE_INTERVAL = 86400
MIN_UPDATE_INTERVAL = 300
FINISHED = frozenset({CaseState.RESOLVED, CaseState.CLOSED})
_CASE_REF = re.compile(r"\[case #(\d{1,18})\]", re.IGNORECASE)


class CaseNotFoundError(CatalogError):
    """No support case has this id (in the caller's tenant)."""

    http_status = 404


class CaseStateError(CatalogError):
    """The case's state does not allow this (e.g. escalating a closed case)."""

    http_status = 409


def _subject(text: str) -> str:
    cleaned = clean_text(text, MAX_SUBJECT) if isinstance(text, str) else ""
    if not cleaned:
        raise ValidationError("a case needs a subject")
    return cleaned


def _entry(
    session: Session,
    case: SupportCase,
    actor: str,
    kind: str,
    text: str = "",
    *,
    at: datetime,
    visible: bool = True,
) -> CaseEntry:
    entry = CaseEntry(
        case_id=case.id,
        tenant_id=case.tenant_id,
        at=at,
        actor=actor,
        kind=kind,
        text=text,
        visible_to_customer=visible,
    )
    session.add(entry)
    return entry


def _contacts(session: Session, case: SupportCase) -> list[str]:
    """Who hears about a case: its contact, else the tenant's customer administrators."""
    if case.contact_email:
        return [case.contact_email]
    return list(
        session.scalars(
            select(User.email)
            .where(
                User.tenant_id == case.tenant_id,
                User.role == Role.CUSTOMER_ADMIN,
                User.disabled_at.is_(None),
            )
            .order_by(User.email)
        )
    )


def _tell(
    session: Session, case: SupportCase, key: str, subject: str, body: str, now: datetime
) -> int:
    told = 0
    for email in _contacts(session, case):
        told += queue_notification(
            session,
            dedup_key=f"case:{case.id}:{key}:{email}"[:300],
            channel=NotificationChannel.EMAIL,
            recipient=email,
            subject=f"[case #{case.id}] {subject}",
            body=body,
            tenant_id=case.tenant_id,
            case_id=case.id,
            now=now,
        )
    return told


def open_case(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    subject: str,
    text: str,
    actor: str,
    contact_email: str | None = None,
    priority: int = 3,
    via: str = "api",
    update_interval_seconds: int = DEFAULT_UPDATE_INTERVAL,
    now: datetime | None = None,
) -> SupportCase:
    """Open a case for `tenant_id` (taken from the caller's credential, never from a body)."""
    now = current_time(session, now)
    clean_subject = _subject(subject)
    body = clean_body(text)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 5:
        raise ValidationError("priority must be from 1 (urgent) to 5 (low)")
    if via not in ("api", "email", "portal", "phone"):
        raise ValidationError("a case opens via api, email, portal or phone")
    interval = update_interval_seconds
    if (
        not isinstance(interval, int)
        or isinstance(interval, bool)
        or interval < MIN_UPDATE_INTERVAL
    ):
        raise ValidationError(f"update_interval_seconds must be at least {MIN_UPDATE_INTERVAL}")
    if session.get(Tenant, tenant_id) is None:
        raise ValidationError(f"unknown tenant {tenant_id}")
    case = SupportCase(
        tenant_id=tenant_id,
        subject=clean_subject,
        state=CaseState.OPEN,
        priority=priority,
        owner_team=SERVICE_TEAM,
        opened_by=actor,
        opened_via=via,
        contact_email=normalize_email(contact_email) if contact_email else None,
        opened_at=now,
        update_interval_seconds=interval,
        next_update_at=now + timedelta(seconds=interval),
    )
    session.add(case)
    session.flush()
    _entry(session, case, actor, "opened", body, at=now)
    _tell(
        session,
        case,
        "opened",
        f"We received your case: {clean_subject}",
        f"Your case #{case.id} is open. We will update you at least every "
        f"{interval // 3600 or 1} hour(s) until it is resolved.\n\n{body}\n",
        now,
    )
    return case


def get_case(session: Session, case_id: int) -> SupportCase:
    """A case; a tenant's session sees only its own (others are 404)."""
    case = session.get(SupportCase, case_id)
    if case is None:
        raise CaseNotFoundError(f"no support case {case_id}")
    return case


def list_cases(
    session: Session,
    *,
    state: CaseState | None = None,
    owner_team: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[SupportCase]:
    """Cases newest first (a tenant's session sees its own only)."""
    stmt = select(SupportCase).order_by(SupportCase.opened_at.desc(), SupportCase.id.desc())
    if state is not None:
        stmt = stmt.where(SupportCase.state == state)
    if owner_team is not None:
        stmt = stmt.where(SupportCase.owner_team == owner_team)
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def history(session: Session, case_id: int, *, customer_view: bool = False) -> list[CaseEntry]:
    """A case's entries, oldest first; the customer's view leaves out internal notes."""
    stmt = select(CaseEntry).where(CaseEntry.case_id == case_id)
    if customer_view:
        stmt = stmt.where(CaseEntry.visible_to_customer.is_(True))
    return list(session.scalars(stmt.order_by(CaseEntry.at, CaseEntry.id)))


def _open_case(session: Session, case_id: int, what: str) -> SupportCase:
    case = get_case(session, case_id)
    if case.state in FINISHED:
        raise CaseStateError(f"case {case_id} is {case.state.value}: cannot {what}")
    return case


def escalate(
    session: Session, case_id: int, actor: str, reason: str, *, now: datetime | None = None
) -> SupportCase:
    """Hand the case to the SOC, which owns it from now until it is resolved."""
    now = current_time(session, now)
    case = _open_case(session, case_id, "escalate it")
    if case.owner_team == SOC_TEAM:
        raise CaseStateError(f"case {case_id} is already with the operations center")
    text = clean_body(reason)
    case.state = CaseState.ESCALATED
    case.owner_team = SOC_TEAM
    case.owner = None
    case.escalated_at = now
    _entry(session, case, actor, "escalated", text, at=now, visible=False)
    _entry(
        session,
        case,
        SYSTEM_ACTOR,
        "status",
        "Your case was passed to our operations center, who now own it.",
        at=now,
    )
    return case


def add_note(
    session: Session,
    case_id: int,
    actor: str,
    text: str,
    *,
    internal: bool = False,
    from_customer: bool = False,
    now: datetime | None = None,
) -> CaseEntry:
    """A message from the customer, or a note by staff (internal ones hidden from the customer)."""
    now = current_time(session, now)
    case = _open_case(session, case_id, "add to it")
    body = clean_body(text)
    if from_customer:
        if internal:
            raise ValidationError("a customer's message is always visible to the customer")
        if case.state == CaseState.WAITING_ON_CUSTOMER:
            case.state = CaseState.ESCALATED if case.owner_team == SOC_TEAM else CaseState.OPEN
        return _entry(session, case, actor, "message", body, at=now)
    return _entry(session, case, actor, "note", body, at=now, visible=not internal)


def link(
    session: Session,
    case_id: int,
    actor: str,
    *,
    alarm_ids: Sequence[int] = (),
    incident_id: int | None = None,
    now: datetime | None = None,
) -> SupportCase:
    """Link alarms and an incident to the case (they must exist)."""
    now = current_time(session, now)
    case = get_case(session, case_id)
    for alarm_id in alarm_ids:
        get_alarm(session, alarm_id)
    if incident_id is not None and session.get(Incident, incident_id) is None:
        raise IncidentNotFoundError(f"no incident {incident_id}")
    merged = list(dict.fromkeys([*case.alarm_ids, *alarm_ids]))
    if len(merged) > MAX_LINKED_ALARMS:
        raise ValidationError(f"a case links at most {MAX_LINKED_ALARMS} alarms")
    case.alarm_ids = merged
    if incident_id is not None:
        case.incident_id = incident_id
    _entry(
        session,
        case,
        actor,
        "linked",
        f"alarms {', '.join(map(str, alarm_ids)) or '-'}; incident {incident_id or '-'}",
        at=now,
        visible=False,
    )
    return case


def add_external_ticket(
    session: Session,
    case_id: int,
    actor: str,
    *,
    party: str,
    ticket: str,
    waiting: bool = True,
    now: datetime | None = None,
) -> SupportCase:
    """Record a ticket opened with an outside party (carrier, vendor); by default we now wait on it."""
    now = current_time(session, now)
    case = _open_case(session, case_id, "add a ticket")
    clean_party = clean_text(party, MAX_PARTY) if isinstance(party, str) else ""
    clean_ticket = clean_text(ticket, MAX_TICKET) if isinstance(ticket, str) else ""
    if not clean_party or not clean_ticket:
        raise ValidationError(
            "an outside ticket needs the party (e.g. carrier) and its ticket number"
        )
    if any(
        t.get("party") == clean_party and t.get("ticket") == clean_ticket
        for t in case.external_tickets
    ):
        raise CaseStateError(f"{clean_party} ticket {clean_ticket} is already recorded")
    case.external_tickets = [
        *case.external_tickets,
        {"party": clean_party, "ticket": clean_ticket, "opened_at": now.isoformat(), "by": actor},
    ]
    if waiting:
        case.state = CaseState.WAITING_ON_THIRD_PARTY
    _entry(session, case, actor, "external_ticket", f"{clean_party} ticket {clean_ticket}", at=now)
    return case


def send_update(
    session: Session, case_id: int, actor: str, text: str, *, now: datetime | None = None
) -> CaseEntry:
    """Tell the customer where the case stands; the next update is due one interval later."""
    now = current_time(session, now)
    case = _open_case(session, case_id, "send an update")
    body = clean_body(text)
    entry = _entry(session, case, actor, "status_update", body, at=now)
    session.flush()
    _tell(session, case, f"update:{entry.id}", f"Update on: {case.subject}", body, now)
    case.next_update_at = now + timedelta(seconds=case.update_interval_seconds)
    return entry


def resolve(
    session: Session, case_id: int, actor: str, resolution: str, *, now: datetime | None = None
) -> SupportCase:
    """The problem is solved: tell the customer; updates stop."""
    now = current_time(session, now)
    case = _open_case(session, case_id, "resolve it")
    body = clean_body(resolution)
    case.state = CaseState.RESOLVED
    case.resolved_at = now
    case.next_update_at = None
    _entry(session, case, actor, "resolved", body, at=now)
    _tell(session, case, "resolved", f"Resolved: {case.subject}", body, now)
    return case


def close(
    session: Session, case_id: int, actor: str, *, now: datetime | None = None
) -> SupportCase:
    """Close a case for good (resolved ones, or any one the customer withdrew)."""
    now = current_time(session, now)
    case = get_case(session, case_id)
    if case.state == CaseState.CLOSED:
        raise CaseStateError(f"case {case_id} is already closed")
    case.state = CaseState.CLOSED
    case.closed_at = now
    case.next_update_at = None
    _entry(session, case, actor, "closed", at=now)
    return case


def cases_due_for_update(session: Session, now: datetime, *, limit: int = 200) -> list[SupportCase]:
    """Unresolved cases whose customer is due a status update."""
    return list(
        session.scalars(
            select(SupportCase)
            .where(SupportCase.state.not_in(list(FINISHED)), SupportCase.next_update_at <= now)
            .order_by(SupportCase.next_update_at, SupportCase.id)
            .limit(limit)
        )
    )


def remind_due_cases(session: Session, now: datetime) -> int:
    """Send the regular status update of every due case; returns how many were sent.

    The due time moves on with one conditional UPDATE, so two nodes send one update.
    """
    sent = 0
    for case in cases_due_for_update(session, now):
        was = case.next_update_at
        result = session.execute(
            update(SupportCase)
            .where(SupportCase.id == case.id, SupportCase.next_update_at == was)
            .values(next_update_at=now + timedelta(seconds=case.update_interval_seconds))
            .execution_options(synchronize_session=False)
        )
        if (result.rowcount or 0) != 1:  # type: ignore[attr-defined]
            continue
        session.refresh(case)
        team = "our operations center" if case.owner_team == SOC_TEAM else "customer service"
        waiting = ""
        if case.state == CaseState.WAITING_ON_THIRD_PARTY and case.external_tickets:
            last = case.external_tickets[-1]
            waiting = f" We are waiting on {last['party']} (ticket {last['ticket']})."
        body = f"Your case #{case.id} ({case.subject}) is being worked on by {team}.{waiting}"
        entry = _entry(session, case, SYSTEM_ACTOR, "status_update", body, at=now)
        session.flush()
        _tell(session, case, f"update:{entry.id}", f"Update on: {case.subject}", body, now)
        sent += 1
    return sent


# -- email intake ------------------------------------------------------------------------------


def _plain_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        raise ValidationError("the email has no text/plain part")
    content = part.get_content()
    return content if isinstance(content, str) else ""


def open_case_from_email(
    session: Session, message: bytes | str, *, now: datetime | None = None
) -> SupportCase:
    """A case from an RFC 5322 email by a customer user (the sender's account names the tenant).

    A subject naming ``[case #N]`` of the sender's tenant adds the body to
    that case as the customer's message instead of opening a new one.
    """
    now = current_time(session, now)
    if len(message) > MAX_EMAIL_BYTES:
        raise ValidationError(f"an email case is at most {MAX_EMAIL_BYTES} bytes")
    parsed = (
        message_from_bytes(message, policy=policy.default)
        if isinstance(message, bytes)
        else message_from_string(message, policy=policy.default)
    )
    assert isinstance(parsed, EmailMessage)
    _name, address = parseaddr(str(parsed.get("From", "")))
    if not address:
        raise ValidationError("the email has no From address")
    sender = normalize_email(address)
    user = session.scalar(select(User).where(func.lower(User.email) == sender))
    if user is None or user.tenant_id is None or user.disabled_at is not None:
        raise ValidationError(f"{sender} is not a customer's account: cannot open a case")
    subject = str(parsed.get("Subject", "")).strip()
    body = _plain_body(parsed)
    actor = f"user:{user.id}"
    ref = _CASE_REF.search(subject)
    if ref:
        existing = session.get(SupportCase, int(ref.group(1)))
        if (
            existing is not None
            and existing.tenant_id == user.tenant_id
            and existing.state not in FINISHED
        ):
            add_note(session, existing.id, actor, body, from_customer=True, now=now)
            return existing
    return open_case(
        session,
        tenant_id=user.tenant_id,
        subject=subject or "(no subject)",
        text=body,
        actor=actor,
        contact_email=sender,
        via="email",
        now=now,
    )


MAX_OWNER = 200


def assign_owner(
    session: Session, case_id: int, actor: str, owner: str | None, *, now: datetime | None = None
) -> SupportCase:
    """Give an unfinished case an owner (a person or a shift); None or empty takes it back."""
    now = current_time(session, now)
    case = get_case(session, case_id)
    if case.state in FINISHED:
        raise CaseStateError(f"case {case_id} is {case.state.value}: cannot assign it")
    cleaned = clean_text(owner, MAX_OWNER) if owner else ""
    case.owner = cleaned or None
    text = f"owner: {cleaned}" if cleaned else "owner removed"
    session.add(
        CaseEntry(
            case_id=case.id,
            tenant_id=case.tenant_id,
            at=now,
            actor=actor,
            kind="assigned",
            text=text,
            visible_to_customer=False,
        )
    )
    return case
