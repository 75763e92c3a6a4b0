"""``vaultwatch soc`` on a server data directory and against a real server over HTTPS."""

from __future__ import annotations

import os
import pty
import select as io_select
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.cli.conftest import Cli, subprocess_env, vaultwatch_exe
from tests.gateway.harness import serve
from tests.soc.test_status import EXPECTED, Fleet, build_fleet
from vaultwatch.catalog import Catalog, Role
from vaultwatch.catalog.soc_models import Alarm, AlarmJournalEntry, ServerNode, Severity
from vaultwatch.catalog.users import create_user
from vaultwatch.server import init_server
from vaultwatch.server_config import ServerSettings
from vaultwatch.soc.alarms import raise_events
from vaultwatch.soc.events import Event

_SOC_ENV = ("VAULTWATCH_SERVER", "VAULTWATCH_API_KEY", "VAULTWATCH_CA_CERT", "VAULTWATCH_DATA_DIR")


@pytest.fixture(autouse=True)
def _no_soc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _SOC_ENV:
        monkeypatch.delenv(var, raising=False)


@dataclass
class Site:
    """A server data directory with a fleet and alarms in its catalog."""

    data_dir: Path
    settings: ServerSettings
    catalog: Catalog
    fleet: Fleet
    alarms: dict[str, int]
    admin_email: str


def _make_site(root: Path) -> Site:
    result = init_server(root / "data")
    catalog = Catalog(result.settings.catalog_url)
    fleet = build_fleet(catalog)
    with catalog.session() as session:
        raised = raise_events(
            session,
            [
                Event(
                    node="gw1",
                    alert_group="gateway.down",
                    summary="gateway gw1 does not answer",
                    severity=Severity.CRITICAL,
                ),
                Event(
                    node="c-breached",
                    alert_group="agent.rpo",
                    summary="RPO breached on c-breached",
                    severity=Severity.WARNING,
                    tenant_id=fleet.acme,
                    agent_id=fleet.agents["c-breached"],
                ),
            ],
        )
    ids = {r.identifier: r.id for r in raised}
    with catalog.session() as session:
        by_group = {
            a.alert_group: a.id
            for a in session.scalars(select(Alarm).where(Alarm.id.in_(ids.values())))
        }
    return Site(root / "data", result.settings, catalog, fleet, by_group, result.admin_email or "")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    made = _make_site(tmp_path_factory.mktemp("soc"))
    try:
        yield made
    finally:
        made.catalog.dispose()


def _journal(site: Site, alarm_id: int) -> list[tuple[str, str, str]]:
    with site.catalog.session() as session:
        rows = session.scalars(
            select(AlarmJournalEntry)
            .where(AlarmJournalEntry.alarm_id == alarm_id)
            .order_by(AlarmJournalEntry.id)
        )
        return [(e.actor, e.action, e.text) for e in rows]


# -- on the data directory ---------------------------------------------------------------------


def test_status_and_agents_from_the_data_directory(cli: Cli, site: Site) -> None:
    doc = cli.json("soc", "status", "-d", site.data_dir)
    assert doc["agents"] == len(EXPECTED)
    assert doc["states"]["unprotected"] == 5 and doc["states"]["paused"] == 1
    text = cli.ok("soc", "status", "-d", site.data_dir).stdout
    assert "unprotected" in text and "Acme" in text and "Globex" in text

    page = cli.json("soc", "agents", "-d", site.data_dir, "--state", "unprotected")
    assert sorted(a["hostname"] for a in page["items"]) == sorted(
        h for h, (s, _) in EXPECTED.items() if s.value == "unprotected"
    )
    table = cli.ok("soc", "agents", "-d", site.data_dir).stdout
    assert "d-failed" in table and "the last backup failed" in table
    assert "no heartbeat for" in table

    first = cli.json("soc", "agents", "-d", site.data_dir, "--limit", "4")
    rest = cli.json(
        "soc", "agents", "-d", site.data_dir, "--limit", "100", "--cursor", first["next_cursor"]
    )
    assert [a["hostname"] for a in first["items"] + rest["items"]] == sorted(EXPECTED)

    one = cli.json("soc", "agent", str(site.fleet.agents["b-at-risk"]), "-d", site.data_dir)
    assert one["state"] == "at_risk" and one["backup_sets"][0]["rpo_used"] > 0.5
    shown = cli.ok("soc", "agent", str(site.fleet.agents["b-at-risk"]), "-d", site.data_dir)
    assert "b-at-risk" in shown.stdout and "home" in shown.stdout


def test_jobs_from_the_data_directory(cli: Cli, site: Site) -> None:
    jobs = cli.json("soc", "jobs", "-d", site.data_dir, "--limit", "500")
    failed = [j for j in jobs if j["state"] == "failed"]
    assert [j["hostname"] for j in failed] == ["d-failed"]
    assert failed[0]["errors"][-1] == "gateway refused the pack"
    result = cli.ok("soc", "jobs", "-d", site.data_dir)
    assert "gateway refused the pack" in result.stderr  # the failure is explained
    assert cli.json("soc", "jobs", "-d", site.data_dir, "--running") == []


def test_snapshots_and_nodes_from_the_data_directory(cli: Cli, site: Site) -> None:
    snaps = cli.json("soc", "snapshots", str(site.fleet.sets["a-protected"]), "-d", site.data_dir)
    assert len(snaps) == 1 and snaps[0]["bytes_added"] == 200
    assert (
        "200 B"
        in cli.ok(
            "soc", "snapshots", str(site.fleet.sets["a-protected"]), "-d", site.data_dir
        ).stdout
    )
    with site.catalog.session() as session:
        if session.scalar(select(ServerNode).where(ServerNode.name == "gw-cli")) is None:
            session.add(ServerNode(name="gw-cli", site="dc1", roles=["gateway"], last_seen_at=None))
    nodes = cli.json("soc", "nodes", "-d", site.data_dir)
    assert ("gw-cli", False) in [(n["name"], n["up"]) for n in nodes]
    assert "down" in cli.ok("soc", "nodes", "-d", site.data_dir).stdout


def test_alarm_actions_from_the_data_directory_are_journaled_as_the_console_user(
    cli: Cli, site: Site
) -> None:
    alarm_id = site.alarms["gateway.down"]
    listed = cli.json("soc", "alarms", "-d", site.data_dir, "--severity", "major")
    assert [a["id"] for a in listed] == [alarm_id]
    table = cli.ok("soc", "alarms", "-d", site.data_dir).stdout
    assert "gateway gw1 does not answer" in table and "critical" in table

    assert cli.json("soc", "ack", str(alarm_id), "-d", site.data_dir)["acknowledged"] is True
    assert "acknowledged" in cli.ok("soc", "ack", str(alarm_id), "-d", site.data_dir).stdout
    assert cli.json("soc", "unack", str(alarm_id), "-d", site.data_dir)["acknowledged"] is False
    assert cli.json("soc", "assign", str(alarm_id), "netops", "-d", site.data_dir)["owner"] == (
        "netops"
    )
    cli.ok("soc", "note", str(alarm_id), "carrier ticket TT-1", "-d", site.data_dir)
    journal = _journal(site, alarm_id)
    actors = {actor for actor, _, _ in journal}
    assert len(actors) == 1 and actors.pop().startswith("system:cli:")
    assert [action for _, action, _ in journal][-1] == "note"
    assert journal[-1][2] == "carrier ticket TT-1"


def test_clearing_hides_an_alarm_unless_all_is_asked(cli: Cli, tmp_path: Path) -> None:
    fresh = _make_site(tmp_path)
    try:
        alarm_id = fresh.alarms["agent.rpo"]
        cleared = cli.json(
            "soc", "clear", str(alarm_id), "--reason", "backup ran", "-d", fresh.data_dir
        )
        assert cleared["severity"] == "clear"
        open_ids = [a["id"] for a in cli.json("soc", "alarms", "-d", fresh.data_dir)]
        all_ids = [a["id"] for a in cli.json("soc", "alarms", "-d", fresh.data_dir, "--all")]
        assert alarm_id not in open_ids and alarm_id in all_ids
        assert _journal(fresh, alarm_id)[-1][1:] == ("clear", "backup ran")
    finally:
        fresh.catalog.dispose()


def test_silence_mutes_matching_alarms(cli: Cli, tmp_path: Path) -> None:
    fresh = _make_site(tmp_path)
    try:
        doc = cli.json(
            "soc",
            "silence",
            "--match",
            "node=gw1",
            "--match",
            "alert_group=~gateway\\..*",
            "--duration",
            "2h",
            "--comment",
            "replacing the gateway's power supply",
            "-d",
            fresh.data_dir,
        )
        assert doc["muted_alarms"] == 1 and doc["state"] == "active"
        assert doc["matchers"][1] == {"field": "alert_group", "op": "=~", "value": "gateway\\..*"}
        alarms = {a["id"]: a for a in cli.json("soc", "alarms", "-d", fresh.data_dir)}
        assert alarms[fresh.alarms["gateway.down"]]["silence_id"] == doc["id"]
        assert alarms[fresh.alarms["agent.rpo"]]["silence_id"] is None
    finally:
        fresh.catalog.dispose()


SILENCE_COLOUR = ["--match", "colour=red", "--duration", "1h", "--comment", "x"]


def test_bad_input_gives_a_message_and_an_exit_code(cli: Cli, site: Site) -> None:
    cases: list[tuple[list[str], int, str]] = [
        (["soc", "status"], 2, "--server URL"),
        (["soc", "agents", "-d", str(site.data_dir), "--state", "happy"], 2, "unknown state"),
        (["soc", "agents", "-d", str(site.data_dir), "--cursor", "!!"], 2, "invalid cursor"),
        (["soc", "ack", "999999", "-d", str(site.data_dir)], 5, "no alarm 999999"),
        (["soc", "agent", str(uuid.uuid4()), "-d", str(site.data_dir)], 5, "no agent"),
        (["soc", "note", "1", "  ", "-d", str(site.data_dir)], 2, "must not be empty"),
        (["soc", "alarms", "-d", str(site.data_dir), "--severity", "awful"], 2, "unknown severity"),
        (["soc", "alarms", "-d", str(site.data_dir), "--watch", "1", "--json"], 2, "--watch"),
        (
            ["soc", "silence", "--match", "nodegw1", "--duration", "1h", "--comment", "x"],
            2,
            "invalid --match",
        ),
        (
            ["soc", "silence", "--match", "node=gw1", "--duration", "soon", "--comment", "x"],
            2,
            "invalid duration",
        ),
        (["soc", "silence", *SILENCE_COLOUR, "-d", str(site.data_dir)], 2, "matcher field"),
        (["soc", "status", "-d", str(site.data_dir / "nope")], 2, "not a server data directory"),
        (
            ["soc", "status", "-d", str(site.data_dir), "--server", "https://x.example"],
            2,
            "not both",
        ),
    ]
    for args, code, message in cases:
        result = cli(*args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.stderr, (args, result.stderr)


def _read_until(fd: int, proc: subprocess.Popen[bytes], enough: int) -> bytes:
    """What the process writes to `fd` until "alarms at" was drawn `enough` times (or 30 s)."""
    seen = b""
    deadline = time.monotonic() + 30
    while seen.count(b"alarms at") < enough and time.monotonic() < deadline:
        ready, _, _ = io_select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    return seen


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_watch_redraws_until_interrupted(site: Site, terminal: bool) -> None:
    if terminal:
        read_fd, write_fd = pty.openpty()
    else:
        read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [str(vaultwatch_exe()), "soc", "alarms", "--watch", "0.5", "-d", str(site.data_dir)],
        stdin=subprocess.DEVNULL,
        stdout=write_fd,
        stderr=subprocess.PIPE,
        # the terminal under test, whatever the one running the tests is (CI often has TERM=dumb)
        env=subprocess_env(TERM="xterm-256color", COLUMNS="200"),
    )
    os.close(write_fd)
    try:
        seen = _read_until(read_fd, proc, 2)
        assert seen.count(b"alarms at") >= 2, seen  # drawn, then drawn again
        assert b"gateway gw1 does not answer" in seen
        assert (b"\x1b[" in seen) == terminal  # a live redraw only on a terminal
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
    finally:
        os.close(read_fd)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- over HTTPS --------------------------------------------------------------------------------


@dataclass
class Served:
    """The site's server running over TLS, and keys for an operator and a customer."""

    site: Site
    url: str
    admin_key: str
    customer_key: str

    def args(self, key: str | None = None, *, ca: bool = True) -> list[str]:
        out = ["--server", self.url, "--api-key", key or self.admin_key]
        if ca:
            assert self.site.settings.ca_cert is not None
            out += ["--ca-cert", str(self.site.settings.ca_cert)]
        return out


@pytest.fixture(scope="module")
def served(site: Site) -> Iterator[Served]:
    cli = Cli()
    admin = cli.json(
        "admin",
        "apikey",
        "create",
        "--user",
        site.admin_email,
        "-d",
        site.data_dir,
        passphrase=None,
    )
    with site.catalog.session() as session:
        create_user(
            session,
            email="ops@acme.example",
            display_name="Acme ops",
            role=Role.CUSTOMER_VIEWER,
            password="correct horse battery",
            actor="system:test",
            tenant_id=site.fleet.acme,
        )
    customer = cli.json(
        "admin", "apikey", "create", "--user", "ops@acme.example", "-d", site.data_dir
    )
    with serve(site.settings, ("gateway", "web")) as port:
        yield Served(site, f"https://127.0.0.1:{port}", admin["api_key"], customer["api_key"])


def test_status_over_https_with_an_api_key(cli: Cli, served: Served) -> None:
    doc = cli.json("soc", "status", *served.args())
    assert doc["agents"] == len(EXPECTED)
    env = {
        "VAULTWATCH_SERVER": served.url,
        "VAULTWATCH_API_KEY": served.admin_key,
        "VAULTWATCH_CA_CERT": str(served.site.settings.ca_cert),
    }
    page = cli.json("soc", "agents", "--state", "maintenance", env=env)
    assert [a["hostname"] for a in page["items"]] == ["i-maintenance"]
    table = cli.ok("soc", "alarms", env=env).stdout
    assert "gateway gw1 does not answer" in table


def test_a_customer_key_sees_only_its_tenant_over_https(cli: Cli, served: Served) -> None:
    hosts = {
        a["hostname"]
        for a in cli.json("soc", "agents", "--limit", "500", *served.args(served.customer_key))[
            "items"
        ]
    }
    assert "z-globex" not in hosts and "a-protected" in hosts
    other = served.site.fleet.agents["z-globex"]
    result = cli("soc", "agent", str(other), *served.args(served.customer_key))
    assert result.exit_code == 5 and "not found" in result.stderr
    alarms = cli.json("soc", "alarms", *served.args(served.customer_key))
    assert [a["alert_group"] for a in alarms] == ["agent.rpo"]  # not the service's gateway alarm
    refused = cli("soc", "ack", str(alarms[0]["id"]), *served.args(served.customer_key))
    assert refused.exit_code == 4 and "403" in refused.stderr
    assert cli("soc", "nodes", *served.args(served.customer_key)).exit_code == 4


def test_alarm_actions_over_https_act_as_the_keys_user(cli: Cli, served: Served) -> None:
    alarm_id = served.site.alarms["agent.rpo"]
    assert cli.json("soc", "assign", str(alarm_id), "alice", *served.args())["owner"] == "alice"
    note = cli.json("soc", "note", str(alarm_id), "looking", *served.args())
    assert note["action"] == "note" and note["actor"].startswith("user:")
    assert _journal(served.site, alarm_id)[-1][0] == note["actor"]


def test_connection_problems_are_explained(cli: Cli, served: Served) -> None:
    no_ca = cli("soc", "status", *served.args(ca=False))
    assert no_ca.exit_code == 3
    assert "TLS verification" in no_ca.stderr and "--ca-cert" in no_ca.stderr
    bad_key = cli("soc", "status", *served.args("vwk_" + "A" * 43))
    assert bad_key.exit_code == 4 and "refused the API key" in bad_key.stderr
    with_no_key = cli("soc", "status", "--server", served.url)
    assert with_no_key.exit_code == 4 and "no API key" in with_no_key.stderr
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    refused = cli("soc", "status", "--server", f"https://127.0.0.1:{port}", "--api-key", "vwk_x")
    assert refused.exit_code == 3 and "refused" in refused.stderr


def test_a_job_reported_by_an_agent_shows_its_phase_and_resumed_bytes(
    cli: Cli, served: Served
) -> None:
    tenant = cli.json("admin", "tenant", "create", "Initech", "-d", served.site.data_dir)
    token = cli.json("admin", "token", "create", "--tenant", "Initech", "-d", served.site.data_dir)[
        "token"
    ]
    ca = str(served.site.settings.ca_cert)
    with httpx.Client(base_url=served.url, verify=ca, timeout=30) as http:
        enrolled = http.post(
            "/api/v1/enroll",
            json={
                "token": token,
                "hostname": "initech-db",
                "agent_version": "0.1.0",
                "platform": "linux-x86_64",
            },
        )
        assert enrolled.status_code == 201, enrolled.text
        credential = enrolled.json()["credential"]
        job_uid = uuid.uuid4()
        body: dict[str, Any] = {
            "kind": "backup",
            "state": "running",
            "bytes_done": 5000,
            "bytes_total": 20000,
            "files_done": 4,
            "files_total": 40,
            "rate": 1000.0,
            "eta_seconds": 15,
            "phase": "backing up",
            "current_file": "/var/lib/db/main.sqlite",
            "resumed_bytes": 3000,
        }
        answer = http.put(
            f"/api/v1/jobs/{job_uid}",
            json=body,
            headers={"Authorization": f"Bearer {credential}"},
        )
        assert answer.status_code == 201, answer.text
    running = cli.json("soc", "jobs", "--running", *served.args())
    (job,) = [j for j in running if j["id"] == str(job_uid)]
    assert job["tenant_id"] == tenant["id"] and job["hostname"] == "initech-db"
    assert (job["phase"], job["current_file"], job["resumed_bytes"]) == (
        "backing up",
        "/var/lib/db/main.sqlite",
        3000,
    )
    assert job["percent"] == 25.0
    table = cli.ok("soc", "jobs", "--running", *served.args()).stdout
    assert "backing up" in table and "2.93 KiB" in table and "25%" in table


def test_the_status_view_marks_a_suspended_tenant() -> None:
    from rich.console import Console

    from vaultwatch.cli.soc import STATES, summary_view

    counts = {s: 0 for s in STATES}
    doc = {
        "states": counts,
        "agents": 0,
        "running_jobs": 0,
        "tenants": [
            {"tenant_name": "Acme", "states": counts, "suspended": True},
            {"tenant_name": "Globex", "states": counts, "suspended": False},
        ],
    }
    console = Console(width=200, record=True)
    console.print(summary_view(doc))
    text = console.export_text()
    assert "Acme (suspended)" in text and "Globex (suspended)" not in text
