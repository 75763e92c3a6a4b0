"""The customer portal in real Chromium against a real server process over TLS.

Two tenants each enroll a server through the gateway API with their own
tokens. Acme's administrator signs in, sees only Acme's server, opens it and
watches a backup's progress bar move as the agent reports through
``PUT /api/v1/jobs/{uid}``, without reloading the page, then asks for a
restore of a snapshot, which the SOC sees as an alarm.
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.e2e.harness import Server, free_port, vw
from tests.e2e.test_console_browser import browser
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.models import BackupSet, Snapshot
from vaultwatch.server_config import load_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
__all__ = ["browser"]


@dataclass
class Portal:
    """A running server, Acme's admin, and each tenant's enrolled agent credential."""

    server: Server
    email: str
    password: str
    operator_key: str
    agents: dict[str, tuple[str, str]]  # hostname -> (agent id, credential)

    def call(self, method: str, path: str, credential: str, body: dict[str, Any]) -> Any:
        ctx = ssl.create_default_context(cafile=str(self.server.ca))
        answer = httpx.request(
            method,
            self.server.url + "/api/v1" + path,
            json=body,
            headers={"Authorization": f"Bearer {credential}"},
            verify=ctx,
            timeout=10,
        )
        assert answer.is_success, answer.text
        return answer.json()

    def report(self, host: str, job: uuid.UUID, **fields: Any) -> None:
        body = {"kind": "backup", "backup_set": "shares", "state": "running", **fields}
        self.call("PUT", f"/jobs/{job}", self.agents[host][1], body)


def _enroll(server: Server, token: str, hostname: str) -> tuple[str, str]:
    ctx = ssl.create_default_context(cafile=str(server.ca))
    answer = httpx.post(
        server.url + "/api/v1/enroll",
        json={"token": token, "hostname": hostname, "agent_version": "1.0", "platform": "linux"},
        verify=ctx,
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    doc = answer.json()
    return str(doc["agent_id"]), str(doc["credential"])


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Portal]:
    data = tmp_path / "server"
    port = free_port()
    d = ("--data-dir", str(data))
    vw("server", "init", *d, "--port", str(port), "--json")
    tokens = {}
    for tenant in ("Acme", "Globex"):
        vw("admin", "tenant", "create", tenant, *d, "--json")
        tokens[tenant] = json.loads(vw("admin", "token", "create", *d, "--tenant", tenant, "--json"))["token"]  # fmt: skip
    user = json.loads(vw("admin", "user", "create", *d, "--email", "it@acme.example", "--role", "customer_admin", "--tenant", "Acme", "--json"))  # fmt: skip
    vw("admin", "user", "create", *d, "--email", "op@soc.example", "--role", "soc_operator", "--json")  # fmt: skip
    key = json.loads(vw("admin", "apikey", "create", *d, "--user", "op@soc.example", "--name", "t", "--json"))  # fmt: skip
    server = Server(data, port, data / "tls" / "ca.pem", tmp_path / "up.jsonl", tmp_path / "log")
    server.start()
    try:
        agents = {
            "files01.acme.lan": _enroll(server, tokens["Acme"], "files01.acme.lan"),
            "db9.globex.lan": _enroll(server, tokens["Globex"], "db9.globex.lan"),
        }
        portal = Portal(server, user["email"], user["password"], key["api_key"], agents)
        for host, (_, credential) in agents.items():
            beat = {
                "agent_version": "1.0",
                "hostname": host,
                "platform": "linux",
                "gateways": {server.url: True},
                "backup_sets": [
                    {
                        "name": "shares",
                        "paths": ["/srv/shares"],
                        "mode": "continuous",
                        "rpo_seconds": 3600,
                    }
                ],
            }
            portal.call("POST", "/heartbeat", credential, beat)
        yield portal
    finally:
        server.kill()


def test_a_customer_watches_a_backup_move_and_asks_for_a_restore(
    running: Portal, browser: Any
) -> None:
    from playwright.sync_api import expect

    host = "files01.acme.lan"
    now = datetime.now(UTC)
    # A snapshot in the catalog (a real one needs a real backup: other tests run those).
    catalog = Catalog(load_settings(running.server.data_dir).catalog_url)
    try:
        with catalog.session() as session:
            agent_id = uuid.UUID(running.agents[host][0])
            backup_set = session.scalars(
                select(BackupSet).where(BackupSet.agent_id == agent_id)
            ).one()
            session.add(
                Snapshot(
                    tenant_id=backup_set.tenant_id,
                    repository_id=backup_set.repository_id,
                    backup_set_id=backup_set.id,
                    agent_id=agent_id,
                    vault_snapshot_id="ab" * 32,
                    hostname=host,
                    paths=["/srv/shares"],
                    started_at=now - timedelta(minutes=6),
                    finished_at=now - timedelta(minutes=5),
                    files_total=1200,
                    bytes_total=5_000_000,
                    bytes_added=400_000,
                )
            )
    finally:
        catalog.dispose()
    job = uuid.uuid4()
    running.report(host, job, bytes_done=100, bytes_total=1000, files_done=1, files_total=10,
                   phase="upload", current_file="/srv/shares/a.doc")  # fmt: skip

    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    base = running.server.url
    page.goto(base + "/login")
    page.get_by_label("Email").fill(running.email)
    page.get_by_label("Password").fill(running.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/portal")
    expect(page.locator("table.servers")).to_contain_text(host)
    expect(page.locator("table.servers")).not_to_contain_text("db9.globex.lan")
    expect(page.locator("tr.server")).to_have_count(1)

    page.get_by_role("link", name=host).first.click()
    expect(page.locator("h1")).to_have_text(host)
    expect(page.locator("#live-text")).to_have_text("Live", timeout=10_000)
    bar = page.locator(f"#job-{job} progress")
    expect(bar).to_have_attribute("value", "10.0")
    page.evaluate("window.__same_page = true")

    sent = time.monotonic()
    running.report(host, job, bytes_done=650, bytes_total=1000, files_done=6, files_total=10,
                   phase="upload", current_file="/srv/shares/b.xls", rate=5000.0, eta_seconds=7,
                   resumed_bytes=100)  # fmt: skip
    expect(bar).to_have_attribute("value", "65.0", timeout=5_000)
    print(f"progress on screen {time.monotonic() - sent:.2f} s after the report")
    card = page.locator(f"#job-{job}")
    expect(card).to_contain_text("/srv/shares/b.xls")
    expect(card).to_contain_text("650 B of 1000 B")
    running.report(host, job, state="succeeded", bytes_done=1000, bytes_total=1000)
    expect(card).to_contain_text("succeeded", timeout=5_000)
    assert page.evaluate("window.__same_page") is True, "the page was reloaded"

    # Ask for a restore of the snapshot.
    page.get_by_text("Ask for a restore").first.click()
    page.get_by_label(f"Restore to (path on {host})").first.fill("/srv/restore")
    page.get_by_label("What do you need back?").first.fill("finance share")
    page.get_by_role("button", name="Send the request to the SOC").first.click()
    expect(page.locator("#restore-requested")).to_contain_text("sent to our operations center")
    ctx = ssl.create_default_context(cafile=str(running.server.ca))
    alarms = httpx.get(
        base + "/api/v1/alarms",
        params={"alert_group": "restore.requested"},
        headers={"Authorization": f"Bearer {running.operator_key}"},
        verify=ctx,
        timeout=10,
    )
    assert alarms.is_success, alarms.text
    items = alarms.json()["items"]
    assert len(items) == 1 and "/srv/restore" in items[0]["summary"]
    assert items[0]["severity"] == "indeterminate" and running.email in items[0]["summary"]
    assert errors == []
