"""Prometheus Alertmanager's webhook (payload version 4), turned into SOC events.

Each alert in a notification becomes one event whose identifier is the
alert's fingerprint (the hash of its label set), so Alertmanager's repeats and
its resolution land on one alarm. Alertmanager re-sends a group on every
``repeat_interval`` and retries a failed delivery; both carry the alert's
unchanged ``startsAt``, which becomes the event's occurrence key, so only a
new firing (a new ``startsAt``) adds to the alarm's tally.

Nothing in a payload chooses a tenant: a ``tenant`` label is kept as an
attribute like any other, and the events are the service's own.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import EventSource, EventType, Severity
from vaultwatch.soc.events import (
    MAX_ATTRIBUTE_NAME,
    MAX_ATTRIBUTES,
    MAX_GROUP,
    MAX_IDENTIFIER,
    MAX_KEY,
    MAX_NODE,
    MAX_RUNBOOK,
    MAX_SUMMARY,
    Event,
    clean_text,
)

PAYLOAD_VERSION = "4"
MAX_ALERTS = 1000
"""Alerts in one notification; Alertmanager's ``max_alerts`` receiver setting keeps below it."""

GROUP_PREFIX = "alertmanager."
IDENTIFIER_PREFIX = "alertmanager:"
DEFAULT_NODE = "alertmanager"
NODE_LABELS = ("instance", "node", "host", "job")
KEY_LABELS = ("device", "mountpoint", "interface")
SUMMARY_ANNOTATIONS = ("summary", "description", "message")
RUNBOOK_ANNOTATIONS = ("runbook_url", "runbook")

STARTS_AT = "alertmanager.starts_at"
FINGERPRINT = "alertmanager.fingerprint"
GENERATOR_URL = "alertmanager.generator_url"
LABELS_DROPPED = "alertmanager.labels_dropped"
_RESERVED = 4
"""Attributes of our own next to the labels (the names above)."""

MAX_LABELS = MAX_ATTRIBUTES - _RESERVED

_ZERO_YEAR = 1970
"""Alertmanager writes Go's zero time (year 1) for an alert that has no end yet."""

_PORT = re.compile(r"^(?P<host>\[[^\]]+\]|[^:\[\]]+):\d{1,5}$")
_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/-]+")
_FINGERPRINT = re.compile(r"^[0-9A-Za-z]{1,64}$")

_SEVERITY_WORDS: dict[str, Severity] = {
    **{w: Severity.CRITICAL for w in ("crit", "fatal", "emergency", "emerg", "alert", "page")},
    **{w: Severity.CRITICAL for w in ("p1", "sev1", "disaster")},
    **{w: Severity.MAJOR for w in ("high", "error", "err", "p2", "sev2", "severe")},
    **{w: Severity.MINOR for w in ("medium", "moderate", "average", "p3", "sev3")},
    **{w: Severity.WARNING for w in ("warn", "low", "p4", "sev4")},
    **{w: Severity.INDETERMINATE for w in ("info", "informational", "notice", "debug", "none")},
    **{w: Severity.INDETERMINATE for w in ("ok", "p5", "sev5")},
}


class UnsupportedWebhookVersionError(ValidationError):
    """The notification is not in the webhook payload version this receiver reads."""

    http_status = 422


class TooManyAlertsError(ValidationError):
    """One notification carries more alerts than the receiver takes."""

    http_status = 413


class WebhookAlert(BaseModel):
    """One alert of a notification, as Alertmanager sends it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""


class WebhookPayload(BaseModel):
    """A webhook notification: one alert group, version 4 of the format."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: str
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[WebhookAlert]


def check_payload(payload: WebhookPayload) -> WebhookPayload:
    """`payload` if this receiver can take it; the errors say what to change in Alertmanager."""
    if payload.version != PAYLOAD_VERSION:
        raise UnsupportedWebhookVersionError(
            f"webhook payload version {payload.version!r} is not supported: "
            f"this receiver reads version {PAYLOAD_VERSION!r} (Alertmanager 0.x webhook_configs)"
        )
    if len(payload.alerts) > MAX_ALERTS:
        raise TooManyAlertsError(
            f"the notification carries {len(payload.alerts)} alerts; at most {MAX_ALERTS} "
            f"are accepted at once (set max_alerts in the receiver's webhook_configs)"
        )
    return payload


def payload_events(payload: WebhookPayload) -> list[Event]:
    """One event per alert of a checked payload, in the payload's order."""
    return [alert_event(alert) for alert in check_payload(payload).alerts]


def alert_event(alert: WebhookAlert) -> Event:
    """The event one alert stands for (see the module's docstring for the mapping)."""
    labels = alert.labels
    fingerprint = alert_fingerprint(alert)
    alertname = labels.get("alertname", "").strip() or "alert"
    resolved = alert.status == "resolved"
    starts_at = _utc(alert.starts_at)
    ends_at = _utc(alert.ends_at) if alert.ends_at is not None else None
    summary = _first(alert.annotations, SUMMARY_ANNOTATIONS) or alertname
    return Event(
        node=_node(labels),
        alert_group=_group(alertname),
        summary=clean_text(summary, MAX_SUMMARY),
        severity=alert_severity(labels.get("severity", "")),
        alert_key=clean_text(_first(labels, KEY_LABELS) or fingerprint, MAX_KEY),
        type=EventType.RESOLUTION if resolved else EventType.PROBLEM,
        source=EventSource.ALERTMANAGER,
        identifier=f"{IDENTIFIER_PREFIX}{fingerprint}"[:MAX_IDENTIFIER],
        occurred_at=(ends_at or starts_at) if resolved else starts_at,
        runbook=clean_text(_first(alert.annotations, RUNBOOK_ANNOTATIONS), MAX_RUNBOOK) or None,
        attributes=_attributes(alert, fingerprint, starts_at),
        occurrence_key=_occurrence_key(starts_at),
    )


def alert_fingerprint(alert: WebhookAlert) -> str:
    """Alertmanager's fingerprint, or one of the label set when a sender left it out."""
    given = alert.fingerprint.strip()
    if _FINGERPRINT.match(given):
        return given.lower()
    digest = hashlib.sha256()
    for name in sorted(alert.labels):
        digest.update(f"{name}\xff{alert.labels[name]}\xff".encode())
    return digest.hexdigest()[:16]


def alert_severity(text: str) -> Severity:
    """A ``severity`` label as a Severity: our names, numbers and Prometheus' usual words.

    A firing alert is never a clear, and an unknown or missing word is a warning.
    """
    word = text.strip().lower()
    if not word:
        return Severity.WARNING
    if word in _SEVERITY_WORDS:
        return _SEVERITY_WORDS[word]
    try:
        severity = Severity.parse(word)
    except ValueError:
        return Severity.WARNING
    return Severity.INDETERMINATE if severity == Severity.CLEAR else severity


def _occurrence_key(starts_at: datetime | None) -> str | None:
    """One firing of an alert, from its start to its resolution, is one occurrence.

    Alertmanager keeps ``startsAt`` for as long as the alert fires (repeats
    and retries carry it unchanged) and gives a new firing a new one.
    """
    return f"startsAt={starts_at.isoformat()}" if starts_at is not None else None


def _utc(moment: datetime) -> datetime | None:
    """An aware UTC time, or None for Go's zero time; a time without zone is taken as UTC."""
    if moment.year < _ZERO_YEAR:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _first(values: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = values.get(name, "").strip()
        if value:
            return value
    return ""


def _node(labels: dict[str, str]) -> str:
    """The managed thing: ``instance`` without its port (``gw1:9100`` is node ``gw1``) ..."""
    instance = labels.get("instance", "").strip()
    if instance:
        match = _PORT.match(instance)
        node = match.group("host") if match else instance
    else:
        node = _first(labels, NODE_LABELS[1:])
    return clean_text(node, MAX_NODE) or DEFAULT_NODE


def _group(alertname: str) -> str:
    """``alertmanager.<alertname>``, with what an alert group may not hold replaced."""
    safe = _GROUP_UNSAFE.sub("_", alertname).strip("_") or "alert"
    return (GROUP_PREFIX + safe)[:MAX_GROUP]


def _attributes(
    alert: WebhookAlert, fingerprint: str, starts_at: datetime | None
) -> dict[str, str]:
    """The alert's labels (at most MAX_LABELS, by name) and where the alert came from."""
    names = sorted(name for name in alert.labels if name.strip())
    kept = names[:MAX_LABELS]
    attributes = {name[:MAX_ATTRIBUTE_NAME]: alert.labels[name] for name in kept}
    attributes[FINGERPRINT] = fingerprint
    if starts_at is not None:
        attributes[STARTS_AT] = starts_at.isoformat()
    if alert.generator_url:
        attributes[GENERATOR_URL] = alert.generator_url
    if len(names) > len(kept):
        attributes[LABELS_DROPPED] = str(len(names) - len(kept))
    return attributes
