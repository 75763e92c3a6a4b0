"""Synthetic probes against real servers on 127.0.0.1: TCP, TLS and HTTP."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.soc_models import Alarm, Probe, Severity
from vaultwatch.gateway.tls import TlsFiles, create_ca_and_server_cert
from vaultwatch.soc.clock import ManualClock
from vaultwatch.soc.duties import Duty, DutyRunner
from vaultwatch.soc.monitors import MonitorSettings
from vaultwatch.soc.monitors.probes import probe_duty, run_probe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Listener:
    """A TCP (optionally TLS) server that accepts and completes handshakes."""

    def __init__(self, port: int = 0, context: ssl.SSLContext | None = None) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = int(self.sock.getsockname()[1])
        self.context = context
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                if self.context is not None:
                    conn = self.context.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()


def _tls(tmp_path: Path, now: datetime | None = None) -> TlsFiles:
    return create_ca_and_server_cert(tmp_path, names=["127.0.0.1"], now=now)


def _server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return context


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/ok" else 500
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


NOW = datetime.now(UTC)


def test_tcp_probe_times_a_connect_and_fails_on_a_closed_port() -> None:
    listener = _Listener()
    try:
        up = run_probe("tcp", f"127.0.0.1:{listener.port}", 2, now=NOW)
    finally:
        listener.close()
    assert up.ok and up.latency_ms is not None and up.latency_ms > 0
    down = run_probe("tcp", f"127.0.0.1:{_free_port()}", 2, now=NOW)
    assert not down.ok and down.error and "Connection refused" in down.error
    bad = run_probe("tcp", "no-port-here", 2, now=NOW)
    assert not bad.ok and "host:port" in (bad.error or "")


def test_tls_probe_verifies_and_reads_the_expiry(tmp_path: Path) -> None:
    files = _tls(tmp_path)
    listener = _Listener(context=_server_context(files))
    try:
        ok = run_probe("tls", f"127.0.0.1:{listener.port}", 3, now=NOW, ca_file=files.ca_cert)
        untrusted = run_probe("tls", f"127.0.0.1:{listener.port}", 3, now=NOW)
    finally:
        listener.close()
    assert ok.ok and ok.cert_days_left is not None and 824 < ok.cert_days_left < 826
    assert not untrusted.ok and "certificate verify failed" in (untrusted.error or "")


def test_http_probe_checks_the_status(http_port: int) -> None:
    ok = run_probe("http", f"http://127.0.0.1:{http_port}/ok", 3, now=NOW)
    assert ok.ok and ok.status == 200 and ok.latency_ms is not None
    bad = run_probe("http", f"http://127.0.0.1:{http_port}/broken", 3, now=NOW)
    assert not bad.ok and bad.status == 500 and "HTTP 500" in (bad.error or "")


def _add(catalog: Catalog, name: str, kind: str, target: str) -> None:
    with catalog.session() as session:
        session.add(
            Probe(
                name=name, kind=kind, target=target, entity=f"gateway:{name}", interval_seconds=30
            )
        )


def _alarm(catalog: Catalog, identifier: str) -> Alarm | None:
    with catalog.session() as session:
        alarm = session.scalars(select(Alarm).where(Alarm.identifier == identifier)).first()
        if alarm is not None:
            session.expunge(alarm)
        return alarm


def test_the_probe_duty_records_results_and_raises_and_clears_alarms(
    catalog: Catalog, tmp_path: Path, http_port: int
) -> None:
    port = _free_port()
    files = _tls(tmp_path, now=datetime.now(UTC) - timedelta(days=815))  # 10 days left
    tls = _Listener(context=_server_context(files))
    _add(catalog, "gw1-tcp", "tcp", f"127.0.0.1:{port}")
    _add(catalog, "gw1-tls", "tls", f"127.0.0.1:{tls.port}")
    _add(catalog, "web-http", "http", f"http://127.0.0.1:{http_port}/ok")
    clock = ManualClock(datetime.now(UTC))
    from vaultwatch.server_config import ServerSettings

    settings = ServerSettings(
        data_dir=tmp_path,
        catalog_url="",
        vault_url="",
        tls_cert=files.cert,
        tls_key=files.key,
        ca_cert=files.ca_cert,
        token_key_file=tmp_path / "k",
    )
    duty = Duty("monitor.probes", 1.0, probe_duty(MonitorSettings(), settings))
    runner = DutyRunner(catalog, [duty], holder="node-a", clock=clock)
    try:
        runner.tick()
        with catalog.session() as session:
            rows = {p.name: p for p in session.scalars(select(Probe))}
        assert rows["gw1-tcp"].last_ok is False and "refused" in (rows["gw1-tcp"].last_error or "")
        assert rows["web-http"].last_ok is True and rows["web-http"].last_latency_ms
        assert rows["gw1-tls"].last_ok is True
        down = _alarm(catalog, "probe:gw1-tcp|probe.tcp")
        assert down is not None and down.severity == Severity.MAJOR
        assert down.entity == "gateway:gw1-tcp" and down.cleared_at is None
        expiring = _alarm(catalog, "probe:gw1-tls|probe.tls")
        assert expiring is not None and expiring.severity == Severity.MINOR
        assert "expires in 10 days" in expiring.summary
        assert _alarm(catalog, "probe:web-http|probe.http") is None

        listener = _Listener(port)  # the target comes up
        try:
            clock.advance(10)
            runner.tick()  # not due yet: each probe runs at its own interval
            assert _alarm(catalog, "probe:gw1-tcp|probe.tcp").cleared_at is None  # type: ignore[union-attr]
            clock.advance(25)
            runner.tick()
        finally:
            listener.close()
        back = _alarm(catalog, "probe:gw1-tcp|probe.tcp")
        assert back is not None and back.cleared_at is not None and back.tally == 1
    finally:
        tls.close()
