"""Request and response bodies of the SOC API shared by its routers (they make the OpenAPI schema).

Bodies forbid unknown fields and bound every length, so a malformed or
oversized event is a 422 problem before any domain code runs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, StringConstraints

from vaultwatch.catalog.soc_models import Alarm, AlarmClass, AlarmJournalEntry, EventType, Severity
from vaultwatch.soc import events as ev
from vaultwatch.soc.alarms import RaisedAlarm

SeverityName = Literal["clear", "indeterminate", "warning", "minor", "major", "critical"]

Text = Annotated[StrictStr, StringConstraints(max_length=ev.MAX_SUMMARY)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Strict):
    """One event as a sender posts it."""

    node: Annotated[StrictStr, StringConstraints(min_length=1, max_length=ev.MAX_NODE)]
    alert_group: Annotated[StrictStr, StringConstraints(min_length=1, max_length=ev.MAX_GROUP)]
    summary: Annotated[StrictStr, StringConstraints(min_length=1, max_length=ev.MAX_SUMMARY)]
    severity: SeverityName = "warning"
    alert_key: Annotated[StrictStr, StringConstraints(max_length=ev.MAX_KEY)] = ""
    type: EventType = EventType.PROBLEM
    entity: (
        Annotated[StrictStr, StringConstraints(min_length=1, max_length=ev.MAX_ENTITY)] | None
    ) = None
    tenant_id: uuid.UUID | None = None
    alarm_class: AlarmClass | None = None
    identifier: (
        Annotated[StrictStr, StringConstraints(min_length=1, max_length=ev.MAX_IDENTIFIER)] | None
    ) = None
    occurred_at: AwareDatetime | None = None
    runbook: Annotated[StrictStr, StringConstraints(max_length=ev.MAX_RUNBOOK)] | None = None
    attributes: Annotated[
        dict[
            Annotated[StrictStr, StringConstraints(max_length=ev.MAX_ATTRIBUTE_NAME)],
            Annotated[StrictStr, StringConstraints(max_length=ev.MAX_ATTRIBUTE_VALUE)],
        ],
        Field(max_length=ev.MAX_ATTRIBUTES),
    ] = Field(default_factory=dict)
    occurrence_key: (
        Annotated[StrictStr, StringConstraints(min_length=1, max_length=ev.MAX_OCCURRENCE_KEY)]
        | None
    ) = None


class EventBatchIn(_Strict):
    """Many events in one request, stored in one transaction (all or none)."""

    events: Annotated[list[EventIn], Field(min_length=1, max_length=5000)]


class RaisedOut(BaseModel):
    """What one identifier's events did."""

    id: int
    identifier: str
    tally: int
    severity: SeverityName
    created: bool
    reopened: bool
    cleared: bool


class EventsAccepted(BaseModel):
    """The answer to a posted event or batch."""

    accepted: int
    alarms: list[RaisedOut]

    @classmethod
    def of(cls, count: int, raised: list[RaisedAlarm]) -> EventsAccepted:
        """The answer for `count` events that did `raised` to their alarms."""
        return cls(
            accepted=count,
            alarms=[
                RaisedOut(
                    id=r.id,
                    identifier=r.identifier,
                    tally=r.tally,
                    severity=r.severity.label,  # type: ignore[arg-type]
                    created=r.created,
                    reopened=r.reopened,
                    cleared=r.cleared,
                )
                for r in raised
            ],
        )


class AlarmOut(BaseModel):
    """An alarm as the console and the CLI show it."""

    id: int
    identifier: str
    node: str
    entity: str
    alert_group: str
    alert_key: str
    severity: SeverityName
    last_problem_severity: SeverityName
    type: EventType
    summary: str
    alarm_class: AlarmClass
    class_reason: str
    source: str
    tenant_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    tally: int
    first_occurrence: datetime
    last_occurrence: datetime
    state_change: datetime
    cleared_at: datetime | None
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    owner: str | None
    suppressed_by: int | None
    silence_id: int | None
    incident_id: int | None
    runbook: str | None
    attributes: dict[str, Any]

    @classmethod
    def of(cls, alarm: Alarm) -> AlarmOut:
        """The API form of an alarm row."""
        return cls(
            id=alarm.id,
            identifier=alarm.identifier,
            node=alarm.node,
            entity=alarm.entity,
            alert_group=alarm.alert_group,
            alert_key=alarm.alert_key,
            severity=Severity(alarm.severity).label,  # type: ignore[arg-type]
            last_problem_severity=Severity(alarm.last_problem_severity).label,  # type: ignore[arg-type]
            type=alarm.type,
            summary=alarm.summary,
            alarm_class=alarm.alarm_class,
            class_reason=alarm.class_reason,
            source=alarm.source.value,
            tenant_id=alarm.tenant_id,
            agent_id=alarm.agent_id,
            tally=alarm.tally,
            first_occurrence=alarm.first_occurrence,
            last_occurrence=alarm.last_occurrence,
            state_change=alarm.state_change,
            cleared_at=alarm.cleared_at,
            acknowledged=alarm.acknowledged,
            acknowledged_by=alarm.acknowledged_by,
            acknowledged_at=alarm.acknowledged_at,
            owner=alarm.owner,
            suppressed_by=alarm.suppressed_by,
            silence_id=alarm.silence_id,
            incident_id=alarm.incident_id,
            runbook=alarm.runbook,
            attributes=dict(alarm.attributes or {}),
        )


class AlarmPage(BaseModel):
    """One page of the alarm list; `next_cursor` fetches the next."""

    items: list[AlarmOut]
    next_cursor: str | None
    total: int | None = None


class JournalEntryOut(BaseModel):
    """One entry of an alarm's journal."""

    id: int
    at: datetime
    actor: str
    action: str
    text: str
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: AlarmJournalEntry) -> JournalEntryOut:
        """The API form of a journal row."""
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            text=entry.text,
            details=dict(entry.details or {}),
        )


class NoteIn(_Strict):
    """A journal note."""

    text: Annotated[StrictStr, StringConstraints(min_length=1, max_length=4000)]


class AssignIn(_Strict):
    """A new owner, or null to take the alarm back."""

    owner: Annotated[StrictStr, StringConstraints(min_length=1, max_length=200)] | None


class ClearIn(_Strict):
    """Why an alarm is cleared by hand."""

    reason: Annotated[StrictStr, StringConstraints(max_length=4000)] = ""


class LoginIn(_Strict):
    """Email and password of an account."""

    email: Annotated[StrictStr, StringConstraints(min_length=1, max_length=320)]
    password: Annotated[StrictStr, StringConstraints(min_length=1, max_length=1024)]


class LoginOut(BaseModel):
    """A key valid for a working day, to send as `Authorization: Bearer ...`."""

    api_key: str
    expires_at: datetime | None
