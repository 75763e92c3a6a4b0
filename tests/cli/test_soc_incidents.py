"""``vaultwatch soc`` diagnose, incidents, cases and silences: on a data directory and over HTTPS."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.cli.conftest import Cli
from tests.cli.test_soc import Served, Site, _journal, _make_site, _no_soc_env, served
from vaultwatch import __version__
from vaultwatch.catalog import Role
from vaultwatch.catalog.soc_models import (
    Alarm,
    CustomerUpdate,
    CustomerUpdateState,
    Notification,
    ServerNode,
    Severity,
)
from vaultwatch.catalog.users import create_user
from vaultwatch.soc import cases, escalation
from vaultwatch.soc.alarms import raise_events
from vaultwatch.soc.events import Event

__all__ = ["_no_soc_env", "served"]  # fixtures shared with test_soc

ONCALL = "oncall@vaultwatch.example"
ACME_ADMIN = "admin@acme.example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The CLI test site, plus a paging policy, a healthy node, a customer admin and a case."""
    made = _make_site(tmp_path_factory.mktemp("soc-incidents"))
    with made.catalog.session() as session:
        escalation.create_policy(
            session,
            name=escalation.DEFAULT_POLICY,
            levels=[{"targets": [{"kind": "email", "address": ONCALL}], "timeout_seconds": 600}],
        )
        session.add(
            ServerNode(
                name="gw-ok",
                site="dc1",
                roles=["gateway"],
                last_seen_at=datetime.now(UTC),
                version=__version__,
            )
        )
        create_user(
            session,
            email=ACME_ADMIN,
            display_name="Acme admin",
            role=Role.CUSTOMER_ADMIN,
            password="correct horse battery",
            actor="system:test",
            tenant_id=made.fleet.acme,
        )
    try:
        yield made
    finally:
        made.catalog.dispose()


def _new_alarm(site: Site, group: str, *, tenant: bool = True) -> int:
    """A fresh open alarm (for Acme unless `tenant` is false), by its id."""
    with site.catalog.session() as session:
        (raised,) = raise_events(
            session,
            [
                Event(
                    node=f"host-{uuid.uuid4().hex[:8]}",
                    alert_group=group,
                    summary=f"{group} on a test host",
                    severity=Severity.MINOR,
                    tenant_id=site.fleet.acme if tenant else None,
                )
            ],
        )
        return raised.id


def _open_case(site: Site, subject: str) -> int:
    with site.catalog.session() as session:
        case = cases.open_case(
            session,
            tenant_id=site.fleet.acme,
            subject=subject,
            text="our nightly backup did not run",
            actor="user:customer",
            contact_email=ACME_ADMIN,
        )
        session.flush()
        return case.id


def _update_row(site: Site, update_id: int) -> CustomerUpdate:
    with site.catalog.session() as session:
        row = session.get(CustomerUpdate, update_id)
        assert row is not None
        session.expunge(row)
        return row


# -- diagnose ----------------------------------------------------------------------------------


def test_diagnose_exit_status_follows_the_worst_check(cli: Cli, site: Site) -> None:
    healthy = cli("soc", "diagnose", "node", "gw-ok", "-d", site.data_dir)
    assert healthy.exit_code == 0, healthy.output
    assert "database" in healthy.stdout and "store read and write" in healthy.stdout
    assert "node gw-ok: ok" in healthy.stdout

    warned = cli("soc", "diagnose", "agent", "a-protected", "-d", site.data_dir, "--json")
    assert warned.exit_code == 0, warned.output  # an older agent version only warns
    report = _loads(warned.stdout)
    assert report["status"] == "warn"
    assert {c["name"]: c["status"] for c in report["checks"]}["heartbeat"] == "ok"

    alarm_id = site.alarms["agent.rpo"]
    silent = cli(
        "soc", "diagnose", "agent", "e-silent", "--alarm", str(alarm_id), "-d", site.data_dir
    )
    assert silent.exit_code == 1, silent.output
    assert "agent e-silent: fail" in silent.stdout and "heartbeat" in silent.stdout
    assert f"journal of alarm {alarm_id}" in silent.stderr
    actor, action, text = _journal(site, alarm_id)[-1]
    assert action == "diagnose" and text == "diagnostics of agent e-silent: fail"
    assert actor.startswith("system:cli:")

    tenant = _loads(cli("soc", "diagnose", "tenant", "Acme", "-d", site.data_dir, "--json").stdout)
    assert [c["name"] for c in tenant["checks"]] == ["agents", "vault", "open alarms"]
    assert tenant["checks"][0]["status"] == "warn" and "e-silent" in tenant["checks"][0]["detail"]


def test_diagnose_refuses_unknown_targets(cli: Cli, site: Site) -> None:
    unknown = cli("soc", "diagnose", "agent", "no-such-host", "-d", site.data_dir)
    assert (
        unknown.exit_code == 5 and "no agent with id or hostname 'no-such-host'" in unknown.stderr
    )
    kind = cli("soc", "diagnose", "planet", "mars", "-d", site.data_dir)
    assert kind.exit_code == 2 and "choose one of node, gateway, agent, tenant" in kind.stderr
    alarm = cli("soc", "diagnose", "node", "gw-ok", "--alarm", "999999", "-d", site.data_dir)
    assert alarm.exit_code == 5 and "no alarm 999999" in alarm.stderr


# -- incidents ---------------------------------------------------------------------------------


def test_incident_life_from_the_data_directory(cli: Cli, site: Site) -> None:
    d = ["-d", str(site.data_dir)]
    alarm_id = _new_alarm(site, "agent.rpo.cli")
    opened = cli.json(
        "soc", "incident", "open", "--alarm", str(alarm_id), "--title", "Acme RPO breach", *d
    )
    incident_id = opened["id"]
    assert (opened["state"], opened["title"], opened["root_alarm_id"]) == (
        "triggered",
        "Acme RPO breach",
        alarm_id,
    )
    assert opened["tenant_ids"] == [str(site.fleet.acme)]
    again = cli("soc", "incident", "open", "--alarm", str(alarm_id), *d)
    assert again.exit_code == 2 and "already has open incident" in again.stderr

    listed = cli.json("soc", "incidents", "--state", "triggered", *d)
    assert incident_id in [i["id"] for i in listed]
    assert "Acme RPO breach" in cli.ok("soc", "incidents", *d).stdout

    acked = cli.json("soc", "incident", "ack", str(incident_id), "--note", "on it", *d)
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"].startswith("system:cli:")
    shown = cli.json("soc", "incident", "show", str(incident_id), *d)
    kinds = [step["kind"] for step in shown["timeline"]]
    assert kinds[:2] == ["triggered", "paged"] and kinds[-1] == "acknowledged"
    paged = shown["timeline"][1]
    assert paged["details"]["recipient"] == ONCALL and paged["details"]["channel"] == "email"
    ack = shown["timeline"][-1]
    assert ack["actor"] == acked["acknowledged_by"] and ack["text"] == "on it"
    table = cli.ok("soc", "incident", "show", str(incident_id), *d).stdout
    assert f"paged {ONCALL} by email" in table and "acknowledged" in table and "on it" in table
    assert cli.json("soc", "incidents", "--state", "acknowledged", *d)[0]["id"] == incident_id

    resolved = cli.json("soc", "incident", "resolve", str(incident_id), "--note", "ran", *d)
    assert resolved["state"] == "resolved" and resolved["resolved_by"] == acked["acknowledged_by"]
    late = cli("soc", "incident", "ack", str(incident_id), *d)
    assert late.exit_code == 2 and f"incident {incident_id} is resolved" in late.stderr
    assert incident_id not in [
        i["id"] for i in cli.json("soc", "incidents", "--state", "triggered", *d)
    ]


def test_publishing_a_customer_update_sends_it(cli: Cli, site: Site) -> None:
    d = ["-d", str(site.data_dir)]
    alarm_id = _new_alarm(site, "agent.rpo.publish")
    incident_id = cli.json("soc", "incident", "open", "--alarm", str(alarm_id), *d)["id"]
    (draft,) = cli.json("soc", "incident", "updates", str(incident_id), *d)
    assert (draft["kind"], draft["state"]) == ("first_notice", "draft")
    assert "draft" in cli.ok("soc", "incident", "updates", str(incident_id), *d).stdout

    text = "Backups of two servers are late; we are on it."
    sent = cli.ok(
        "soc", "incident", "publish", str(incident_id), str(draft["id"]), "--text", text, *d
    )
    assert f"customer update {draft['id']} of incident {incident_id} published to 1 tenant" in (
        sent.stdout
    )
    row = _update_row(site, draft["id"])
    assert row.state == CustomerUpdateState.PUBLISHED and row.text == text
    assert row.published_by is not None and row.published_by.startswith("system:cli:")
    with site.catalog.session() as session:
        mails = session.scalars(
            select(Notification.recipient).where(
                Notification.incident_id == incident_id,
                Notification.dedup_key.like(f"customer-update:{draft['id']}:%"),
            )
        ).all()
    assert mails == [ACME_ADMIN]
    twice = cli("soc", "incident", "publish", str(incident_id), str(draft["id"]), *d)
    assert twice.exit_code == 2 and "already published" in twice.stderr
    other = cli("soc", "incident", "publish", "999999", str(draft["id"]), *d)
    assert other.exit_code == 5


def test_incident_commands_refuse_bad_input(cli: Cli, site: Site) -> None:
    d = ["-d", str(site.data_dir)]
    cases_: list[tuple[list[str], int, str]] = [
        (["soc", "incident", "show", "999999", *d], 5, "no incident 999999"),
        (["soc", "incident", "resolve", "999999", *d], 5, "no incident 999999"),
        (["soc", "incident", "updates", "999999", *d], 5, "no incident 999999"),
        (["soc", "incident", "open", "--alarm", "999999", *d], 5, "no alarm 999999"),
        (["soc", "incident", "open", "--alarm", "1", "--title", " ", *d], 2, "must not be empty"),
        (["soc", "incidents", "--state", "open", *d], 2, "unknown state 'open'"),
    ]
    for args, code, message in cases_:
        result = cli(*args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.stderr, (args, result.stderr)


# -- support cases -----------------------------------------------------------------------------


def test_case_life_from_the_data_directory(cli: Cli, site: Site) -> None:
    d = ["-d", str(site.data_dir)]
    case_id = _open_case(site, "Backup did not run")
    assert case_id in [c["id"] for c in cli.json("soc", "cases", "--state", "open", *d)]
    assert "Backup did not run" in cli.ok("soc", "cases", *d).stdout

    escalated = cli.json("soc", "case", "escalate", str(case_id), "--reason", "gateway side", *d)
    assert (escalated["state"], escalated["owner_team"]) == ("escalated", "soc")
    twice = cli("soc", "case", "escalate", str(case_id), *d)
    assert twice.exit_code == 2 and "already with the operations center" in twice.stderr

    hidden = cli.json("soc", "case", "note", str(case_id), "checked gw1 logs", "--internal", *d)
    shown = cli.json("soc", "case", "note", str(case_id), "we are looking into it", *d)
    assert hidden["visible_to_customer"] is False and shown["visible_to_customer"] is True
    doc = cli.json("soc", "case", "show", str(case_id), *d)
    history = {e["text"]: e for e in doc["history"]}
    assert history["checked gw1 logs"]["kind"] == "note"
    assert history["gateway side"]["kind"] == "escalated"
    table = cli.ok("soc", "case", "show", str(case_id), *d).stdout
    assert "internal" in table and "checked gw1 logs" in table and "escalated" in table

    done = cli.json("soc", "case", "resolve", str(case_id), "--resolution", "restarted gw1", *d)
    assert done["state"] == "resolved" and done["history"][-1]["text"] == "restarted gw1"
    assert case_id in [c["id"] for c in cli.json("soc", "cases", "--state", "resolved", *d)]
    late = cli("soc", "case", "note", str(case_id), "more", *d)
    assert late.exit_code == 2 and "is resolved" in late.stderr
    for args, code, message in [
        (["soc", "case", "show", "999999", *d], 5, "no support case 999999"),
        (["soc", "case", "note", str(case_id), "  ", *d], 2, "must not be empty"),
        (["soc", "cases", "--state", "pending", *d], 2, "unknown state 'pending'"),
    ]:
        result = cli(*args)
        assert result.exit_code == code and message in result.stderr, (args, result.output)


# -- silences ----------------------------------------------------------------------------------


def test_silences_list_and_unsilence(cli: Cli, tmp_path: Path) -> None:
    fresh = _make_site(tmp_path)
    d = ["-d", str(fresh.data_dir)]
    try:
        made = cli.json(
            "soc", "silence", "--match", "node=gw1", "--duration", "1h", "--comment", "psu", *d
        )
        listed = {s["id"]: s for s in cli.json("soc", "silences", *d)}
        assert (listed[made["id"]]["state"], listed[made["id"]]["muted_alarms"]) == ("active", 1)
        table = cli.ok("soc", "silences", *d).stdout
        assert "node=gw1" in table and "active" in table and "psu" in table

        cancelled = cli.json("soc", "unsilence", str(made["id"]), *d)
        assert cancelled["state"] == "cancelled" and cancelled["muted_alarms"] == 0
        assert made["id"] not in [s["id"] for s in cli.json("soc", "silences", *d)]
        ended = {s["id"]: s["state"] for s in cli.json("soc", "silences", "--all", *d)}
        assert ended[made["id"]] == "cancelled"
        with fresh.catalog.session() as session:
            alarm = session.get(Alarm, fresh.alarms["gateway.down"])
            assert alarm is not None and alarm.silence_id is None  # it pages again

        again = cli("soc", "unsilence", str(made["id"]), *d)
        assert again.exit_code == 2 and "already cancelled" in again.stderr
        unknown = cli("soc", "unsilence", "999999", *d)
        assert unknown.exit_code == 5 and "no silence 999999" in unknown.stderr
    finally:
        fresh.catalog.dispose()


# -- over HTTPS --------------------------------------------------------------------------------


def test_diagnose_over_https(cli: Cli, served: Served) -> None:
    failed = cli("soc", "diagnose", "agent", "e-silent", "--json", *served.args())
    assert failed.exit_code == 1 and _loads(failed.stdout)["status"] == "fail"
    ok = cli("soc", "diagnose", "node", "gw-ok", *served.args())
    assert ok.exit_code == 0 and "node gw-ok: ok" in ok.stdout
    unknown = cli("soc", "diagnose", "agent", "no-such-host", *served.args())
    assert unknown.exit_code == 5 and "no agent with id or hostname" in unknown.stderr
    customer = cli("soc", "diagnose", "agent", "a-protected", *served.args(served.customer_key))
    assert customer.exit_code == 4


def test_incident_ack_and_publish_over_https(cli: Cli, served: Served) -> None:
    site = served.site
    alarm_id = _new_alarm(site, "agent.rpo.https")
    opened = cli.json("soc", "incident", "open", "--alarm", str(alarm_id), *served.args())
    incident_id = opened["id"]
    assert opened["created_by"].startswith("user:")
    acked = cli.json("soc", "incident", "ack", str(incident_id), "--note", "mine", *served.args())
    shown = cli.json("soc", "incident", "show", str(incident_id), *served.args())
    step = shown["timeline"][-1]
    assert (step["kind"], step["actor"], step["text"]) == (
        "acknowledged",
        acked["acknowledged_by"],
        "mine",
    )
    assert any(s["kind"] == "paged" for s in shown["timeline"])

    customer = served.args(served.customer_key)
    seen = cli.ok("soc", "incident", "show", str(incident_id), *customer)
    assert "acknowledged" in seen.stdout and "operations center only" in seen.stderr
    refused = cli("soc", "incident", "ack", str(incident_id), *customer)
    assert refused.exit_code == 4 and "403" in refused.stderr
    assert cli.json("soc", "incident", "updates", str(incident_id), *customer) == []

    (draft,) = cli.json("soc", "incident", "updates", str(incident_id), *served.args())
    published = cli.json(
        "soc", "incident", "publish", str(incident_id), str(draft["id"]), *served.args()
    )
    assert [u["state"] for u in published] == ["published"]
    assert _update_row(site, draft["id"]).state == CustomerUpdateState.PUBLISHED
    (visible,) = cli.json("soc", "incident", "updates", str(incident_id), *customer)
    assert visible["id"] == draft["id"]
    missing = cli("soc", "incident", "show", "999999", *served.args())
    assert missing.exit_code == 5 and "not found" in missing.stderr


def test_cases_and_silences_over_https(cli: Cli, served: Served) -> None:
    site = served.site
    case_id = _open_case(site, "Restore is slow")
    cli.ok("soc", "case", "escalate", str(case_id), *served.args())
    cli.ok("soc", "case", "note", str(case_id), "carrier TT-9", "--internal", *served.args())
    staff = cli.json("soc", "case", "show", str(case_id), *served.args())
    assert "carrier TT-9" in [e["text"] for e in staff["history"]]
    customer = cli.json("soc", "case", "show", str(case_id), *served.args(served.customer_key))
    assert "carrier TT-9" not in [e["text"] for e in customer["history"]]  # internal stays inside
    assert cli.json("soc", "case", "resolve", str(case_id), *served.args())["state"] == "resolved"
    assert case_id in [
        c["id"] for c in cli.json("soc", "cases", "--state", "resolved", *served.args())
    ]

    made = cli.json(
        "soc",
        "silence",
        "--match",
        "alert_group=agent.rpo",
        "--duration",
        "30m",
        "--comment",
        "customer maintenance",
        *served.args(),
    )
    assert made["id"] in [s["id"] for s in cli.json("soc", "silences", *served.args())]
    gone = cli.ok("soc", "unsilence", str(made["id"]), *served.args())
    assert f"silence {made['id']} cancelled (alert_group=agent.rpo)" in gone.stdout
    assert cli("soc", "silences", *served.args(served.customer_key)).exit_code == 4


def _loads(text: str) -> Any:
    return json.loads(text)
