"""The console's operations, incident and infrastructure pages in real Chromium, against a real server.

An agent enrolled over the gateway API reports a running backup with its
own credential (``PUT /api/v1/jobs/{uid}``) and the operator watches the
bar move on the operations page without reloading; an incident opened
through the API is acknowledged with its button; the infrastructure page
shows the server's own node with its history charts, drawn from the
health samples the server records every second here.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import harness
from tests.e2e.harness import Server, free_port, vw, wait_for
from tests.e2e.test_console_browser import browser

__all__ = ["browser"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


class ServerRun(Server):
    """``vaultwatch server run`` itself: every role and the background duties (node health)."""

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    *harness.VW,
                    "server",
                    "run",
                    "--data-dir",
                    str(self.data_dir),
                    "--log-level",
                    "warning",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        harness._STARTED.append(self.proc)
        ctx = ssl.create_default_context(cafile=str(self.ca))

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                return httpx.get(self.url + "/healthz", verify=ctx, timeout=2).is_success
            except httpx.HTTPError:
                return False

        wait_for("the server to answer", healthy, 60)


@dataclass
class Running:
    """A running server with an operator, an API key and an enrolled agent's credential."""

    server: Server
    email: str
    password: str
    api_key: str
    agent_credential: str
    hostname: str

    def http(self, method: str, path: str, key: str, **kw: Any) -> httpx.Response:
        ctx = ssl.create_default_context(cafile=str(self.server.ca))
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.request(
            method, self.server.url + path, headers=headers, verify=ctx, timeout=10, **kw
        )

    def report(self, job: uuid.UUID, done: int, **fields: Any) -> None:
        body = {
            "kind": "backup",
            "state": "running",
            "backup_set": "home",
            "bytes_done": done,
            "bytes_total": 1000 * 1024**2,
            "files_done": done // (10 * 1024**2),
            "files_total": 100,
            "phase": "uploading",
            **fields,
        }
        answer = self.http("PUT", f"/api/v1/jobs/{job}", self.agent_credential, json=body)
        assert answer.status_code in (200, 201), answer.text


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    data_dir = tmp_path / "server"
    port = free_port()
    vw("server", "init", "--data-dir", str(data_dir), "--port", str(port), "--json")
    with open(data_dir / "vaultwatch.toml", "a", encoding="utf-8") as settings:
        settings.write("\n[monitors]\nnode_report_interval = 1.0\n")
    user = json.loads(vw("admin", "user", "create", "--data-dir", str(data_dir), "--email", "op@soc.example", "--role", "soc_operator", "--json"))  # fmt: skip
    key = json.loads(vw("admin", "apikey", "create", "--data-dir", str(data_dir), "--user", "op@soc.example", "--name", "sender", "--json"))  # fmt: skip
    vw("admin", "tenant", "create", "acme", "--data-dir", str(data_dir), "--json")
    token = json.loads(vw("admin", "token", "create", "--tenant", "acme", "--data-dir", str(data_dir), "--json"))["token"]  # fmt: skip
    server = ServerRun(
        data_dir,
        port,
        data_dir / "tls" / "ca.pem",
        tmp_path / "uploads.jsonl",
        tmp_path / "server.log",
    )
    server.start()
    try:
        ctx = ssl.create_default_context(cafile=str(server.ca))
        hostname = "files01.acme.lan"
        enrolled = httpx.post(
            server.url + "/api/v1/enroll",
            json={
                "token": token,
                "hostname": hostname,
                "agent_version": "0.1.0",
                "platform": "linux-x86_64",
            },
            verify=ctx,
            timeout=10,
        )
        assert enrolled.status_code == 201, enrolled.text
        credential = enrolled.json()["credential"]
        beat = httpx.post(
            server.url + "/api/v1/heartbeat",
            json={
                "agent_version": "0.1.0",
                "hostname": hostname,
                "platform": "linux-x86_64",
                "free_disk_bytes": 50 * 1024**3,
                "gateways": {server.url: True},
                "backup_sets": [
                    {"name": "home", "paths": ["/home"], "mode": "continuous", "rpo_seconds": 3600}
                ],
            },
            headers={"Authorization": f"Bearer {credential}"},
            verify=ctx,
            timeout=10,
        )
        assert beat.status_code == 200, beat.text
        yield Running(server, user["email"], user["password"], key["api_key"], credential, hostname)
    finally:
        server.kill()


def _progress(page: Any, job: uuid.UUID) -> float:
    value = page.locator(f"#job-{job} progress.job-bar").get_attribute("value")
    return float(value) if value else -1.0


def test_operations_incident_and_infrastructure_pages(running: Running, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    base = running.server.url
    page.goto(base + "/console/operations")
    page.get_by_label("Email").fill(running.email)
    page.get_by_label("Password").fill(running.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/console/operations")
    expect(page.locator("#live-text")).to_have_text("Live", timeout=10_000)
    expect(page.locator("#ops-empty")).to_be_visible()

    # A job the agent reports appears, and its bar moves with each report, without a reload.
    job = uuid.uuid4()
    running.report(
        job, 100 * 1024**2, current_file="/home/ada/thesis.pdf", rate=8 * 1024**2, eta_seconds=110
    )
    row = page.locator(f"#job-{job}")
    expect(row).to_be_visible(timeout=5_000)
    expect(row).to_contain_text(running.hostname)
    expect(row).to_contain_text("/home/ada/thesis.pdf")
    assert _progress(page, job) == 10.0
    page.evaluate("window.__stillHere = true")
    moved_at = time.monotonic()
    running.report(
        job, 600 * 1024**2, current_file="/home/ada/photos/001.jpg", resumed_bytes=1024**2
    )
    expect(row.locator(".pct")).to_have_text("60.0 %", timeout=5_000)
    print(f"bar moved on screen {time.monotonic() - moved_at:.2f} s after the report")
    assert _progress(page, job) == 60.0
    expect(row).to_contain_text("001.jpg")
    assert page.evaluate("window.__stillHere") is True  # the same page: no reload
    expect(page.locator("#ops-count")).to_have_text("1")
    running.report(job, 1000 * 1024**2, state="succeeded")
    expect(row).to_have_count(0, timeout=5_000)
    expect(page.locator("#ops-empty")).to_be_visible()

    # An incident opened through the API is acknowledged with its button.
    opened = running.http(
        "POST",
        "/api/v1/incidents",
        running.api_key,
        json={"title": "gateway gw1 does not answer", "severity": "critical"},
    )
    assert opened.status_code == 201, opened.text
    incident = opened.json()["id"]
    page.get_by_role("link", name="Incidents").click()
    page.get_by_role("link", name="gateway gw1 does not answer").click()
    expect(page).to_have_url(base + f"/console/incidents/{incident}")
    expect(page.locator("#incident-state")).to_have_text("triggered")
    page.get_by_label("Acknowledgement note (optional)").fill("looking at gw1")
    page.get_by_role("button", name="Acknowledge", exact=True).click()
    expect(page.locator("#incident-state")).to_have_text("acknowledged")
    expect(page.locator("#acked-by")).to_contain_text("user:")
    expect(page.locator("ol.timeline")).to_contain_text("looking at gw1")
    detail = running.http("GET", f"/api/v1/incidents/{incident}", running.api_key).json()
    assert detail["state"] == "acknowledged"

    # The infrastructure page shows this server's node, up, with charts of its samples.
    time.sleep(2.5)  # a few more health samples (one a second here)
    page.get_by_role("link", name="Infrastructure").click()
    card = page.locator("section.node-card").first
    expect(card).to_be_visible()
    expect(card.locator(".pill.up")).to_have_text("up")
    expect(card.locator("svg.chart")).to_have_count(3)
    expect(card.locator("svg.chart.disk polyline.line")).to_have_count(1)
    expect(card.locator("svg.chart.db polyline.line")).to_have_count(1)
    points = card.locator("svg.chart.disk polyline.line").get_attribute("points") or ""
    assert len(points.split()) >= 2
    assert errors == []
    context.close()
