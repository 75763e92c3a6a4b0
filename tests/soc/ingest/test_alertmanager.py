"""Alertmanager webhook payloads (version 4) into events, and into alarms on both catalog engines."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.soc_models import Alarm, EventSource, EventType, Severity
from vaultwatch.soc.events import MAX_ATTRIBUTES, MAX_SUMMARY, check_event
from vaultwatch.soc.ingest import submit_events
from vaultwatch.soc.ingest.alertmanager import (
    FINGERPRINT,
    LABELS_DROPPED,
    MAX_ALERTS,
    STARTS_AT,
    TooManyAlertsError,
    UnsupportedWebhookVersionError,
    WebhookPayload,
    alert_severity,
    payload_events,
)

STARTS = "2024-05-01T10:00:00.123456789Z"
ZERO = "0001-01-01T00:00:00Z"


def alert(**changes: Any) -> dict[str, Any]:
    """One alert as Alertmanager 0.25 writes it in a webhook notification."""
    doc: dict[str, Any] = {
        "status": "firing",
        "labels": {
            "alertname": "DiskFull",
            "instance": "gw1:9100",
            "job": "node",
            "device": "/dev/sda1",
            "mountpoint": "/srv",
            "severity": "critical",
        },
        "annotations": {
            "summary": "/srv on gw1 is 97% full",
            "description": "only 3% left",
            "runbook_url": "https://runbooks.example/disk-full",
        },
        "startsAt": STARTS,
        "endsAt": ZERO,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": "c2a1f9e07d3b4a55",
    }
    doc.update(changes)
    return doc


def payload(*alerts: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A whole notification around `alerts`."""
    doc: dict[str, Any] = {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "vaultwatch",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts) or [alert()],
    }
    doc.update(changes)
    return doc


def events_of(doc: dict[str, Any]) -> list[Any]:
    return payload_events(WebhookPayload.model_validate(doc))


def test_firing_alert_maps_every_field() -> None:
    [event] = events_of(payload())
    assert event.identifier == "alertmanager:c2a1f9e07d3b4a55"
    assert event.node == "gw1"  # the exporter's port is not part of the node
    assert event.alert_group == "alertmanager.DiskFull"
    assert event.alert_key == "/dev/sda1"
    assert event.severity == Severity.CRITICAL
    assert event.summary == "/srv on gw1 is 97% full"
    assert event.runbook == "https://runbooks.example/disk-full"
    assert event.type == EventType.PROBLEM
    assert event.source == EventSource.ALERTMANAGER
    assert event.occurred_at == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert event.tenant_id is None
    assert event.attributes["instance"] == "gw1:9100"
    assert event.attributes["mountpoint"] == "/srv"
    assert event.attributes[FINGERPRINT] == "c2a1f9e07d3b4a55"
    assert event.attributes[STARTS_AT] == "2024-05-01T10:00:00.123456+00:00"
    assert event.occurrence_key == "startsAt=2024-05-01T10:00:00.123456+00:00"
    assert check_event(event) == event  # nothing the event check would change or refuse


def test_resolved_alert_is_a_resolution_at_its_end() -> None:
    [event] = events_of(payload(alert(status="resolved", endsAt="2024-05-01T10:05:00Z")))
    assert event.type == EventType.RESOLUTION
    assert event.occurred_at == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)
    assert event.identifier == "alertmanager:c2a1f9e07d3b4a55"
    # the same occurrence as its firing: it started at the same time
    [firing] = events_of(payload())
    assert event.occurrence_key == firing.occurrence_key


def test_node_falls_back_through_node_host_and_job() -> None:
    def node_of(labels: dict[str, str]) -> str:
        [event] = events_of(payload(alert(labels={"alertname": "X", **labels})))
        return str(event.node)

    assert node_of({"instance": "10.0.0.5:9100"}) == "10.0.0.5"
    assert node_of({"instance": "[2001:db8::1]:9100"}) == "[2001:db8::1]"
    assert node_of({"instance": "backup-02"}) == "backup-02"
    assert node_of({"node": "bs3", "host": "h", "job": "j"}) == "bs3"
    assert node_of({"host": "web-7", "job": "j"}) == "web-7"
    assert node_of({"job": "blackbox"}) == "blackbox"
    assert node_of({}) == "alertmanager"


def test_alert_key_and_summary_fall_back() -> None:
    labels = {"alertname": "LinkDown", "instance": "sw1", "interface": "eth0"}
    [event] = events_of(payload(alert(labels=labels, annotations={"description": "eth0 down"})))
    assert (event.alert_key, event.summary) == ("eth0", "eth0 down")
    [bare] = events_of(payload(alert(labels={"alertname": "Up"}, annotations={})))
    assert bare.alert_key == "c2a1f9e07d3b4a55"
    assert bare.summary == "Up"
    assert bare.runbook is None


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("critical", Severity.CRITICAL),
        ("page", Severity.CRITICAL),
        ("MAJOR", Severity.MAJOR),
        ("error", Severity.MAJOR),
        ("high", Severity.MAJOR),
        ("minor", Severity.MINOR),
        ("warning", Severity.WARNING),
        ("warn", Severity.WARNING),
        ("info", Severity.INDETERMINATE),
        ("none", Severity.INDETERMINATE),
        ("4", Severity.MAJOR),
        ("clear", Severity.INDETERMINATE),  # a firing alert never clears anything
        ("", Severity.WARNING),
        ("catastrophic", Severity.WARNING),
    ],
)
def test_severity_words(label: str, severity: Severity) -> None:
    assert alert_severity(label) == severity


def test_missing_severity_label_is_a_warning() -> None:
    labels = {"alertname": "X", "instance": "a"}
    [event] = events_of(payload(alert(labels=labels)))
    assert event.severity == Severity.WARNING


def test_tenant_label_chooses_no_tenant() -> None:
    labels = {"alertname": "X", "instance": "a", "tenant": str(uuid.uuid4())}
    [event] = events_of(payload(alert(labels=labels)))
    assert event.tenant_id is None


def test_fingerprint_is_derived_from_labels_when_missing() -> None:
    first = events_of(payload(alert(fingerprint="")))[0]
    again = events_of(payload(alert(fingerprint="")))[0]
    other_labels = dict(alert()["labels"], device="/dev/sdb1")
    other = events_of(payload(alert(fingerprint="", labels=other_labels)))[0]
    assert first.identifier == again.identifier
    assert first.identifier != other.identifier
    assert str(first.identifier).startswith("alertmanager:")


def test_hostile_text_is_bounded_and_cleaned() -> None:
    labels = {f"label_{i:03d}": "v" for i in range(200)}
    labels.update({"alertname": "Weird name!\n<script>", "instance": "gw1\x1b[31m"})
    doc = alert(labels=labels, annotations={"summary": "x" * 5000})
    [event] = events_of(payload(doc))
    checked = check_event(event)
    assert checked.alert_group == "alertmanager.Weird_name_script"
    assert len(checked.summary) <= MAX_SUMMARY
    assert len(checked.attributes) <= MAX_ATTRIBUTES
    assert checked.attributes[LABELS_DROPPED] == str(202 - (MAX_ATTRIBUTES - 4))
    assert "\x1b" not in checked.node


def test_other_versions_are_refused() -> None:
    with pytest.raises(UnsupportedWebhookVersionError, match="'3' is not supported") as info:
        events_of(payload(version="3"))
    assert info.value.http_status == 422


def test_too_many_alerts_are_refused() -> None:
    alerts = [alert(fingerprint=f"{i:016x}") for i in range(MAX_ALERTS + 1)]
    with pytest.raises(TooManyAlertsError, match=f"at most {MAX_ALERTS}") as info:
        events_of(payload(*alerts))
    assert info.value.http_status == 413
    assert len(events_of(payload(*alerts[:MAX_ALERTS]))) == MAX_ALERTS


@pytest.mark.parametrize(
    "change",
    [
        {"alerts": "nope"},
        {"status": "pending"},
        {"alerts": [alert(startsAt="yesterday")]},
        {"alerts": [alert(labels={"a": ["list"]})]},
        {"alerts": [alert(status="silenced")]},
    ],
)
def test_malformed_payloads_fail_validation(change: dict[str, Any]) -> None:
    with pytest.raises(PydanticValidationError):
        WebhookPayload.model_validate(payload(**change))


# -- into the alarm store ---------------------------------------------------------------------


def _alarm(catalog: Catalog, identifier: str) -> Alarm:
    with catalog.session() as session:
        alarm = session.scalars(select(Alarm).where(Alarm.identifier == identifier)).one()
        session.expunge(alarm)
        return alarm


def test_repeats_and_retries_count_once_and_resolution_clears(catalog: Catalog) -> None:
    doc = payload()
    identifier = "alertmanager:c2a1f9e07d3b4a55"
    submit_events(catalog, events_of(doc))
    submit_events(catalog, events_of(copy.deepcopy(doc)))  # a retry / repeat_interval re-send
    alarm = _alarm(catalog, identifier)
    assert alarm.tally == 1
    assert alarm.severity == Severity.CRITICAL
    assert alarm.attributes[STARTS_AT] == "2024-05-01T10:00:00.123456+00:00"
    assert alarm.source == EventSource.ALERTMANAGER

    resolved = payload(alert(status="resolved", endsAt="2024-05-01T10:05:00Z"), status="resolved")
    submit_events(catalog, events_of(resolved))
    alarm = _alarm(catalog, identifier)
    assert alarm.cleared_at is not None
    assert alarm.severity == Severity.CLEAR
    assert alarm.tally == 1

    refired = payload(alert(startsAt="2024-05-01T11:00:00Z"))  # a new firing: a new start
    submit_events(catalog, events_of(refired))
    submit_events(catalog, events_of(refired))
    alarm = _alarm(catalog, identifier)
    assert alarm.cleared_at is None
    assert alarm.tally == 2
