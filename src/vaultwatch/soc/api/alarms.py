"""The alarm list and what operators do to alarms: parse, authorize, call `vaultwatch.soc.alarms`.

Customers' keys see their own tenant's alarms (read only); acting on an alarm
needs an operations center role.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import AlarmClass, Severity
from vaultwatch.soc import alarm_list, alarms
from vaultwatch.soc.api.auth import Caller, CatalogDep, Staff, scoped_session
from vaultwatch.soc.api.schemas import (
    AlarmOut,
    AlarmPage,
    AssignIn,
    ClearIn,
    JournalEntryOut,
    NoteIn,
    SeverityName,
)

router = APIRouter(tags=["alarms"])


def _severity(text: str | None) -> Severity | None:
    if text is None:
        return None
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


@router.get("/alarms", response_model=AlarmPage, summary="The alarm list, filtered and sorted")
def list_alarms(
    principal: Caller,
    catalog: CatalogDep,
    min_severity: Annotated[SeverityName | None, Query()] = None,
    severity: Annotated[list[SeverityName] | None, Query()] = None,
    alert_group: Annotated[str | None, Query(max_length=100)] = None,
    node: Annotated[str | None, Query(max_length=255)] = None,
    tenant_id: uuid.UUID | None = None,
    alarm_class: AlarmClass | None = None,
    acknowledged: bool | None = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    include_cleared: bool = False,
    include_symptoms: bool = True,
    include_silenced: bool = True,
    sort: Annotated[str, Query(pattern=r"^-?[a-z_]{1,30}$")] = "-severity",
    limit: Annotated[int, Query(ge=1, le=alarm_list.MAX_PAGE)] = alarm_list.DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    total: bool = False,
) -> AlarmPage:
    """Live alarms (open ones unless `include_cleared`), worst first by default."""
    flt = alarm_list.AlarmFilter(
        min_severity=_severity(min_severity),
        severities=tuple(Severity.parse(s) for s in severity or ()),
        alert_group=alert_group,
        node=node,
        tenant_id=tenant_id,
        alarm_class=alarm_class,
        acknowledged=acknowledged,
        owner=owner,
        text=q,
        include_cleared=include_cleared,
        include_symptoms=include_symptoms,
        include_silenced=include_silenced,
    )
    with scoped_session(catalog, principal) as session:
        page = alarm_list.list_alarms(
            session, flt, sort=sort, limit=limit, cursor=cursor, with_total=total
        )
        return AlarmPage(
            items=[AlarmOut.of(a) for a in page.items],
            next_cursor=page.next_cursor,
            total=page.total,
        )


@router.get("/alarms/{alarm_id}", response_model=AlarmOut, summary="One alarm")
def get_alarm(alarm_id: int, principal: Caller, catalog: CatalogDep) -> AlarmOut:
    """One live alarm (404 when archived, unknown or another tenant's)."""
    with scoped_session(catalog, principal) as session:
        return AlarmOut.of(alarms.get_alarm(session, alarm_id))


@router.get(
    "/alarms/{alarm_id}/journal", response_model=list[JournalEntryOut], summary="Its journal"
)
def get_journal(alarm_id: int, principal: Staff, catalog: CatalogDep) -> list[JournalEntryOut]:
    """Every action and note on an alarm, oldest first."""
    with scoped_session(catalog, principal) as session:
        return [JournalEntryOut.of(e) for e in alarms.journal_of(session, alarm_id)]


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmOut, summary="Acknowledge")
def acknowledge(alarm_id: int, principal: Staff, catalog: CatalogDep) -> AlarmOut:
    """Mark the alarm as seen and being handled."""
    with scoped_session(catalog, principal) as session:
        return AlarmOut.of(alarms.acknowledge(session, alarm_id, principal.actor))


@router.post("/alarms/{alarm_id}/unack", response_model=AlarmOut, summary="Take back an ack")
def unacknowledge(alarm_id: int, principal: Staff, catalog: CatalogDep) -> AlarmOut:
    """Mark the alarm as not handled."""
    with scoped_session(catalog, principal) as session:
        alarm = alarms.acknowledge(session, alarm_id, principal.actor, acknowledged=False)
        return AlarmOut.of(alarm)


@router.post("/alarms/{alarm_id}/assign", response_model=AlarmOut, summary="Give it an owner")
def assign(alarm_id: int, body: AssignIn, principal: Staff, catalog: CatalogDep) -> AlarmOut:
    """Give the alarm an owner, or take it back with `owner: null`."""
    with scoped_session(catalog, principal) as session:
        return AlarmOut.of(alarms.assign(session, alarm_id, principal.actor, body.owner))


@router.post(
    "/alarms/{alarm_id}/notes",
    response_model=JournalEntryOut,
    status_code=201,
    summary="Add a journal note",
)
def add_note(alarm_id: int, body: NoteIn, principal: Staff, catalog: CatalogDep) -> JournalEntryOut:
    """Add a note to the alarm's journal."""
    with scoped_session(catalog, principal) as session:
        entry = alarms.add_note(session, alarm_id, principal.actor, body.text)
        session.flush()
        return JournalEntryOut.of(entry)


@router.post("/alarms/{alarm_id}/clear", response_model=AlarmOut, summary="Clear by hand")
def clear(
    alarm_id: int, principal: Staff, catalog: CatalogDep, body: ClearIn | None = None
) -> AlarmOut:
    """Clear the alarm (the problem is over though no resolution arrived)."""
    with scoped_session(catalog, principal) as session:
        reason = body.reason if body is not None else ""
        return AlarmOut.of(alarms.clear(session, alarm_id, principal.actor, reason))
