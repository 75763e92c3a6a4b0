"""Events: what any sender (domain code, the API, Alertmanager, syslog, SNMP) tells the SOC.

An event names a managed thing (`node`, `entity`), a kind of problem
(`alert_group`) and an instance of it (`alert_key`). Events with the same
identifier are one alarm: repeats add to its tally, and a resolution with the
same identifier clears it (the ObjectServer's generic clear). Everything
arrives from the network, so `check_event` bounds every field and strips
control characters before anything is stored or shown.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import AlarmClass, EventSource, EventType, Severity

MAX_NODE = 255
MAX_ENTITY = 300
MAX_GROUP = 100
MAX_KEY = 255
MAX_SUMMARY = 1000
MAX_IDENTIFIER = 255
MAX_RUNBOOK = 500
MAX_OCCURRENCE_KEY = 200
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_NAME = 100
MAX_ATTRIBUTE_VALUE = 1000

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")


@dataclass(frozen=True)
class Event:
    """One occurrence of a problem (or of its resolution) on a managed thing."""

    node: str
    alert_group: str
    summary: str
    severity: Severity = Severity.WARNING
    alert_key: str = ""
    type: EventType = EventType.PROBLEM
    source: EventSource = EventSource.API
    entity: str | None = None
    tenant_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    alarm_class: AlarmClass | None = None
    identifier: str | None = None
    occurred_at: datetime | None = None
    runbook: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    occurrence_key: str | None = None
    """Names this occurrence: the same key delivered again (a sender's retry) is not counted."""

    @property
    def dedup_identifier(self) -> str:
        """The alarm this event belongs to; a problem and its resolution share it."""
        if self.identifier:
            return self.identifier
        return f"{self.node}|{self.alert_group}|{self.alert_key}"[:MAX_IDENTIFIER]

    @property
    def entity_name(self) -> str:
        """The topology key of the thing the event is about."""
        return self.entity or f"node:{self.node}"


def clean_text(value: str, limit: int) -> str:
    """`value` without control or direction-changing characters, cut to `limit` characters.

    Tabs and newlines become spaces: a summary is one line in every view.
    Most text needs none of this: ``isprintable`` (one pass in C) is false for
    every character the expression removes, so clean text is returned as it is.
    """
    if len(value) <= limit and value.isprintable() and value == value.strip():
        return value
    text = value.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    text = _CONTROL.sub("", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _required(name: str, value: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"event {name} must be text")
    text = clean_text(value, limit)
    if not text:
        raise ValidationError(f"event {name} must not be empty")
    return text


_E = TypeVar("_E", bound=enum.Enum)


def _member(kind: type[_E], value: object) -> _E:
    """`value` as a member of `kind`: members pass as they are (a storm checks millions)."""
    if type(value) is kind:
        return value
    return kind(value)


def check_event(event: Event) -> Event:
    """A validated, cleaned copy of `event`; ValidationError names the first bad field."""
    node = _required("node", event.node, MAX_NODE)
    group = _required("alert_group", event.alert_group, MAX_GROUP)
    if not _GROUP.match(group):
        raise ValidationError(
            "event alert_group must be letters, digits and . _ : / - (e.g. agent.heartbeat)"
        )
    summary = _required("summary", event.summary, MAX_SUMMARY)
    key = clean_text(event.alert_key or "", MAX_KEY)
    try:
        severity = _member(Severity, event.severity)
        kind = _member(EventType, event.type)
        source = _member(EventSource, event.source)
        alarm_class = (
            _member(AlarmClass, event.alarm_class) if event.alarm_class is not None else None
        )
    except ValueError as exc:
        raise ValidationError(f"invalid event field: {exc}") from None
    identifier = None
    if event.identifier is not None:
        identifier = _required("identifier", event.identifier, MAX_IDENTIFIER)
    entity = None
    if event.entity is not None:
        entity = _required("entity", event.entity, MAX_ENTITY)
    runbook = clean_text(event.runbook, MAX_RUNBOOK) if event.runbook else None
    occurrence_key = (
        clean_text(event.occurrence_key, MAX_OCCURRENCE_KEY) or None
        if event.occurrence_key
        else None
    )
    occurred = event.occurred_at
    if occurred is not None:
        if occurred.tzinfo is None or occurred.utcoffset() is None:
            raise ValidationError("event occurred_at must carry a time zone")
        occurred = occurred.astimezone(UTC)
    if len(event.attributes) > MAX_ATTRIBUTES:
        raise ValidationError(f"an event has at most {MAX_ATTRIBUTES} attributes")
    attributes: dict[str, str] = {}
    for name, value in event.attributes.items():
        clean_name = clean_text(str(name), MAX_ATTRIBUTE_NAME)
        if clean_name:
            attributes[clean_name] = clean_text(str(value), MAX_ATTRIBUTE_VALUE)
    if severity == Severity.CLEAR and kind == EventType.PROBLEM:
        kind = EventType.RESOLUTION  # a problem of severity clear is a resolution by another name
    return replace(
        event,
        node=node,
        alert_group=group,
        summary=summary,
        alert_key=key,
        severity=severity,
        type=kind,
        source=source,
        alarm_class=alarm_class,
        identifier=identifier,
        entity=entity,
        runbook=runbook,
        occurred_at=occurred,
        attributes=attributes,
        occurrence_key=occurrence_key,
    )
