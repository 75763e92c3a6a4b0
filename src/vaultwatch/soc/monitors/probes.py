"""Synthetic probes: TCP connect, TLS handshake and HTTP GET, each timed.

A probe row (table `probes`) names a target and the topology entity it
vouches for. The duty runs the probes that are due in parallel, outside any
transaction (network waits must not hold the catalog), then stores every
result on its row and raises or clears ``probe.<kind>`` on the probe's
entity in one fenced transaction. A TLS or HTTPS probe also reads the
certificate's expiry and warns (MINOR) when it is near. Certificates are
verified against the system's authorities and the service's own CA.
"""

from __future__ import annotations

import functools
import http.client
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import EventSource, EventType, Probe, Severity
from vaultwatch.server_config import ServerSettings
from vaultwatch.soc.duties import DutyContext
from vaultwatch.soc.events import Event
from vaultwatch.soc.monitors import MonitorSettings, emit

KINDS = ("tcp", "tls", "http")
MAX_PARALLEL = 16


@dataclass(frozen=True)
class ProbeResult:
    """What one run of a probe found."""

    ok: bool
    latency_ms: float | None
    error: str | None = None
    cert_days_left: float | None = None
    status: int | None = None


def split_host_port(target: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ValidationError otherwise."""
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(f"probe target {target!r} must be host:port")
    return host.strip("[]"), int(port)


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verify against the system's authorities plus the service's own CA.

    Loading the system's authorities costs tens of milliseconds of CPU, and
    probes run every few seconds on the node that also ingests events: the
    context is built once per CA file version (a renewed CA file is read again).
    """
    if ca_file is None:
        return _cached_context(None, 0)
    try:
        version = ca_file.stat().st_mtime_ns
    except OSError:
        version = 0  # the load below names the problem
    return _cached_context(str(ca_file), version)


@functools.lru_cache(maxsize=8)
def _cached_context(ca_file: str | None, version: int) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def _cert_days(sock: ssl.SSLSocket, now: datetime) -> float | None:
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    return round((not_after - now).total_seconds() / 86400, 2)


def _error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    return (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:500]


def probe_tcp(target: str, timeout: float) -> ProbeResult:
    """Time a TCP connect."""
    host, port = split_host_port(target)
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            elapsed = time.perf_counter() - started
    except OSError as exc:
        return ProbeResult(ok=False, latency_ms=None, error=_error(exc))
    return ProbeResult(ok=True, latency_ms=round(elapsed * 1000, 3))


def probe_tls(target: str, timeout: float, now: datetime, ca_file: Path | None) -> ProbeResult:
    """Time a TCP connect plus a verified TLS handshake; read the certificate's expiry."""
    host, port = split_host_port(target)
    context = tls_context(ca_file)
    started = time.perf_counter()
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as sock,
        ):
            elapsed = time.perf_counter() - started
            days = _cert_days(sock, now)
    except (OSError, ssl.SSLError) as exc:
        return ProbeResult(ok=False, latency_ms=None, error=_error(exc))
    return ProbeResult(ok=True, latency_ms=round(elapsed * 1000, 3), cert_days_left=days)


def probe_http(target: str, timeout: float, now: datetime, ca_file: Path | None) -> ProbeResult:
    """Time a GET; 2xx and 3xx are up (redirects are not followed), anything else is down."""
    url = urlsplit(target)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValidationError(f"probe target {target!r} must be an http:// or https:// URL")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    connection: http.client.HTTPConnection
    if url.scheme == "https":
        connection = http.client.HTTPSConnection(
            url.hostname, url.port, timeout=timeout, context=tls_context(ca_file)
        )
    else:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    started = time.perf_counter()
    try:
        connection.request("GET", path, headers={"User-Agent": "vaultwatch-probe"})
        response = connection.getresponse()
        response.read(64 * 1024)
        elapsed = time.perf_counter() - started
        days = (
            _cert_days(connection.sock, now) if isinstance(connection.sock, ssl.SSLSocket) else None
        )
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        return ProbeResult(ok=False, latency_ms=None, error=_error(exc))
    finally:
        connection.close()
    latency = round(elapsed * 1000, 3)
    if not 200 <= response.status < 400:
        return ProbeResult(
            ok=False,
            latency_ms=latency,
            error=f"HTTP {response.status} {response.reason}",
            status=response.status,
            cert_days_left=days,
        )
    return ProbeResult(ok=True, latency_ms=latency, status=response.status, cert_days_left=days)


def run_probe(
    kind: str, target: str, timeout: float, *, now: datetime, ca_file: Path | None = None
) -> ProbeResult:
    """Run one probe of `kind` against `target`; bad targets are a failed result, not an error."""
    try:
        if kind == "tcp":
            return probe_tcp(target, timeout)
        if kind == "tls":
            return probe_tls(target, timeout, now, ca_file)
        if kind == "http":
            return probe_http(target, timeout, now, ca_file)
        raise ValidationError(f"unknown probe kind {kind!r}: use one of {', '.join(KINDS)}")
    except ValidationError as exc:
        return ProbeResult(ok=False, latency_ms=None, error=str(exc))


@dataclass(frozen=True)
class _Due:
    id: int
    name: str
    kind: str
    target: str
    entity: str
    timeout: float


def due_probes(session: Session, now: datetime) -> list[_Due]:
    """Enabled probes never run or last run at least their interval ago."""
    due: list[_Due] = []
    for probe in session.scalars(select(Probe).where(Probe.enabled.is_(True)).order_by(Probe.id)):
        if probe.last_run_at is None or probe.last_run_at + timedelta(
            seconds=probe.interval_seconds
        ) <= now + timedelta(milliseconds=500):
            due.append(
                _Due(
                    probe.id,
                    probe.name,
                    probe.kind,
                    probe.target,
                    probe.entity,
                    probe.timeout_seconds,
                )
            )
    return due


def _host(kind: str, target: str) -> str:
    try:
        if kind == "http":
            return urlsplit(target).hostname or target
        return split_host_port(target)[0]
    except ValidationError:
        return target


#: Entities whose failed probe means the thing itself is down (a correlation root).
DOWN_KINDS = frozenset({"gateway", "node", "site", "store"})


def probe_event(probe: _Due, result: ProbeResult, cert_warn_days: float) -> Event:
    """The alarm a probe result calls for: down, certificate near expiry, or a resolution.

    A failed probe of a gateway, node, site or store says that thing is down
    (``gateway.down`` ...), which makes it the root cause of the alarms below it.
    """
    group = f"probe.{probe.kind}"
    kind = probe.entity.split(":", 1)[0]
    down_group = f"{kind}.down" if kind in DOWN_KINDS else group
    attributes = {"probe": probe.name, "target": probe.target}
    if result.latency_ms is not None:
        attributes["latency_ms"] = str(result.latency_ms)
    if result.cert_days_left is not None:
        attributes["cert_days_left"] = str(result.cert_days_left)
    common = {
        "node": _host(probe.kind, probe.target),
        "alert_group": group,
        "alert_key": probe.name,
        "entity": probe.entity,
        "identifier": f"probe:{probe.name}|{group}",  # one alarm per probe, whatever it says
        "source": EventSource.PROBE,
        "attributes": attributes,
    }
    if not result.ok:
        return Event(
            **{**common, "alert_group": down_group},  # type: ignore[arg-type]
            summary=f"{probe.kind} probe {probe.name} to {probe.target} failed: {result.error}",
            severity=Severity.MAJOR,
            occurrence_key=f"error:{result.error}"[:200],
        )
    days = result.cert_days_left
    if days is not None and days < cert_warn_days:
        return Event(
            **common,  # type: ignore[arg-type]
            summary=f"certificate of {probe.target} ({probe.name}) expires in {days:.0f} days",
            severity=Severity.MINOR,
            occurrence_key="cert:expiring",
        )
    return Event(
        **common,  # type: ignore[arg-type]
        summary=f"{probe.kind} probe {probe.name} to {probe.target} succeeds",
        type=EventType.RESOLUTION,
        severity=Severity.CLEAR,
    )


def record_results(
    session: Session,
    results: list[tuple[_Due, ProbeResult]],
    now: datetime,
    cert_warn_days: float,
) -> int:
    """Store each result on its probe row and emit the alarms; returns how many alarms changed."""
    for probe, result in results:
        row = session.get(Probe, probe.id)
        if row is None:
            continue  # deleted while it ran
        row.last_run_at = now
        row.last_ok = result.ok
        row.last_latency_ms = result.latency_ms
        row.last_error = result.error[:500] if result.error else None
    session.flush()
    events = [probe_event(probe, result, cert_warn_days) for probe, result in results]
    return len(emit(session, events, now=now))


def run_probes(
    probes: list[_Due], now: datetime, ca_file: Path | None = None
) -> list[tuple[_Due, ProbeResult]]:
    """Run `probes` in parallel threads; results in the same order."""
    if not probes:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(probes))) as pool:
        futures = [
            pool.submit(run_probe, p.kind, p.target, p.timeout, now=now, ca_file=ca_file)
            for p in probes
        ]
        return [(p, f.result()) for p, f in zip(probes, futures, strict=True)]


def probe_duty(
    config: MonitorSettings, settings: ServerSettings | None = None
) -> Callable[[DutyContext], object]:
    """The leased duty: run the due probes, then record them in one fenced transaction."""
    ca_file = settings.ca_cert if settings is not None else None

    def run(context: DutyContext) -> object:
        with context.catalog.session() as session:
            started = context.now(session)
            due = due_probes(session, started)
        results = run_probes(due, started, ca_file)
        if not results:
            return 0
        with context.session() as session:
            return record_results(
                session, results, context.now(session), config.probe_cert_warn_days
            )

    return run
