"""Node health: real measurements of this host, bounded history, and threshold alarms."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.soc_models import Alarm, NodeHealthSample, ServerNode, Severity
from vaultwatch.gateway.tls import create_ca_and_server_cert
from vaultwatch.server_config import ServerSettings
from vaultwatch.soc.monitors import MonitorSettings, emit
from vaultwatch.soc.monitors.nodes import (
    check_nodes,
    judge_health,
    parse_mdstat,
    parse_smartctl,
    report_node_health,
    smart_health,
)
from vaultwatch.store.url import open_store

DEGRADED_MDSTAT = """Personalities : [raid1]
md0 : active raid1 sdb1[1](F) sda1[0]
      1046528 blocks super 1.2 [2/1] [U_]

md1 : active raid1 sdd1[1] sdc1[0]
      2095104 blocks super 1.2 [2/2] [UU]

unused devices: <none>
"""


def _settings(tmp_path: Path, *, cert_now: datetime | None = None) -> ServerSettings:
    files = create_ca_and_server_cert(tmp_path / "tls", names=["127.0.0.1"], now=cert_now)
    (tmp_path / "vaults").mkdir()
    (tmp_path / "spool").mkdir()
    return ServerSettings(
        data_dir=tmp_path,
        catalog_url="unused",
        vault_url=str(tmp_path / "vaults"),
        tls_cert=files.cert,
        tls_key=files.key,
        ca_cert=files.ca_cert,
        token_key_file=tmp_path / "token.key",
        site="fra-1",
    )


def _open(catalog: Catalog) -> dict[str, Alarm]:
    with catalog.session() as session:
        rows = session.scalars(select(Alarm).where(Alarm.cleared_at.is_(None))).all()
        return {f"{a.alert_group}:{a.alert_key}": a for a in rows}


def _judge(catalog: Catalog, config: MonitorSettings) -> None:
    with catalog.session() as session:
        now = datetime.now(UTC)
        emit(session, check_nodes(session, now, config), now=now)


def test_a_node_reports_real_measurements_with_bounded_history(
    catalog: Catalog, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    store = open_store(settings.vault_url)
    config = MonitorSettings(node_samples_kept=2)
    (tmp_path / "spool" / "1234").mkdir(parents=True, exist_ok=True)
    (tmp_path / "spool" / "1234" / "upload-a").write_bytes(b"x")
    for _ in range(3):
        health = report_node_health(catalog, settings, "gw1", config=config, store=store)
    assert health["cpu"]["count"] == len(os.sched_getaffinity(0))
    assert 0 < health["memory"]["available_bytes"] <= health["memory"]["total_bytes"]
    data = next(d for d in health["disks"] if d["role"] == "data")
    assert data["free_bytes"] == pytest.approx(shutil.disk_usage(tmp_path).free, rel=0.05)
    assert next(d for d in health["disks"] if d["role"] == "spool")["path"] == str(
        tmp_path / "spool"
    )
    assert health["store"]["ok"] and health["store"]["latency_ms"] > 0
    assert list(store.list("node-health")) == []  # the probe object was removed
    assert health["database"]["ok"] and health["database"]["latency_ms"] > 0
    assert 820 < health["cert"]["days_left"] <= 825
    assert health["workers"]["alive"] >= 1 and health["workers"]["pid"] == os.getpid()
    assert health["raid"] == [] or all("degraded" in a for a in health["raid"])
    assert health["queues"] == {"notifications_pending": 0, "spool_files": 1}
    with catalog.session() as session:
        node = session.scalars(select(ServerNode).where(ServerNode.name == "gw1")).one()
        assert node.health["at"] == health["at"] and node.roles == list(settings.roles)
        assert node.site == "fra-1"
        kept = session.scalar(
            select(func.count())
            .select_from(NodeHealthSample)
            .where(NodeHealthSample.node_id == node.id)
        )
    assert kept == 2


def test_thresholds_raise_and_clear_node_alarms(catalog: Catalog, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = open_store(settings.vault_url)
    report_node_health(catalog, settings, "gw1", store=store)
    strict = MonitorSettings(
        node_disk_free_major_percent=100.5,
        node_cert_warn_days=2000,
        node_db_latency_ms=0.000001,
        node_store_latency_ms=0.000001,
    )
    _judge(catalog, strict)
    alarms = _open(catalog)
    disk = alarms[f"node.disk:{tmp_path}"]
    assert disk.severity == Severity.MAJOR and disk.entity == "node:gw1"
    assert alarms["node.cert:"].severity == Severity.WARNING
    assert alarms["node.db_latency:"].severity == Severity.MINOR
    assert alarms["node.store_latency:"].severity == Severity.MINOR
    assert "node.memory:" not in alarms
    _judge(catalog, strict)
    assert _open(catalog)[f"node.disk:{tmp_path}"].tally == 1
    _judge(catalog, MonitorSettings())
    assert _open(catalog) == {}


def test_an_expired_certificate_is_critical(catalog: Catalog, tmp_path: Path) -> None:
    settings = _settings(tmp_path, cert_now=datetime.now(UTC) - timedelta(days=900))
    report_node_health(catalog, settings, "web1")
    _judge(catalog, MonitorSettings())
    assert _open(catalog)["node.cert:"].severity == Severity.CRITICAL


def test_degraded_raid_and_failing_disks_are_critical() -> None:
    arrays = parse_mdstat(DEGRADED_MDSTAT)
    assert [(a["name"], a["degraded"], a["members"]) for a in arrays] == [
        ("md0", True, "U_"),
        ("md1", False, "UU"),
    ]
    failing = parse_smartctl('{"smart_status": {"passed": false}}', 8)
    assert failing["status"] == "failing"
    assert parse_smartctl('{"smart_status": {"passed": true}}', 0)["status"] == "passed"
    events = judge_health(
        "bs1", {"raid": arrays, "smart": [{"device": "sda", **failing}]}, MonitorSettings()
    )
    by_key = {(e.alert_group, e.alert_key): e for e in events}
    assert by_key[("node.raid", "md0")].severity == Severity.CRITICAL
    assert by_key[("node.raid", "md1")].severity == Severity.CLEAR
    assert by_key[("node.smart", "sda")].severity == Severity.CRITICAL


def test_smartctl_is_asked_about_every_disk() -> None:
    if shutil.which("smartctl") is None and not os.access("/usr/sbin/smartctl", os.X_OK):
        message = "smartctl is not installed (scripts/test-services.sh installs smartmontools)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    disks = smart_health(10)
    assert disks is not None
    for disk in disks:
        assert disk["status"] in ("passed", "failing", "unavailable")
        if disk["status"] == "unavailable":
            assert disk["message"]  # why smartctl could not tell (virtual disk, permissions)


def test_a_catalog_outage_seen_by_a_node_is_kept_as_a_cleared_alarm(
    catalog: Catalog, tmp_path: Path
) -> None:
    from sqlalchemy.exc import OperationalError

    from vaultwatch.soc.duties import DutyContext
    from vaultwatch.soc.monitors.nodes import CATALOG_UNAVAILABLE, NodeReporter

    settings = _settings(tmp_path)
    port = _closed_port()
    unreachable = Catalog(f"postgresql+psycopg://vw:vw@127.0.0.1:{port}/none")
    reporter = NodeReporter(unreachable, settings, "gw1", MonitorSettings())
    context = DutyContext(unreachable, "gw1", "holder", "soc-duties", None)
    with pytest.raises(OperationalError):
        reporter.duty(context)
    with pytest.raises(OperationalError):
        reporter.duty(context)  # still down: one outage, noted once
    reporter.catalog = catalog  # the database answers again
    reporter.duty(DutyContext(catalog, "gw1", "holder", "soc-duties", None))
    unreachable.dispose()
    with catalog.session() as session:
        alarm = session.scalars(select(Alarm).where(Alarm.alert_group == CATALOG_UNAVAILABLE)).one()
    assert alarm.cleared_at is not None and alarm.tally == 1
    assert alarm.last_problem_severity == Severity.MAJOR
    assert "unavailable to gw1" in alarm.summary and str(port) in alarm.summary


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
