"""A gateway outage as the operations center lives it, with real server processes and real mail.

Two ``vaultwatch server run`` processes share one data directory and catalog:
``soc`` (web and worker: the API, the probes, the monitors, escalation and
the outbox) and ``gw1`` (the gateway an agent sends its heartbeats to). A
real SMTP server (aiosmtpd) receives every page and customer update.

Killing gw1 must raise ``gateway.down`` as the root cause, make the silent
agent's alarm its symptom, open an incident that pages level 0 and then
level 1 at its timeout, and, once an operator approves it, send the affected
customer its first notice. Restarting gw1 must clear everything, resolve the
incident by itself and tell everyone who was paged.
"""

from __future__ import annotations

import contextlib
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from tests.e2e.harness import free_port, kill_leftovers
from vaultwatch.catalog import Catalog, Role
from vaultwatch.catalog.enrollment import create_enrollment_token
from vaultwatch.catalog.soc_models import Probe, TopologyEdge
from vaultwatch.catalog.tenants import create_tenant
from vaultwatch.catalog.users import create_user
from vaultwatch.server import init_server
from vaultwatch.server_config import ServerSettings, write_settings
from vaultwatch.soc import escalation
from vaultwatch.soc.apikeys import create_api_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ACTOR = "system:test"
LEVEL0_TIMEOUT = 6
VW = [sys.executable, "-c", "import sys; from vaultwatch.cli.main import main; sys.argv[0] = 'vaultwatch'; main()"]  # fmt: skip


@dataclass
class Mailbox:
    """What the SMTP server received, with the time each message arrived."""

    messages: list[tuple[float, list[str], Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(
                (time.monotonic(), list(envelope.rcpt_tos), message_from_bytes(envelope.content))
            )
        return "250 OK"

    def to(self, address: str) -> list[tuple[float, Message]]:
        with self.lock:
            return [(at, m) for at, rcpt, m in self.messages if address in rcpt]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


class Node:
    """One ``vaultwatch server run`` process serving some roles under a node name."""

    def __init__(self, settings: ServerSettings, port: int, roles: str, name: str, log: Path):
        self.settings, self.port, self.roles, self.name, self.log = settings, port, roles, name, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*VW, "server", "run", "--data-dir", str(self.settings.data_dir), "--port",
                 str(self.port), "--roles", self.roles, "--node-name", self.name,
                 "--workers", "1", "--log-level", "warning"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        ca = ssl.create_default_context(cafile=str(self.settings.ca_cert))
        wait("the node to answer", lambda: _healthy(self.url, ca), 60)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None


def _healthy(url: str, ca: ssl.SSLContext) -> bool:
    try:
        return httpx.get(f"{url}/healthz", verify=ca, timeout=2).is_success
    except httpx.HTTPError:
        return False


def wait(what: str, predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class Heartbeats(threading.Thread):
    """An agent's heartbeats to gw1 every second; failures are expected while gw1 is down."""

    def __init__(self, url: str, credential: str, ca: str) -> None:  # ca: the CA file
        super().__init__(daemon=True)
        self.url, self.credential = url, credential
        self.ctx = ssl.create_default_context(cafile=ca)
        self.stopped = threading.Event()

    def run(self) -> None:
        body = {"agent_version": "e2e", "hostname": "files1", "platform": "Linux e2e"}
        headers = {"Authorization": f"Bearer {self.credential}"}
        while not self.stopped.wait(1.0):
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    f"{self.url}/api/v1/heartbeat",
                    json=body,
                    headers=headers,
                    verify=self.ctx,
                    timeout=2,
                )


def _prepare(root: Path, smtp_port: int) -> tuple[ServerSettings, str, str]:
    """The shared data directory, a tenant with a customer admin, an operator key, a token."""
    settings = init_server(root / "data").settings
    settings = settings.with_overrides(
        extra={
            "monitors": {"interval": 1, "probe_interval": 1, "heartbeat_missed_after": 4},
            "soc": {
                "smtp": {"host": "127.0.0.1", "port": smtp_port, "from_address": "soc@vw.example"}
            },
        }
    )
    write_settings(settings)
    catalog = Catalog(settings.catalog_url)
    key = settings.token_key()
    try:
        with catalog.session() as session:
            tenant = create_tenant(session, "Acme", actor=ACTOR)
            create_user(
                session,
                email="it@acme.example",
                display_name="Acme IT",
                role=Role.CUSTOMER_ADMIN,
                password="acme password 1",
                actor=ACTOR,
                tenant_id=tenant.id,
            )
            operator = create_user(
                session,
                email="op@vw.example",
                display_name="Operator",
                role=Role.SOC_OPERATOR,
                password="operator password",
                actor=ACTOR,
            )
            api_key = create_api_key(session, operator, "e2e", key=key, actor=ACTOR).plaintext
            escalation.create_policy(
                session,
                name=escalation.DEFAULT_POLICY,
                levels=[
                    {
                        "targets": [{"kind": "email", "address": "oncall@vw.example"}],
                        "timeout_seconds": LEVEL0_TIMEOUT,
                    },
                    {
                        "targets": [{"kind": "email", "address": "manager@vw.example"}],
                        "timeout_seconds": 600,
                    },
                ],
                repeat=0,
                ack_timeout_seconds=3600,
                customer_update_interval_seconds=3600,
            )
            token = create_enrollment_token(session, tenant.id, key=key, created_by=ACTOR).plaintext
    finally:
        catalog.dispose()
    return settings, api_key, token


def test_a_gateway_outage_from_root_alarm_to_resolution_notice(
    tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    box, smtp_port = mailbox
    settings, api_key, token = _prepare(tmp_path, smtp_port)
    ca = ssl.create_default_context(cafile=str(settings.ca_cert))
    soc = Node(settings, free_port(), "web,worker", "soc", tmp_path / "soc.log")
    gw1 = Node(settings, free_port(), "gateway", "gw1", tmp_path / "gw1.log")
    catalog = Catalog(settings.catalog_url)
    api = httpx.Client(
        base_url=soc.url, verify=ca, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
    )
    beats: Heartbeats | None = None
    try:
        soc.start()
        gw1.start()
        enrolled = httpx.post(
            f"{gw1.url}/api/v1/enroll",
            json={"token": token, "hostname": "files1", "agent_version": "e2e", "platform": "x"},
            verify=ca,
        ).json()
        agent_id = enrolled["agent_id"]
        beats = Heartbeats(gw1.url, enrolled["credential"], str(settings.ca_cert))
        beats.start()

        def agent_behind_gw1() -> bool:
            with catalog.session() as session:
                edge = session.scalar(
                    select(TopologyEdge).where(TopologyEdge.child == f"agent:{agent_id}")
                )
                probe = session.scalar(select(Probe).where(Probe.name == "gateway:gw1"))
            return (
                edge is not None and edge.parent == "gateway:gw1" and bool(probe and probe.last_ok)
            )

        wait("the agent behind gw1 and gw1's probe passing", agent_behind_gw1, 60)

        def open_alarm(group: str) -> dict[str, Any] | None:
            items = api.get("/api/v1/alarms", params={"alert_group": group}).json()["items"]
            return items[0] if items else None

        assert open_alarm("gateway.down") is None
        killed = time.monotonic()
        gw1.kill()

        root = wait("the gateway.down alarm", lambda: open_alarm("gateway.down"), 30)
        detected = time.monotonic() - killed
        assert root["entity"] == "gateway:gw1" and root["severity"] == "major"
        assert root["alarm_class"] == "network"
        symptom = wait(
            "the agent's heartbeat alarm as a symptom",
            lambda: (a := open_alarm("agent.heartbeat")) and a["suppressed_by"] == root["id"] and a,
            30,
        )
        assert symptom["agent_id"] == agent_id and symptom["incident_id"] is None

        incident = wait(
            "an incident for the outage",
            lambda: next(iter(api.get("/api/v1/incidents").json()["items"]), None),
            30,
        )
        everything = api.get("/api/v1/alarms", params={"include_cleared": "true"}).json()["items"]
        assert incident["root_alarm_id"] == root["id"], (incident, everything)
        first_page = wait("the level 0 page", lambda: box.to("oncall@vw.example"), 30)[0][0]
        second_page = wait("the level 1 page", lambda: box.to("manager@vw.example"), 30)[0][0]
        assert LEVEL0_TIMEOUT - 1 <= second_page - first_page <= LEVEL0_TIMEOUT + 6

        drafts = api.get(f"/api/v1/incidents/{incident['id']}/updates").json()
        (notice,) = [u for u in drafts if u["kind"] == "first_notice"]
        published = api.post(f"/api/v1/incidents/{incident['id']}/updates/{notice['id']}/publish")
        assert published.status_code == 200, published.text
        (_, customer_mail), *_ = wait(
            "the customer's first notice", lambda: box.to("it@acme.example"), 30
        )
        assert str(incident["id"]) in str(customer_mail["Subject"])

        gw1.start()
        wait("the gateway.down alarm to clear", lambda: open_alarm("gateway.down") is None, 30)
        wait("the heartbeat alarm to clear", lambda: open_alarm("agent.heartbeat") is None, 30)
        resolved = wait(
            "the incident to resolve itself",
            lambda: (
                (i := api.get(f"/api/v1/incidents/{incident['id']}").json())["state"] == "resolved"
                and i
            ),
            30,
        )
        assert resolved["resolved_by"] == "system:incidents"
        for address in ("oncall@vw.example", "manager@vw.example"):
            wait(
                f"the resolution notice to {address}",
                lambda a=address: any(
                    "resolved" in str(m["Subject"]).lower() for _, m in box.to(a)
                ),
                30,
            )
        timeline = [
            e["kind"] for e in api.get(f"/api/v1/incidents/{incident['id']}/timeline").json()
        ]
        assert timeline.index("triggered") < timeline.index("resolved")
        assert timeline.count("paged") >= 2
        print(f"gateway.down raised {detected:.2f} s after the kill")
    finally:
        if beats is not None:
            beats.stopped.set()
        api.close()
        gw1.stop()
        soc.stop()
        catalog.dispose()
        kill_leftovers()
