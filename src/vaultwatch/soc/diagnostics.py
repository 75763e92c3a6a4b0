"""Diagnostics: run the checks an operator would run by hand, and keep the report with the alarm.

`diagnose(catalog, settings, kind, name)` checks a server node, a gateway, an
agent or a tenant: reachability (TCP, TLS with certificate expiry, the
health endpoint), free disk, store read and write, the database, version
skew, recent errors and what the agent last reported. The report is a plain
document, so the API, the CLI and an alarm's journal all carry the same thing.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vaultwatch import __version__
from vaultwatch.catalog import Agent, Catalog, Job, JobState, Tenant, database_now
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.soc_models import Alarm, ServerNode
from vaultwatch.catalog.tenants import find_tenant
from vaultwatch.server_config import ServerSettings
from vaultwatch.soc import alarms
from vaultwatch.soc.monitors.nodes import database_health, store_health
from vaultwatch.soc.monitors.probes import probe_http, probe_tls

Status = Literal["ok", "warn", "fail", "skip"]
KINDS = ("node", "gateway", "agent", "tenant")

#: A certificate with fewer days left than this is a warning.
CERT_WARN_DAYS = 21
#: An agent silent for longer than this fails the heartbeat check.
SILENT_AFTER = timedelta(minutes=5)
#: Free disk below this fraction is a warning, below a tenth of it a failure.
DISK_WARN_FRACTION = 0.10


class DiagnosisTargetNotFoundError(CatalogError):
    """Nothing of that kind has that name."""

    http_status = 404


@dataclass(frozen=True)
class Check:
    """One check's outcome."""

    name: str
    status: Status
    detail: str
    latency_ms: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """Every check run against one target, and the worst outcome."""

    kind: str
    target: str
    started_at: datetime
    checks: list[Check]

    @property
    def status(self) -> Status:
        """The worst status of the checks (skipped checks do not count)."""
        order: list[Status] = ["ok", "warn", "fail"]
        worst = 0
        for check in self.checks:
            if check.status != "skip":
                worst = max(worst, order.index(check.status))
        return order[worst]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "kind": self.kind,
            "target": self.target,
            "started_at": self.started_at.isoformat(),
            "status": self.status,
            "checks": [asdict(c) for c in self.checks],
        }


def _version_check(name: str, version: str | None) -> Check:
    if version is None:
        return Check(name, "warn", "no version reported yet")
    if version != __version__:
        return Check(name, "warn", f"runs {version}, this server runs {__version__}")
    return Check(name, "ok", f"runs {version}, same as this server")


def _reachability(url: str, settings: ServerSettings, now: datetime) -> list[Check]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [Check("reachability", "skip", f"no usable URL ({url!r})")]
    checks: list[Check] = []
    ca = settings.ca_cert
    if parts.scheme == "https":
        port = parts.port or 443
        tls = probe_tls(f"{parts.hostname}:{port}", 5.0, now, ca)
        if not tls.ok:
            checks.append(Check("tls handshake", "fail", tls.error or "failed"))
        else:
            days = tls.cert_days_left
            status: Status = "warn" if days is not None and days < CERT_WARN_DAYS else "ok"
            checks.append(
                Check(
                    "tls handshake",
                    status,
                    f"certificate valid for {days} more days"
                    if days is not None
                    else "handshake ok",
                    tls.latency_ms,
                    {"cert_days_left": days},
                )
            )
    health = probe_http(url.rstrip("/") + "/healthz", 5.0, now, ca)
    checks.append(
        Check(
            "health endpoint",
            "ok" if health.ok else "fail",
            f"HTTP {health.status}" if health.ok else (health.error or "failed"),
            health.latency_ms,
        )
    )
    return checks


def _disk_checks(health: dict[str, Any]) -> list[Check]:
    checks = []
    for disk in health.get("disks", []) or []:
        total, free = disk.get("total_bytes"), disk.get("free_bytes")
        if not total or free is None:
            continue
        fraction = free / total
        status: Status = "ok"
        if fraction < DISK_WARN_FRACTION / 10:
            status = "fail"
        elif fraction < DISK_WARN_FRACTION:
            status = "warn"
        label = disk.get("role") or disk.get("path") or "disk"
        checks.append(
            Check(f"free disk ({label})", status, f"{fraction:.1%} free ({free} bytes)", data=disk)
        )
    return checks


def _open_alarms(session: Session, *conditions: Any) -> Check:
    rows = list(
        session.scalars(
            select(Alarm)
            .where(Alarm.cleared_at.is_(None), *conditions)
            .order_by(Alarm.severity.desc(), Alarm.last_occurrence.desc())
            .limit(10)
        )
    )
    if not rows:
        return Check("open alarms", "ok", "none")
    worst = max(a.severity for a in rows)
    summary = "; ".join(f"#{a.id} {a.alert_group}: {a.summary}" for a in rows[:3])
    return Check(
        "open alarms",
        "fail" if worst >= 4 else "warn",
        f"{len(rows)} open (worst first): {summary}",
        data={"alarm_ids": [a.id for a in rows]},
    )


def _diagnose_node(
    session: Session, catalog: Catalog, settings: ServerSettings, name: str, now: datetime
) -> list[Check]:
    node = session.scalars(select(ServerNode).where(ServerNode.name == name)).first()
    if node is None:
        raise DiagnosisTargetNotFoundError(f"no server node named {name!r}")
    checks: list[Check] = []
    if node.last_seen_at is None:
        checks.append(Check("last report", "fail", "the node never reported its health"))
    else:
        age = (now - node.last_seen_at).total_seconds()
        status: Status = "ok" if age < 300 else "fail"
        checks.append(Check("last report", status, f"{age:.0f} s ago", data={"age_seconds": age}))
    checks.append(_version_check("version", node.version))
    checks.extend(_reachability(node.url, settings, now) if node.url else [])
    checks.extend(_disk_checks(node.health or {}))
    database = database_health(catalog)
    checks.append(
        Check(
            "database",
            "ok" if database["ok"] else "fail",
            "SELECT 1 answered" if database["ok"] else database.get("error", "failed"),
            database.get("latency_ms"),
        )
    )
    checks.append(_store_check(settings, name))
    checks.append(_open_alarms(session, Alarm.entity.in_([f"node:{name}", f"gateway:{name}"])))
    return checks


def _store_check(settings: ServerSettings, name: str) -> Check:
    from vaultwatch.store.url import open_store

    try:
        store = open_store(settings.vault_url)
    except Exception as exc:
        return Check("store read and write", "fail", f"cannot open the store: {exc}"[:500])
    try:
        result = store_health(store, f"diagnose-{name}")
    finally:
        store.close()
    return Check(
        "store read and write",
        "ok" if result["ok"] else "fail",
        "wrote, read back and deleted a probe object"
        if result["ok"]
        else result.get("error", "failed"),
        result.get("latency_ms"),
    )


def _find_agent(session: Session, name: str) -> Agent:
    try:
        agent = session.get(Agent, uuid.UUID(name))
        if agent is not None:
            return agent
    except ValueError:
        pass
    found = list(session.scalars(select(Agent).where(func.lower(Agent.hostname) == name.lower())))
    if not found:
        raise DiagnosisTargetNotFoundError(f"no agent with id or hostname {name!r}")
    if len(found) > 1:
        ids = ", ".join(str(a.id) for a in found)
        raise ValidationError(f"several agents are named {name!r}; give the id: {ids}")
    return found[0]


def _diagnose_agent(session: Session, name: str, now: datetime) -> list[Check]:
    agent = _find_agent(session, name)
    checks: list[Check] = []
    if agent.retired_at is not None:
        checks.append(Check("enrolment", "warn", f"retired at {agent.retired_at.isoformat()}"))
    if agent.last_seen_at is None:
        checks.append(Check("heartbeat", "fail", "no heartbeat ever received"))
    else:
        age = now - agent.last_seen_at
        status: Status = "ok" if age < SILENT_AFTER else "fail"
        checks.append(
            Check(
                "heartbeat",
                status,
                f"last heartbeat {age.total_seconds():.0f} s ago",
                data={"last_seen_at": agent.last_seen_at.isoformat()},
            )
        )
    checks.append(_version_check("agent version", agent.version))
    if agent.gateway_reachable is False:
        checks.append(
            Check("gateway reachability", "fail", "the agent reports no gateway reachable")
        )
    elif agent.gateway_reachable:
        checks.append(Check("gateway reachability", "ok", "the agent reaches its gateway"))
    if agent.free_disk_bytes is not None:
        checks.append(
            Check(
                "agent free disk",
                "warn" if agent.free_disk_bytes < 1024**3 else "ok",
                f"{agent.free_disk_bytes} bytes free on the agent",
            )
        )
    failed = list(
        session.scalars(
            select(Job)
            .where(Job.agent_id == agent.id, Job.state.in_([JobState.FAILED, JobState.PARTIAL]))
            .order_by(Job.created_at.desc())
            .limit(5)
        )
    )
    recent = [e for job in failed for e in (job.errors or [])[-2:]]
    checks.append(
        Check(
            "recent job errors",
            "warn" if failed else "ok",
            "; ".join(recent[:5]) if recent else ("none" if not failed else "jobs failed"),
            data={"job_ids": [str(j.id) for j in failed]},
        )
    )
    checks.append(
        Check(
            "last reported state",
            "ok",
            f"host facts: {', '.join(sorted((agent.host_facts or {}).keys())) or 'none'}",
            data={"host_facts": dict(agent.host_facts or {})},
        )
    )
    checks.append(_open_alarms(session, Alarm.agent_id == agent.id))
    return checks


def _diagnose_tenant(
    session: Session, settings: ServerSettings, name: str, now: datetime
) -> list[Check]:
    tenant = find_tenant(session, name)
    if tenant is None:
        try:
            tenant = session.get(Tenant, uuid.UUID(name))
        except ValueError:
            tenant = None
    if tenant is None:
        raise DiagnosisTargetNotFoundError(f"no tenant named {name!r}")
    agents = list(
        session.scalars(
            select(Agent).where(Agent.tenant_id == tenant.id, Agent.retired_at.is_(None))
        )
    )
    silent = [a for a in agents if a.last_seen_at is None or now - a.last_seen_at > SILENT_AFTER]
    checks = [
        Check(
            "agents",
            "warn" if silent else "ok",
            f"{len(agents)} active, {len(silent)} silent"
            + (f": {', '.join(a.hostname for a in silent[:5])}" if silent else ""),
            data={"silent": [str(a.id) for a in silent]},
        ),
        _vault_check(settings, str(tenant.id)),
        _open_alarms(session, Alarm.tenant_id == tenant.id),
    ]
    return checks


def _vault_check(settings: ServerSettings, tenant_id: str) -> Check:
    from vaultwatch.store.url import open_store

    location = settings.vault_location(tenant_id)
    try:
        store = open_store(location)
        try:
            next(iter(store.list("keys")), None)
        finally:
            store.close()
    except Exception as exc:
        return Check("vault", "fail", f"cannot list the vault at {location}: {exc}"[:500])
    return Check("vault", "ok", f"the vault at {location} answers")


def diagnose(
    catalog: Catalog,
    settings: ServerSettings,
    kind: str,
    name: str,
    *,
    alarm_id: int | None = None,
    actor: str = "system:diagnostics",
) -> Report:
    """Run the checks for `kind` `name`; with `alarm_id`, attach the report to its journal."""
    if kind not in KINDS:
        raise ValidationError(f"cannot diagnose {kind!r}: choose one of {', '.join(KINDS)}")
    name = name.strip()
    if not name or len(name) > 255:
        raise ValidationError("give the name (or id) of what to diagnose")
    with catalog.session() as session:
        now = database_now(session)
        if alarm_id is not None:
            alarms.get_alarm(session, alarm_id)  # refuse an unknown alarm before working
        if kind in ("node", "gateway"):
            checks = _diagnose_node(session, catalog, settings, name, now)
        elif kind == "agent":
            checks = _diagnose_agent(session, name, now)
        else:
            checks = _diagnose_tenant(session, settings, name, now)
    report = Report(kind=kind, target=name, started_at=now, checks=checks)
    if alarm_id is not None:
        with catalog.session() as session:
            alarm = alarms.get_alarm(session, alarm_id)
            alarms.journal(
                session,
                alarm,
                actor,
                "diagnose",
                f"diagnostics of {kind} {name}: {report.status}",
                report.to_dict(),
            )
    return report
