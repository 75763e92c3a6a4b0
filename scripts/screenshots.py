#!/usr/bin/env python3
"""Screenshots of the web faces for the docs: the login page, the SOC console, a drill-down, the wall.

Starts a throwaway server (its own data directory, CA and SQLite catalog) on
loopback over TLS, fills it with a realistic set of alarms, signs in with
Debian's Chromium through Playwright and writes PNGs to docs/screenshots/.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn
from sqlalchemy import update

from vaultwatch.catalog import Catalog, Role, audit
from vaultwatch.catalog.soc_models import Alarm, AlarmClass, Severity
from vaultwatch.catalog.tenants import create_tenant
from vaultwatch.catalog.users import create_user
from vaultwatch.server import build_app, init_server
from vaultwatch.soc import alarms
from vaultwatch.soc.events import Event

ROOT = Path(__file__).resolve().parents[1]
EMAIL = "dana@soc.example"
PASSWORD = "correct horse battery staple"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(catalog: Catalog) -> int:
    """An operator and a busy morning's alarms; the id of the one to drill into."""
    actor = "system:screenshots"
    with catalog.session() as session:
        dana = create_user(
            session,
            email=EMAIL,
            display_name="Dana Okafor",
            role=Role.SOC_OPERATOR,
            password=PASSWORD,
            actor=actor,
        )
        operator = audit.user_actor(dana.id)
        acme = create_tenant(session, "Acme Dental", actor=actor).id
        northwind = create_tenant(session, "Northwind Legal", actor=actor).id
    now = datetime.now(UTC)
    events = [
        Event(
            "gw-fra-2",
            "gateway.down",
            "gateway gw-fra-2 does not answer on :8443",
            Severity.CRITICAL,
            entity="gateway:gw-fra-2",
            occurred_at=now - timedelta(minutes=3),
        ),
        Event(
            "site-fra",
            "site.power",
            "site fra: UPS on battery, mains lost",
            Severity.CRITICAL,
            entity="site:fra",
            alarm_class=AlarmClass.HARDWARE,
            occurred_at=now - timedelta(minutes=4),
        ),
        Event(
            "files01.acme.lan",
            "backup.overdue",
            "backup set 'shares' has not completed for 6 h (RPO 1 h)",
            Severity.MAJOR,
            alert_key="shares",
            tenant_id=acme,
            occurred_at=now - timedelta(minutes=9),
        ),
        Event(
            "sql02.northwind.lan",
            "job.failed",
            "backup of 'mssql-dumps' failed: disk read error on /dev/sdb",
            Severity.MAJOR,
            alert_key="mssql-dumps",
            tenant_id=northwind,
            occurred_at=now - timedelta(minutes=14),
        ),
        Event(
            "bk-store-3",
            "node.disk",
            "volume /srv/vaults is 91 % full (free 1.7 TiB)",
            Severity.MINOR,
            alert_key="/srv/vaults",
            occurred_at=now - timedelta(minutes=22),
        ),
        Event(
            "core-sw1",
            "snmp.linkDown",
            "interface Gi1/0/24 (uplink to fra) is down",
            Severity.MINOR,
            alert_key="Gi1/0/24",
            occurred_at=now - timedelta(minutes=5),
        ),
        Event(
            "web-01",
            "node.certificate",
            "TLS certificate of portal.vaultwatch.example expires in 12 days",
            Severity.WARNING,
            occurred_at=now - timedelta(hours=2),
        ),
        Event(
            "ws17.acme.lan",
            "agent.heartbeat",
            "agent has not sent a heartbeat for 20 minutes",
            Severity.WARNING,
            tenant_id=acme,
            occurred_at=now - timedelta(minutes=20),
        ),
        Event(
            "probe-ams",
            "probe.https",
            "probe https://gw-fra-2:8443/healthz: result unknown",
            Severity.INDETERMINATE,
            occurred_at=now - timedelta(minutes=2),
        ),
    ]
    with catalog.session() as session:
        raised = alarms.raise_events(session, events)
        # Repeats, so the counts look like a real morning.
        alarms.raise_events(session, events[:2] + events[4:6])
    by_identifier = {r.identifier: r.id for r in raised}
    ids = {e.node: by_identifier[e.dedup_identifier] for e in events}
    with catalog.session() as session:
        session.execute(
            update(Alarm).where(Alarm.id == ids["gw-fra-2"]).values(suppressed_by=ids["site-fra"])
        )
        session.execute(
            update(Alarm).where(Alarm.id == ids["core-sw1"]).values(suppressed_by=ids["site-fra"])
        )
        alarms.acknowledge(session, ids["site-fra"], operator)
        alarms.assign(session, ids["site-fra"], operator, "dc-fra on-call")
        alarms.add_note(
            session,
            ids["site-fra"],
            operator,
            "Facility confirms a utility outage in Frankfurt; generator start expected within 10 minutes.",
        )
        alarms.acknowledge(session, ids["bk-store-3"], operator)
    return ids["site-fra"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        settings = init_server(Path(tmp) / "data", port=port).settings
        catalog = Catalog(settings.catalog_url)
        drill = seed(catalog)
        config = uvicorn.Config(
            build_app(settings, ("web",), catalog=catalog),
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(settings.tls_cert),
            ssl_keyfile=str(settings.tls_key),
            log_level="warning",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"https://127.0.0.1:{port}"
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
                )
                context = browser.new_context(
                    ignore_https_errors=True, viewport={"width": 1440, "height": 900}
                )
                page = context.new_page()
                page.goto(base + "/login")
                page.screenshot(path=str(args.out / "login.png"))
                page.get_by_label("Email").fill(EMAIL)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(base + "/console")
                page.locator("#live-text").filter(has_text="Live").wait_for()
                page.keyboard.press("j")
                page.keyboard.press("j")
                page.screenshot(path=str(args.out / "console.png"), full_page=True)
                page.goto(base + f"/console/alarms/{drill}")
                page.screenshot(path=str(args.out / "alarm.png"), full_page=True)
                page.goto(base + "/console?wall=1")
                page.locator("#live-text").filter(has_text="Live").wait_for()
                page.set_viewport_size({"width": 1920, "height": 1080})
                page.screenshot(path=str(args.out / "console-wall.png"))
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=40)
            catalog.dispose()
    for name in ("login", "console", "alarm", "console-wall"):
        print(args.out / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
