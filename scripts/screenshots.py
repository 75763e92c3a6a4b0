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
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


PORTAL_EMAIL = "it@acme-dental.example"


def seed_portal(catalog: Catalog) -> uuid.UUID:
    """Acme Dental's servers in every state, with snapshots and a running backup; one to open."""
    from vaultwatch.catalog.agent_reports import (
        JobReport,
        ReportedBackupSet,
        report_job,
        sync_backup_sets,
    )
    from vaultwatch.catalog.agents import record_heartbeat
    from vaultwatch.catalog.models import Agent, BackupMode, JobKind, JobState, Snapshot, Tenant
    from vaultwatch.catalog.vaults import register_tenant_vault

    actor, now = "system:screenshots", datetime.now(UTC)
    with catalog.session() as session:
        tenant = session.query(Tenant).filter(Tenant.name == "Acme Dental").one().id
        create_user(session, email=PORTAL_EMAIL, display_name="Sam Ortiz", role=Role.CUSTOMER_ADMIN,
                    password=PASSWORD, actor=actor, tenant_id=tenant)  # fmt: skip
        repo = register_tenant_vault(session, tenant, f"/srv/vaults/{tenant}", actor=actor).id
    servers = [("files01.acme.lan", 900, 3600), ("xray-ws2.acme.lan", 2700, 3600),
               ("db01.acme.lan", 12000, 3600), ("reception.acme.lan", None, 3600)]  # fmt: skip
    ids = {}
    for host, last_ago, rpo in servers:
        with catalog.session() as session:
            agent = Agent(tenant_id=tenant, hostname=host, enrolled_at=now - timedelta(days=30))
            session.add(agent)
            session.flush()
            ids[host] = agent.id
            record_heartbeat(session, agent.id, version="1.4.0", host_facts={"os": "linux"},
                             free_disk_bytes=310 * 2**30, gateway_reachable=True, now=now)  # fmt: skip
            if last_ago is None:
                continue
            (bs,) = sync_backup_sets(session, agent, repo, [ReportedBackupSet("shares", ["/srv"], BackupMode.CONTINUOUS, rpo)])  # fmt: skip
            bs.created_at = now - timedelta(days=8)
            at = now - timedelta(days=7)
            step = 0
            while at < now - timedelta(seconds=last_ago):
                step += 1
                session.add(Snapshot(tenant_id=tenant, repository_id=repo, backup_set_id=bs.id, agent_id=agent.id,
                                     vault_snapshot_id=f"{step:04x}{agent.id.hex}"[:64], hostname=host, paths=["/srv"],
                                     started_at=at - timedelta(minutes=2), finished_at=at, files_total=18000 + step,
                                     bytes_total=74 * 2**30, bytes_added=(3 + step % 7) * 2**20))  # fmt: skip
                # Hourly, with an outage night for db01.
                at += timedelta(minutes=50 if host != "db01.acme.lan" or step % 40 else 600)
        if host == "files01.acme.lan":
            with catalog.session() as session:
                agent_row = session.get(Agent, agent.id)
                assert agent_row is not None
                report = JobReport(JobKind.BACKUP, JobState.RUNNING, backup_set="shares", bytes_done=912 * 2**20,
                                   bytes_total=1400 * 2**20, files_done=3121, files_total=4800, rate=11.5 * 2**20,
                                   eta_seconds=42, phase="upload", current_file="/srv/shares/imaging/2026-03/pano-1183.dcm",
                                   resumed_bytes=300 * 2**20)  # fmt: skip
                report_job(session, agent_row, uuid.uuid4(), report, repository_id=repo)
    return ids["files01.acme.lan"]


def _protected(session: Any, bs: Any, agent: Any, repo: uuid.UUID, now: datetime) -> None:
    """A good snapshot of `bs` ten minutes ago, so the set is within its RPO."""
    from vaultwatch.catalog.models import Snapshot

    bs.created_at = now - timedelta(days=30)
    session.add(Snapshot(tenant_id=agent.tenant_id, repository_id=repo, backup_set_id=bs.id, agent_id=agent.id,
                         vault_snapshot_id=uuid.uuid4().hex * 2, hostname=agent.hostname, paths=["/srv"],
                         started_at=now - timedelta(minutes=12), finished_at=now - timedelta(minutes=10),
                         files_total=52000, bytes_total=310 * 2**30, bytes_added=48 * 2**20))  # fmt: skip


def seed_console_pages(catalog: Catalog) -> int:
    """Running jobs, server nodes with six hours of health, probes and a paged incident; its id."""
    from vaultwatch.catalog.agent_reports import (
        JobReport,
        ReportedBackupSet,
        report_job,
        sync_backup_sets,
    )
    from vaultwatch.catalog.agents import record_heartbeat
    from vaultwatch.catalog.models import Agent, BackupMode, Job, JobKind, JobState, Tenant
    from vaultwatch.catalog.soc_models import NodeHealthSample, Probe, ServerNode
    from vaultwatch.catalog.vaults import register_tenant_vault
    from vaultwatch.soc import escalation, incidents

    actor, now = "system:screenshots", datetime.now(UTC)
    with catalog.session() as session:
        northwind = session.query(Tenant).filter(Tenant.name == "Northwind Legal").one().id
        acme = session.query(Tenant).filter(Tenant.name == "Acme Dental").one().id
        repo = register_tenant_vault(session, northwind, f"/srv/vaults/{northwind}", actor=actor).id
    jobs = [("sql02.northwind.lan", "mssql-dumps", JobKind.BACKUP, 61, 212, 2.4, "/var/opt/mssql/backup/ledger_2026_03.bak", 0),
            ("fs01.northwind.lan", "matters", JobKind.RESTORE, 18, 96, 31.0, "/srv/matters/2019/Hale v Orbis/exhibits.zip", 0),
            ("mail.northwind.lan", "maildirs", JobKind.BACKUP, 83, 40, 0.0, "/var/mail/partners/cur/1709.eml", 7)]  # fmt: skip
    for host, set_name, kind, percent, total_gib, rate_mib, current, stalled_minutes in jobs:
        with catalog.session() as session:
            agent = Agent(tenant_id=northwind, hostname=host, enrolled_at=now - timedelta(days=60))
            session.add(agent)
            session.flush()
            record_heartbeat(session, agent.id, version="1.4.0", host_facts={"os": "linux", "cpus": 8},
                             free_disk_bytes=120 * 2**30, gateway_reachable=True, now=now)  # fmt: skip
            (bs,) = sync_backup_sets(session, agent, repo, [ReportedBackupSet(set_name, ["/srv"], BackupMode.CONTINUOUS, 3600)])  # fmt: skip
            _protected(session, bs, agent, repo, now)
            total = total_gib * 2**30
            done = total * percent // 100
            report = JobReport(kind, JobState.RUNNING, backup_set=set_name, bytes_done=done, bytes_total=total,
                               files_done=percent * 31, files_total=3100, rate=rate_mib * 2**20 or None,
                               eta_seconds=int((total - done) / (rate_mib * 2**20)) if rate_mib else None,
                               phase="restore" if kind == JobKind.RESTORE else "upload", current_file=current,
                               resumed_bytes=(9 * 2**30) if host.startswith("sql02") else None)  # fmt: skip
            job_id = uuid.uuid4()
            report_job(session, agent, job_id, report, repository_id=repo)
            if stalled_minutes:
                session.flush()
                session.query(Job).filter(Job.id == job_id).update(
                    {"updated_at": now - timedelta(minutes=stalled_minutes)}
                )
    with catalog.session() as session:
        harbor = create_tenant(session, "Harbor Clinics", actor=actor).id
        harbor_repo = register_tenant_vault(
            session, harbor, f"/srv/vaults/{harbor}", actor=actor
        ).id
        for n in range(1, 7):
            agent = Agent(
                tenant_id=harbor,
                hostname=f"clinic{n:02d}.harbor.lan",
                enrolled_at=now - timedelta(days=90),
            )
            session.add(agent)
            session.flush()
            record_heartbeat(session, agent.id, version="1.4.0", host_facts={"os": "windows"},
                             free_disk_bytes=80 * 2**30, gateway_reachable=True, now=now)  # fmt: skip
            (bs,) = sync_backup_sets(session, agent, harbor_repo, [ReportedBackupSet("records", ["/data"], BackupMode.CONTINUOUS, 3600)])  # fmt: skip
            _protected(session, bs, agent, harbor_repo, now)
    nodes = [("gw-fra-1", "fra", ["gateway"], 0, 38.0), ("gw-fra-2", "fra", ["gateway"], 900, 22.0),
             ("bk-store-3", "fra", ["backup"], 0, 9.0), ("web-01", "ams", ["web"], 0, 71.0)]  # fmt: skip
    with catalog.session() as session:
        for name, site, roles, silent, free in nodes:

            def health(step: int, free: float = free, name: str = name) -> dict[str, object]:
                wobble = (step * 7919 % 13) / 13
                disk = free + (72 - step) * (0.05 if name == "bk-store-3" else 0.01)
                return {"cpu": {"count": 8, "load1": round(1.2 + wobble, 2), "load_per_cpu": 0.2},
                        "memory": {"available_percent": round(58 - wobble * 6, 1)},
                        "disks": [{"role": "data", "free_percent": round(disk, 2), "free_bytes": int(disk * 2**40 / 5)},
                                  {"role": "spool", "free_percent": 81.0, "free_bytes": 400 * 2**30}],
                        "database": {"ok": True, "latency_ms": round(1.8 + wobble * 2 + (6 if 40 < step < 46 else 0), 2)},
                        "store": {"ok": True, "latency_ms": round(14 + wobble * 9 + (step % 24 == 0) * 30, 1)},
                        "cert": {"days_left": 12.4 if name == "web-01" else 71.2},
                        "smart": [{"device": "sda", "status": "passed"}, {"device": "sdb", "status": "passed"}],
                        "raid": [{"name": "md0", "level": "raid1", "members": "UU", "degraded": False}]}  # fmt: skip

            node = ServerNode(name=name, site=site, roles=roles, version="1.4.0", url=f"https://{name}:8443",
                              last_seen_at=now - timedelta(seconds=silent or 20), health=health(72),
                              started_at=now - timedelta(days=3))  # fmt: skip
            session.add(node)
            session.flush()
            for step in range(73):
                at = now - timedelta(minutes=(72 - step) * 5)
                if at < now - timedelta(seconds=silent):
                    session.add(NodeHealthSample(node_id=node.id, at=at, metrics=health(step)))
        session.add_all([
            Probe(name="gw-fra-1 https", kind="http", target="https://gw-fra-1:8443/healthz", entity="gateway:gw-fra-1",
                  last_run_at=now, last_ok=True, last_latency_ms=6.1),
            Probe(name="gw-fra-2 tls", kind="tls", target="gw-fra-2:8443", entity="gateway:gw-fra-2",
                  last_run_at=now, last_ok=False, last_error="connection timed out after 5.0 s"),
            Probe(name="portal https", kind="http", target="https://portal.vaultwatch.example/healthz",
                  entity="node:web-01", last_run_at=now, last_ok=True, last_latency_ms=18.4),
        ])  # fmt: skip
        escalation.create_policy(session, name="fra on-call", levels=[
            {"targets": [{"kind": "email", "address": "oncall-fra@soc.example"}], "timeout_seconds": 600},
            {"targets": [{"kind": "email", "address": "duty-manager@soc.example"}], "timeout_seconds": 1800}])  # fmt: skip
        root = session.query(Alarm).filter(Alarm.node == "gw-fra-2").one()
        incident = incidents.open_incident(session, title="Gateway gw-fra-2 unreachable: uploads fail over to gw-fra-1",
                                           severity="critical", actor=actor, tenant_ids=[acme, northwind],
                                           root_alarm_id=root.id, policy="fra on-call", now=now - timedelta(minutes=18))  # fmt: skip
        root.incident_id = incident.id
        escalation.escalate_due(session, now - timedelta(minutes=7))
        return incident.id


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
        server_page = seed_portal(catalog)
        incident = seed_console_pages(catalog)
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
                page.set_viewport_size({"width": 1440, "height": 900})
                for name, path in (("operations", "/console/operations"), ("fleet", "/console/fleet"),
                                   ("infrastructure", "/console/infrastructure"),
                                   ("incident", f"/console/incidents/{incident}")):  # fmt: skip
                    page.goto(base + path)
                    page.screenshot(path=str(args.out / f"{name}.png"), full_page=True)
                portal = browser.new_context(
                    ignore_https_errors=True, viewport={"width": 1440, "height": 900}
                )
                page = portal.new_page()
                page.goto(base + "/login")
                page.get_by_label("Email").fill(PORTAL_EMAIL)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(base + "/portal")
                page.screenshot(path=str(args.out / "portal.png"), full_page=True)
                page.goto(base + f"/portal/servers/{server_page}")
                page.locator("#live-text").filter(has_text="Live").wait_for()
                page.screenshot(path=str(args.out / "portal-server.png"), full_page=True)
                page.goto(base + "/portal/servers/add")
                page.get_by_role("button", name="Make an enrollment token").click()
                page.screenshot(path=str(args.out / "portal-add-server.png"), full_page=True)
                with catalog.session() as session:
                    create_user(session, email="lee@dc.example", display_name="Lee Brandt", role=Role.DC_TECHNICIAN, password=PASSWORD, actor="system:screenshots")  # fmt: skip
                page = browser.new_context(ignore_https_errors=True, viewport={"width": 1440, "height": 600}).new_page()  # fmt: skip
                page.goto(base + "/login")
                page.get_by_label("Email").fill("lee@dc.example")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(base + "/datacenter")
                page.screenshot(path=str(args.out / "datacenter.png"))
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=40)
            catalog.dispose()
    for name in (
        "login",
        "console",
        "alarm",
        "console-wall",
        "operations",
        "fleet",
        "infrastructure",
        "incident",
        "portal",
        "portal-server",
        "portal-add-server",
    ):
        print(args.out / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
