"""The Alertmanager webhook receiver over real HTTPS, fed by Debian's real Alertmanager and amtool.

The server is the real app (`web` role, TLS with its own CA) on loopback, on
each catalog engine. Alertmanager delivers to it with a staff API key read
from a credentials file, exactly as an operator configures it in the field.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.catalog.conftest import ENGINES
from tests.gateway.harness import postgres_database, serve
from tests.soc.ingest.test_alertmanager import alert, payload
from vaultwatch.catalog import Catalog, Role
from vaultwatch.catalog.soc_models import Alarm, EventSource, Severity
from vaultwatch.catalog.tenants import create_tenant
from vaultwatch.catalog.users import create_user
from vaultwatch.protocol import API_PREFIX
from vaultwatch.server import init_server
from vaultwatch.soc.apikeys import create_api_key
from vaultwatch.soc.ingest.alertmanager import MAX_ALERTS, STARTS_AT

ACTOR = "user:00000000-0000-0000-0000-000000000001"
PATH = f"{API_PREFIX}/ingest/alertmanager"
PASSWORD = "correct horse battery staple"


@dataclass
class SocServer:
    """A running `web` server and the keys made for it."""

    url: str
    catalog: Catalog
    ca_cert: Path
    ca_context: ssl.SSLContext
    staff_key: str
    customer_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, verify=self.ca_context, headers=headers, timeout=30)

    def alarm(self, identifier: str) -> Alarm | None:
        with self.catalog.session() as session:
            alarm = session.scalars(select(Alarm).where(Alarm.identifier == identifier)).first()
            if alarm is not None:
                session.expunge(alarm)
            return alarm

    def alarms_of_group(self, group: str) -> list[Alarm]:
        with self.catalog.session() as session:
            alarms = list(session.scalars(select(Alarm).where(Alarm.alert_group == group)))
            for alarm in alarms:
                session.expunge(alarm)
            return alarms


def _keys(catalog: Catalog, token_key: bytes) -> tuple[str, str]:
    """A SOC operator's key and a customer administrator's key."""
    suffix = uuid.uuid4().hex[:8]
    with catalog.session() as session:
        operator = create_user(
            session,
            email=f"alertmanager-{suffix}@soc.example",
            display_name="Alertmanager",
            role=Role.SOC_OPERATOR,
            password=PASSWORD,
            actor=ACTOR,
        )
        tenant = create_tenant(session, f"acme-{suffix}", actor=ACTOR)
        customer = create_user(
            session,
            email=f"admin-{suffix}@acme.example",
            display_name="Acme admin",
            role=Role.CUSTOMER_ADMIN,
            password=PASSWORD,
            actor=ACTOR,
            tenant_id=tenant.id,
        )
        session.flush()
        staff = create_api_key(session, operator, "alertmanager", key=token_key, actor=ACTOR)
        other = create_api_key(session, customer, "scripts", key=token_key, actor=ACTOR)
    return staff.plaintext, other.plaintext


@pytest.fixture(scope="module", params=ENGINES)
def soc_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SocServer]:
    """The `web` role over TLS on loopback, with its catalog on each engine."""
    data_dir = tmp_path_factory.mktemp(f"soc-{request.param}") / "data"
    with _catalog_url(request) as url:
        settings = init_server(data_dir, catalog_url=url).settings
        assert settings.ca_cert is not None
        catalog = Catalog(settings.catalog_url)
        try:
            staff_key, customer_key = _keys(catalog, settings.token_key())
            with serve(settings, roles=("web",)) as port:
                yield SocServer(
                    url=f"https://127.0.0.1:{port}",
                    catalog=catalog,
                    ca_cert=settings.ca_cert,
                    ca_context=ssl.create_default_context(cafile=str(settings.ca_cert)),
                    staff_key=staff_key,
                    customer_key=customer_key,
                )
        finally:
            catalog.dispose()


@contextmanager
def _catalog_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (SQLite in the data directory) or a fresh PostgreSQL database, dropped afterwards."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_database(request.getfixturevalue("postgres_server_url")) as url:
        yield url.render_as_string(hide_password=False)


def _wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


# -- direct HTTP -------------------------------------------------------------------------------


def _unique_alert(**changes: Any) -> dict[str, Any]:
    """An alert with a fingerprint of its own, so tests on one server never share an alarm."""
    return alert(fingerprint=uuid.uuid4().hex[:16], **changes)


def test_notification_raises_alarm_and_retry_counts_once(soc_server: SocServer) -> None:
    doc = payload(_unique_alert())
    identifier = f"alertmanager:{doc['alerts'][0]['fingerprint']}"
    with soc_server.client(soc_server.staff_key) as client:
        first = client.post(PATH, json=doc)
        retry = client.post(PATH, json=copy.deepcopy(doc))
    assert first.status_code == 202, first.text
    assert retry.status_code == 202, retry.text
    [raised] = first.json()["alarms"]
    assert first.json()["accepted"] == 1
    assert (raised["identifier"], raised["tally"], raised["created"]) == (identifier, 1, True)
    assert retry.json()["alarms"][0]["tally"] == 1
    alarm = soc_server.alarm(identifier)
    assert alarm is not None
    assert alarm.tally == 1
    assert (alarm.node, alarm.alert_group, alarm.alert_key) == (
        "gw1",
        "alertmanager.DiskFull",
        "/dev/sda1",
    )
    assert alarm.severity == Severity.CRITICAL
    assert alarm.source == EventSource.ALERTMANAGER
    assert alarm.tenant_id is None
    assert alarm.runbook == "https://runbooks.example/disk-full"


def test_tenant_label_does_not_give_the_alarm_to_a_tenant(soc_server: SocServer) -> None:
    labels = {"alertname": "Spoof", "instance": "x", "tenant": str(uuid.uuid4())}
    doc = payload(_unique_alert(labels=labels))
    with soc_server.client(soc_server.staff_key) as client:
        response = client.post(PATH, json=doc)
    assert response.status_code == 202, response.text
    alarm = soc_server.alarm(response.json()["alarms"][0]["identifier"])
    assert alarm is not None and alarm.tenant_id is None


@pytest.mark.parametrize(
    ("key", "status"),
    [(None, 401), ("vwk_not-a-real-key", 401), ("customer", 403)],
    ids=["missing", "invalid", "customer"],
)
def test_only_staff_keys_may_post(soc_server: SocServer, key: str | None, status: int) -> None:
    doc = payload(_unique_alert())
    credential = soc_server.customer_key if key == "customer" else key
    with soc_server.client(credential) as client:
        response = client.post(PATH, json=doc)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert soc_server.alarm(f"alertmanager:{doc['alerts'][0]['fingerprint']}") is None


@pytest.mark.parametrize(
    ("body", "status", "slug", "words"),
    [
        (payload(version="3"), 422, "unsupported-webhook-version", "version '3' is not supported"),
        (payload(*[alert()] * (MAX_ALERTS + 1)), 413, "too-many-alerts", f"at most {MAX_ALERTS}"),
        (payload(status="pending"), 422, "invalid-request", "body.status"),
        ({"version": "4", "alerts": [{"labels": {}}]}, 422, "invalid-request", "startsAt"),
        ("{not json", 422, "invalid-request", "JSON"),
    ],
    ids=["version", "too-many", "bad-status", "missing-fields", "not-json"],
)
def test_bad_payloads_are_clear_problems(
    soc_server: SocServer, body: Any, status: int, slug: str, words: str
) -> None:
    before = _alarm_count(soc_server)
    with soc_server.client(soc_server.staff_key) as client:
        if isinstance(body, str):
            response = client.post(PATH, content=body, headers={"Content-Type": "application/json"})
        else:
            response = client.post(PATH, json=body)
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["type"] == f"urn:vaultwatch:problem:{slug}"
    assert words in problem["detail"]
    assert _alarm_count(soc_server) == before  # nothing half-stored


def _alarm_count(server: SocServer) -> int:
    with server.catalog.session() as session:
        return len(list(session.scalars(select(Alarm.id))))


# -- Debian's Alertmanager and amtool --------------------------------------------------------


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = (
            f"{name} is not installed (scripts/test-services.sh installs prometheus-alertmanager)"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningAlertmanager:
    """A real Alertmanager process and amtool pointed at it."""

    url: str
    log: Path

    def amtool(self, *args: str) -> str:
        result = subprocess.run(
            [_program("amtool"), f"--alertmanager.url={self.url}", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, f"amtool {args} failed: {result.stderr}"
        return result.stdout

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            alerts: list[dict[str, Any]] = json.load(response)
        return alerts

    def webhook_deliveries(self) -> float:
        """Notifications Alertmanager delivered through webhook receivers (its own counter)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("alertmanager_notifications_total{") and '"webhook"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def failed_deliveries(self) -> float:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("alertmanager_notifications_failed_total{") and '"webhook"' in line
        )


def _config(server: SocServer, credentials: Path, repeat: str) -> str:
    return f"""
route:
  receiver: vaultwatch
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: {repeat}
receivers:
  - name: vaultwatch
    webhook_configs:
      - url: {server.url}{PATH}
        send_resolved: true
        max_alerts: {MAX_ALERTS}
        http_config:
          authorization:
            type: Bearer
            credentials_file: {credentials}
          tls_config:
            ca_file: {server.ca_cert}
"""


@pytest.fixture
def alertmanager(soc_server: SocServer, tmp_path: Path) -> Iterator[RunningAlertmanager]:
    """Debian's prometheus-alertmanager delivering to the server, clustering off."""
    binary = _program("prometheus-alertmanager")
    credentials = tmp_path / "vaultwatch.key"
    credentials.write_text(soc_server.staff_key + "\n")
    credentials.chmod(0o600)
    config = tmp_path / "alertmanager.yml"
    config.write_text(_config(soc_server, credentials, repeat="1s"))
    check = subprocess.run(
        [_program("amtool"), "check-config", str(config)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    port = _free_port()
    log = tmp_path / "alertmanager.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = RunningAlertmanager(url=f"http://127.0.0.1:{port}", log=log)
    try:
        _wait_for(lambda: _ready(running.url, process), "Alertmanager to be ready", 20)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        pytest.fail(f"Alertmanager exited with {process.returncode}")
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_alertmanager_raises_repeats_once_and_resolves(
    soc_server: SocServer, alertmanager: RunningAlertmanager
) -> None:
    mountpoint = f"/srv/{uuid.uuid4().hex[:8]}"
    labels = [
        "alertname=DiskFull",
        "instance=gw1:9100",
        "severity=critical",
        "device=/dev/sdb1",
        f"mountpoint={mountpoint}",
    ]
    alertmanager.amtool(
        "alert",
        "add",
        *labels,
        f"--annotation=summary={mountpoint} on gw1 is 97% full",
        "--annotation=runbook_url=https://runbooks.example/disk-full",
    )
    [sent] = [a for a in alertmanager.alerts() if a["labels"].get("mountpoint") == mountpoint]
    identifier = f"alertmanager:{sent['fingerprint']}"

    alarm = _wait_for(lambda: soc_server.alarm(identifier), "the alarm from Alertmanager")
    assert alarm.node == "gw1"
    assert alarm.alert_group == "alertmanager.DiskFull"
    assert alarm.alert_key == "/dev/sdb1"
    assert alarm.severity == Severity.CRITICAL
    assert alarm.summary == f"{mountpoint} on gw1 is 97% full"
    assert alarm.source == EventSource.ALERTMANAGER
    assert alarm.attributes["mountpoint"] == mountpoint
    assert alarm.attributes[STARTS_AT].startswith(sent["startsAt"][:19])

    # repeat_interval is 1s: Alertmanager re-sends the firing alert every group_interval
    delivered = alertmanager.webhook_deliveries()
    _wait_for(
        lambda: alertmanager.webhook_deliveries() >= delivered + 3,
        "three more deliveries of the firing alert",
    )
    alarm = soc_server.alarm(identifier)
    assert alarm is not None
    assert alarm.tally == 1, "a re-sent notification was counted as a new occurrence"
    assert alarm.cleared_at is None

    end = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    alertmanager.amtool("alert", "add", *labels, f"--end={end}")
    cleared = _wait_for(
        lambda: (a := soc_server.alarm(identifier)) is not None and a.cleared_at is not None and a,
        "the resolution from Alertmanager",
    )
    assert cleared.severity == Severity.CLEAR
    assert cleared.tally == 1
    assert alertmanager.failed_deliveries() == 0, alertmanager.log.read_text()
