"""Node health: every server node measures itself; the lease holder judges them all.

`report_node_health` runs on every node (not under the lease: a node is the
only one who can measure itself). It reads the kernel's own files (/proc,
statvfs) rather than needing a library, times a small write/read/delete in
the vault store and a ``SELECT 1`` to the catalog, counts the server's
worker processes, reads the TLS certificate's expiry, asks ``smartctl`` for
each disk's health when smartctl is installed, and reads /proc/mdstat for
software RAID. The result becomes the node's `health` and one history
sample (at most `node_samples_kept` per node).

`check_nodes` (leased) turns the latest health of every node into alarms
``node.disk``, ``node.memory``, ``node.cert``, ``node.smart``, ``node.raid``,
``node.store_latency`` and ``node.db_latency``, cleared when the
measurement is back inside its threshold.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from vaultwatch import __version__
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.soc_models import (
    EventSource,
    EventType,
    NodeHealthSample,
    ServerNode,
    Severity,
)
from vaultwatch.gateway.tls import load_certificate
from vaultwatch.server_config import ServerSettings
from vaultwatch.soc.duties import DutyContext
from vaultwatch.soc.events import Event
from vaultwatch.soc.monitors import MonitorSettings, emit
from vaultwatch.soc.pipeline import process_events
from vaultwatch.store.base import Store
from vaultwatch.store.url import open_store

log = logging.getLogger("vaultwatch.soc.monitors.nodes")

#: Raised (and cleared at once) when a node's reports show the catalog was unreachable.
CATALOG_UNAVAILABLE = "catalog.unavailable"

PROBE_PREFIX = "node-health"
_SKIPPED_DISKS = re.compile(r"^(loop|ram|zram|dm-|md|sr|nbd|fd)")
_MD_HEADER = re.compile(r"^(md\S*)\s*:\s*(\S+)\s+(?:\((\S+)\)\s+)?(\S+)?")
_MD_STATUS = re.compile(r"\[(\d+)/(\d+)\]\s*\[([U_]+)\]")

# -- measuring ---------------------------------------------------------------------------------


def cpu_health() -> dict[str, Any]:
    """Load averages and the CPUs this process may use."""
    load1, load5, load15 = os.getloadavg()
    count = len(os.sched_getaffinity(0))
    return {
        "count": count,
        "load1": round(load1, 2),
        "load5": round(load5, 2),
        "load15": round(load15, 2),
        "load_per_cpu": round(load1 / max(count, 1), 2),
    }


def parse_meminfo(content: str) -> dict[str, int]:
    """/proc/meminfo -> {name: bytes}."""
    values: dict[str, int] = {}
    for line in content.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            factor = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
            values[name.strip()] = int(parts[0]) * factor
    return values


def memory_health(meminfo: Path = Path("/proc/meminfo")) -> dict[str, Any]:
    """Total and available memory (MemAvailable counts reclaimable cache as available)."""
    values = parse_meminfo(meminfo.read_text())
    total = values.get("MemTotal", 0)
    available = values.get("MemAvailable", values.get("MemFree", 0))
    return {
        "total_bytes": total,
        "available_bytes": available,
        "available_percent": round(available * 100 / total, 2) if total else None,
    }


def disk_health(paths: dict[str, Path]) -> list[dict[str, Any]]:
    """Free space of each directory (by role: data, spool); a missing one reports its error."""
    out: list[dict[str, Any]] = []
    for role, path in paths.items():
        entry: dict[str, Any] = {"role": role, "path": str(path)}
        try:
            usage = shutil.disk_usage(path)
        except OSError as exc:
            entry["error"] = exc.strerror or str(exc)
        else:
            entry.update(
                total_bytes=usage.total,
                free_bytes=usage.free,
                free_percent=round(usage.free * 100 / usage.total, 2) if usage.total else None,
            )
        out.append(entry)
    return out


def _timed(action: Callable[[], object]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        action()
    except Exception as exc:
        return {"ok": False, "latency_ms": None, "error": f"{type(exc).__name__}: {exc}"[:500]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 3)}


def store_health(store: Store, node_name: str) -> dict[str, Any]:
    """Time writing, reading back and deleting a small probe object in the vault store."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", node_name)[:100] or "node"
    name = f"{PROBE_PREFIX}/{safe}-{uuid.uuid4().hex[:12]}"
    payload = os.urandom(1024)

    def round_trip() -> None:
        store.put(name, payload)
        try:
            if store.get(name) != payload:
                raise OSError("the probe object read back differs from what was written")
        finally:
            store.delete(name)

    return _timed(round_trip)


def database_health(catalog: Catalog) -> dict[str, Any]:
    """Time one ``SELECT 1`` round trip on a pooled catalog connection."""

    def select_one() -> None:
        with catalog.engine.connect() as connection:
            connection.execute(text("SELECT 1")).scalar_one()

    return _timed(select_one)


def _children(pid: int) -> list[int]:
    try:
        content = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in content.split()]


def _alive_with_exe(pid: int, exe: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return os.readlink(f"/proc/{pid}/exe") == exe and stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def worker_health() -> dict[str, Any]:
    """How many server processes run beside this one (the parent's live children like us).

    A server started with several workers runs them as children of one
    parent; a lone server counts itself.
    """
    me = os.getpid()
    exe = os.readlink(f"/proc/{me}/exe") if Path(f"/proc/{me}/exe").exists() else ""
    siblings = [p for p in _children(os.getppid()) if _alive_with_exe(p, exe)]
    return {"pid": me, "alive": max(len(siblings), 1)}


def cert_health(path: Path, now: datetime) -> dict[str, Any]:
    """Days until the server certificate expires."""
    try:
        cert = load_certificate(path)
    except Exception as exc:
        return {"path": str(path), "error": str(exc)[:500]}
    not_after = cert.not_valid_after_utc
    return {
        "path": str(path),
        "not_after": not_after.isoformat(),
        "days_left": round((not_after - now).total_seconds() / 86400, 2),
    }


def block_devices(sys_block: Path = Path("/sys/block")) -> list[str]:
    """The physical disks: block devices with a device behind them, not loops or RAM disks."""
    try:
        names = sorted(p.name for p in sys_block.iterdir())
    except OSError:
        return []
    return [n for n in names if not _SKIPPED_DISKS.match(n) and (sys_block / n / "device").exists()]


def parse_smartctl(output: str, returncode: int) -> dict[str, Any]:
    """One disk's ``smartctl --json -H`` answer -> passed, failing or unavailable.

    Bit 3 of smartctl's exit status means "disk failing"; bits 0-2 mean it
    could not ask (no SMART, no permission), which is not a disk fault.
    """
    try:
        doc = json.loads(output)
    except ValueError:
        doc = {}
    status = doc.get("smart_status") if isinstance(doc, dict) else None
    if returncode & 0x08 or (isinstance(status, dict) and status.get("passed") is False):
        return {"status": "failing", "message": "SMART overall health: FAILED"}
    if isinstance(status, dict) and status.get("passed") is True:
        return {"status": "passed"}
    messages = doc.get("smartctl", {}).get("messages", []) if isinstance(doc, dict) else []
    text_ = "; ".join(str(m.get("string", "")) for m in messages if isinstance(m, dict))
    return {"status": "unavailable", "message": (text_ or f"smartctl exit {returncode}")[:300]}


def smart_health(timeout: float, devices: list[str] | None = None) -> list[dict[str, Any]] | None:
    """SMART health of every disk; None when smartctl is not installed."""
    program = shutil.which("smartctl") or (
        "/usr/sbin/smartctl" if os.access("/usr/sbin/smartctl", os.X_OK) else None
    )
    if program is None:
        return None
    out: list[dict[str, Any]] = []
    for device in block_devices() if devices is None else devices:
        try:
            done = subprocess.run(
                [program, "--json", "-H", f"/dev/{device}"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            result = parse_smartctl(done.stdout, done.returncode)
        except (OSError, subprocess.TimeoutExpired) as exc:
            result = {"status": "unavailable", "message": str(exc)[:300]}
        out.append({"device": device, **result})
    return out


def parse_mdstat(content: str) -> list[dict[str, Any]]:
    """/proc/mdstat -> one entry per array: level, members up (``UU_``), degraded or not."""
    arrays: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in content.splitlines():
        header = _MD_HEADER.match(line)
        if header:
            current = {
                "name": header.group(1),
                "state": header.group(2),
                "level": header.group(4),
                "degraded": header.group(2) != "active",
            }
            if header.group(3):
                current["mode"] = header.group(3)
            arrays.append(current)
            continue
        status = _MD_STATUS.search(line)
        if status and current is not None:
            want, have, members = int(status.group(1)), int(status.group(2)), status.group(3)
            current["members"] = members
            current["devices"] = f"{have}/{want}"
            current["degraded"] = bool(current["degraded"] or have < want or "_" in members)
        if ("recovery" in line or "resync" in line) and current is not None:
            current["sync"] = line.strip()[:200]
    return arrays


def raid_health(mdstat: Path = Path("/proc/mdstat")) -> list[dict[str, Any]]:
    """Software RAID arrays; none when the kernel has no md driver loaded."""
    try:
        return parse_mdstat(mdstat.read_text())
    except OSError:
        return []


# -- reporting ---------------------------------------------------------------------------------


def queue_health(catalog: Catalog, spool: Path) -> dict[str, Any]:
    """Work waiting: notifications in the outbox (cluster-wide) and uploads in this node's spool."""
    from sqlalchemy import func

    from vaultwatch.catalog.soc_models import Notification, NotificationState

    depths: dict[str, Any] = {}
    try:
        with catalog.session() as session:
            depths["notifications_pending"] = int(
                session.scalar(
                    select(func.count())
                    .select_from(Notification)
                    .where(Notification.state == NotificationState.PENDING)
                )
                or 0
            )
    except Exception as exc:
        depths["notifications_error"] = f"{type(exc).__name__}: {exc}"[:200]
    try:
        depths["spool_files"] = sum(1 for p in spool.rglob("*") if p.is_file())
    except OSError:
        depths["spool_files"] = 0  # no spool yet: nothing waiting
    return depths


def collect_node_health(
    catalog: Catalog,
    settings: ServerSettings,
    node_name: str,
    config: MonitorSettings,
    *,
    store: Store | None,
    now: datetime,
) -> dict[str, Any]:
    """Every measurement of this node, as the JSON document stored in `health`."""
    disks = {"data": settings.data_dir, "spool": settings.upload_spool}
    health: dict[str, Any] = {
        "at": now.isoformat(),
        "cpu": cpu_health(),
        "memory": memory_health(),
        "disks": disk_health(disks),
        "database": database_health(catalog),
        "workers": worker_health(),
        "cert": cert_health(settings.tls_cert, now),
        "smart": smart_health(config.node_command_timeout),
        "raid": raid_health(),
        "queues": queue_health(catalog, settings.upload_spool),
    }
    if store is not None:
        health["store"] = store_health(store, node_name)
    return health


def _upsert_node(session: Session, name: str, settings: ServerSettings) -> uuid.UUID:
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert_fn(ServerNode)
        .values(id=uuid.uuid4(), name=name, site=settings.site, roles=[], health={})
        .on_conflict_do_nothing(index_elements=["name"])
    )
    node_id = session.execute(select(ServerNode.id).where(ServerNode.name == name)).scalar_one()
    return node_id


def store_node_health(
    session: Session,
    node_name: str,
    settings: ServerSettings,
    health: dict[str, Any],
    *,
    now: datetime,
    started_at: datetime | None = None,
    keep: int = 2880,
) -> ServerNode:
    """Make `health` the node's latest and add it to the history, keeping the newest `keep`."""
    node_id = _upsert_node(session, node_name, settings)
    node = session.get(ServerNode, node_id, populate_existing=True)
    assert node is not None
    node.roles = list(settings.roles)
    node.site = settings.site
    node.url = f"https://{settings.host}:{settings.port}"
    node.version = __version__
    node.last_seen_at = now
    node.health = health
    if started_at is not None:
        node.started_at = started_at
    session.add(NodeHealthSample(node_id=node_id, at=now, metrics=health))
    session.flush()
    oldest_kept = session.execute(
        select(NodeHealthSample.id)
        .where(NodeHealthSample.node_id == node_id)
        .order_by(NodeHealthSample.id.desc())
        .offset(keep - 1)
        .limit(1)
    ).scalar_one_or_none()
    if oldest_kept is not None:
        session.execute(
            delete(NodeHealthSample)
            .where(NodeHealthSample.node_id == node_id, NodeHealthSample.id < oldest_kept)
            .execution_options(synchronize_session=False)
        )
    return node


def report_node_health(
    catalog: Catalog,
    settings: ServerSettings,
    node_name: str,
    *,
    config: MonitorSettings | None = None,
    store: Store | None = None,
    now: datetime | None = None,
    started_at: datetime | None = None,
    store_error: str | None = None,
) -> dict[str, Any]:
    """Measure this node and store the result (its own transaction); returns the health.

    Without a `store` the store is not measured, unless `store_error` says
    why it could not be opened (then that is the store's result).
    """
    config = config or MonitorSettings()
    moment = now or datetime.now(UTC)
    health = collect_node_health(catalog, settings, node_name, config, store=store, now=moment)
    if store is None and store_error is not None:
        health["store"] = {"ok": False, "latency_ms": None, "error": store_error[:500]}
    with catalog.session() as session:
        stamp = now or database_now(session)
        store_node_health(
            session,
            node_name,
            settings,
            health,
            now=stamp,
            started_at=started_at,
            keep=config.node_samples_kept,
        )
    return health


class NodeReporter:
    """This node's health reporting duty; it opens the vault store once and keeps it."""

    def __init__(
        self, catalog: Catalog, settings: ServerSettings, node_name: str, config: MonitorSettings
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.node_name = node_name
        self.config = config
        self.started_at = datetime.now(UTC)
        self._store: Store | None = None
        self._catalog_down_since: datetime | None = None
        self._catalog_error = ""

    def _open_store(self) -> Store | None:
        if self._store is None:
            self._store = open_store(self.settings.vault_url)
        return self._store

    def duty(self, context: DutyContext) -> object:
        """Run by every node (not leased): measure and report this node."""
        store_error: str | None = None
        try:
            store = self._open_store()
        except Exception as exc:
            log.warning("node health: cannot open the vault store: %s", exc)
            store, store_error = None, f"cannot open the vault store: {exc}"
        try:
            health = report_node_health(
                self.catalog,
                self.settings,
                self.node_name,
                config=self.config,
                store=store,
                now=context.clock_now,
                started_at=self.started_at,
                store_error=store_error,
            )
        except OperationalError as exc:
            if self._catalog_down_since is None:
                self._catalog_down_since = context.clock_now or datetime.now(UTC)
                self._catalog_error = str(exc.orig or exc).strip().splitlines()[0][:300]
                log.warning("node health: the catalog is unavailable: %s", self._catalog_error)
            raise
        if self._catalog_down_since is not None:
            self._report_outage(context.clock_now or datetime.now(UTC))
        return health

    def _report_outage(self, back_at: datetime) -> None:
        """The catalog is back: keep a record of the outage this node saw (raised and cleared)."""
        since, self._catalog_down_since = self._catalog_down_since, None
        assert since is not None
        seconds = (back_at - since).total_seconds()
        common: dict[str, Any] = {
            "node": self.node_name,
            "alert_group": CATALOG_UNAVAILABLE,
            "entity": f"node:{self.node_name}",
            "source": EventSource.MONITOR,
            "occurrence_key": f"since:{since.isoformat()}",
            "attributes": {"since": since.isoformat(), "error": self._catalog_error},
        }
        summary = (
            f"the catalog database was unavailable to {self.node_name} for {seconds:.0f} s "
            f"(from {since.isoformat(timespec='seconds')}): {self._catalog_error}"
        )
        with self.catalog.session() as session:
            process_events(
                session,
                [
                    Event(**common, summary=summary, severity=Severity.MAJOR),
                    Event(**common, summary=summary, type=EventType.RESOLUTION),
                ],
            )

    def close(self) -> None:
        """Close the vault store."""
        if self._store is not None:
            self._store.close()
            self._store = None


# -- judging -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Verdict:
    group: str
    key: str
    severity: Severity
    summary: str


def _disk_verdicts(name: str, health: dict[str, Any], cfg: MonitorSettings) -> list[_Verdict]:
    out: list[_Verdict] = []
    for disk in health.get("disks") or []:
        path = str(disk.get("path", ""))
        free = disk.get("free_percent")
        if disk.get("error"):
            sev, text_ = Severity.MAJOR, f"cannot read free space of {path}: {disk['error']}"
        elif isinstance(free, int | float) and free < cfg.node_disk_free_critical_percent:
            sev, text_ = Severity.CRITICAL, f"{path} on {name} has only {free:.1f}% free"
        elif isinstance(free, int | float) and free < cfg.node_disk_free_major_percent:
            sev, text_ = Severity.MAJOR, f"{path} on {name} has only {free:.1f}% free"
        else:
            sev, text_ = Severity.CLEAR, f"{path} on {name} has enough free space"
        out.append(_Verdict("node.disk", path, sev, text_))
    return out


def _memory_verdict(name: str, health: dict[str, Any], cfg: MonitorSettings) -> list[_Verdict]:
    available = (health.get("memory") or {}).get("available_percent")
    if not isinstance(available, int | float):
        return []
    if available < cfg.node_memory_available_major_percent:
        return [
            _Verdict(
                "node.memory", "", Severity.MAJOR, f"{name} has {available:.1f}% memory available"
            )
        ]
    return [_Verdict("node.memory", "", Severity.CLEAR, f"{name} has enough memory")]


def _cert_verdict(name: str, health: dict[str, Any], cfg: MonitorSettings) -> list[_Verdict]:
    cert = health.get("cert")
    if not isinstance(cert, dict):
        return []
    days = cert.get("days_left")
    if cert.get("error") or not isinstance(days, int | float):
        return [
            _Verdict(
                "node.cert",
                "",
                Severity.MAJOR,
                f"cannot read the certificate of {name}: {cert.get('error')}",
            )
        ]
    if days <= 0:
        sev, text_ = Severity.CRITICAL, f"the certificate of {name} has expired"
    elif days < cfg.node_cert_major_days:
        sev, text_ = Severity.MAJOR, f"the certificate of {name} expires in {days:.0f} days"
    elif days < cfg.node_cert_warn_days:
        sev, text_ = Severity.WARNING, f"the certificate of {name} expires in {days:.0f} days"
    else:
        sev, text_ = Severity.CLEAR, f"the certificate of {name} is valid for {days:.0f} days"
    return [_Verdict("node.cert", "", sev, text_)]


def _hardware_verdicts(name: str, health: dict[str, Any]) -> list[_Verdict]:
    out: list[_Verdict] = []
    for disk in health.get("smart") or []:
        device = str(disk.get("device", ""))
        failing = disk.get("status") == "failing"
        out.append(
            _Verdict(
                "node.smart",
                device,
                Severity.CRITICAL if failing else Severity.CLEAR,
                f"disk {device} on {name} "
                + ("reports SMART failure" if failing else "has no SMART failure"),
            )
        )
    for array in health.get("raid") or []:
        md = str(array.get("name", ""))
        degraded = bool(array.get("degraded"))
        members = array.get("members", "?")
        out.append(
            _Verdict(
                "node.raid",
                md,
                Severity.CRITICAL if degraded else Severity.CLEAR,
                f"RAID {md} on {name} is "
                + (f"degraded [{members}]" if degraded else f"healthy [{members}]"),
            )
        )
    return out


def _latency_verdict(
    name: str, health: dict[str, Any], part: str, group: str, limit_ms: float
) -> list[_Verdict]:
    probe = health.get(part)
    if not isinstance(probe, dict):
        return []
    what = "vault store" if part == "store" else "catalog database"
    latency = probe.get("latency_ms")
    if not probe.get("ok"):
        sev, text_ = Severity.MAJOR, f"{what} check failed on {name}: {probe.get('error')}"
    elif isinstance(latency, int | float) and latency > limit_ms:
        sev, text_ = Severity.MINOR, f"{what} answers {name} in {latency:.0f} ms"
    else:
        sev, text_ = Severity.CLEAR, f"{what} answers {name} in time"
    return [_Verdict(group, "", sev, text_)]


def judge_health(name: str, health: dict[str, Any], cfg: MonitorSettings) -> list[Event]:
    """The alarms one node's latest health calls for (problems and resolutions)."""
    verdicts = [
        *_disk_verdicts(name, health, cfg),
        *_memory_verdict(name, health, cfg),
        *_cert_verdict(name, health, cfg),
        *_hardware_verdicts(name, health),
        *_latency_verdict(name, health, "store", "node.store_latency", cfg.node_store_latency_ms),
        *_latency_verdict(name, health, "database", "node.db_latency", cfg.node_db_latency_ms),
    ]
    return [
        Event(
            node=name,
            alert_group=v.group,
            alert_key=v.key,
            summary=v.summary,
            severity=v.severity,
            type=EventType.RESOLUTION if v.severity == Severity.CLEAR else EventType.PROBLEM,
            source=EventSource.MONITOR,
            occurrence_key=None if v.severity == Severity.CLEAR else f"level:{v.severity.label}",
        )
        for v in verdicts
    ]


def check_nodes(session: Session, now: datetime, config: MonitorSettings) -> list[Event]:
    """Judge every node that reported recently (a silent node's alarms stay as they were)."""
    fresh_after = now.timestamp() - 10 * config.node_report_interval
    events: list[Event] = []
    for node in session.scalars(select(ServerNode).order_by(ServerNode.name)):
        if node.last_seen_at is None or node.last_seen_at.timestamp() < fresh_after:
            continue
        events.extend(judge_health(node.name, node.health or {}, config))
    return events


def node_duty(config: MonitorSettings) -> Callable[[DutyContext], object]:
    """The leased duty judging every node's health in one fenced transaction."""

    def run(context: DutyContext) -> object:
        with context.session() as session:
            now = context.now(session)
            return len(emit(session, check_nodes(session, now, config), now=now))

    return run
