"""A real Vaultwatch service on loopback for the service benchmarks, and what they share.

The server runs as its own process (``vaultwatch server run``), as in production, so
whatever drives load in the benchmark never shares its interpreter (or its GIL). Tenants
and enrollment tokens are made through the catalog's domain functions, the way the admin
commands make them; agents enroll over the API, the way the installer does. Everything
listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.backup_bench import machine_info
from bench.tools import REPO_ROOT, Vaultwatch, write_results
from vaultwatch.catalog import Catalog, audit
from vaultwatch.catalog.enrollment import create_enrollment_token
from vaultwatch.catalog.tenants import create_tenant
from vaultwatch.server import init_server
from vaultwatch.server_config import ServerSettings

LOOPBACK = "127.0.0.1"
ACTOR = audit.system_actor("bench")
PG_URL_ENV = "VAULTWATCH_TEST_POSTGRES_URL"
ENSURE_POSTGRES = REPO_ROOT / "scripts" / "ensure-postgres.sh"
RESULTS_DIR = REPO_ROOT / "bench" / "results"
WORK_DIR = REPO_ROOT / "bench" / "work"


def vaultwatch_binary() -> str:
    """The CLI the backup benchmark measures (``$VAULTWATCH_BIN`` or the project's venv)."""
    return Vaultwatch(WORK_DIR).binary


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: how busy the shared machine was."""
    return [round(x, 2) for x in os.getloadavg()]


def host_info() -> dict[str, Any]:
    """The backup benchmark's machine description plus the load right now."""
    return {**machine_info(), "load_average": load_average()}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (the server's workers)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def connections_per_worker(server_pid: int, port: int) -> list[int]:
    """Open connections to `port` held by each worker of the server, most first.

    The workers share one listening socket and the kernel gives a new
    connection to whichever accepts first, so a few long-lived client
    connections can land 3 to 1 or 4 to 0; a run's figures depend on it.
    """
    counts = []
    for pid in child_pids(server_pid):
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        ours = [c for c in connections if c.laddr and c.laddr.port == port]
        if any(c.status == psutil.CONN_LISTEN for c in ours):  # a worker, not a helper process
            counts.append(sum(1 for c in ours if c.status == psutil.CONN_ESTABLISHED))
    return sorted(counts, reverse=True)


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, mean, min, p50, p95, p99 and max (linear interpolation, as numpy's default)."""
    data = sorted(values)
    out: dict[str, float | int | None] = {"count": len(data)}
    if not data:
        out.update(mean=None, min=None, p50=None, p95=None, p99=None, max=None)
        return out

    def q(p: float) -> float:
        pos = (len(data) - 1) * p
        lo, hi = math.floor(pos), math.ceil(pos)
        return data[lo] + (data[hi] - data[lo]) * (pos - lo)

    out.update(
        mean=sum(data) / len(data), min=data[0], p50=q(0.50), p95=q(0.95), p99=q(0.99), max=data[-1]
    )
    return out


def now_iso() -> str:
    """The start time recorded in every result file."""
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- PostgreSQL --------------------------------------------------------------------------------


def postgres_server_url() -> str:
    """A PostgreSQL URL whose role may create databases (scripts/ensure-postgres.sh provides it)."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        return url
    proc = subprocess.run(
        [str(ENSURE_POSTGRES)], capture_output=True, text=True, timeout=900, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"PostgreSQL is not available: {proc.stderr.strip()[-500:]}")
    return lines[-1]


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database for one run (dropped afterwards), as a catalog URL."""
    base = make_url(server_url)
    name = f"vwbench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# -- the server ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolled:
    """An agent enrolled over the API."""

    agent_id: str
    credential: str
    tenant_id: uuid.UUID


class ServerProcess:
    """``vaultwatch server run`` on a loopback port, over TLS with the data directory's own CA."""

    def __init__(self, settings: ServerSettings, port: int, log: Path, log_level: str) -> None:
        self.settings = settings
        self.port = port
        self.log = log
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        assert settings.ca_cert is not None, "the benchmark server makes its own CA"
        self.ca_cert: Path = settings.ca_cert
        self.catalog = Catalog(settings.catalog_url)

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts exactly this server's CA, as agents do."""
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def argv(self) -> list[str]:
        return [
            vaultwatch_binary(),
            "server",
            "run",
            "--data-dir",
            str(self.settings.data_dir),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
        ]

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until /healthz answers."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        ctx = self.ssl_context()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", verify=ctx, timeout=2).is_success:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not answer within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM (uvicorn's graceful shutdown), SIGKILL if that takes too long."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        self.catalog.dispose()

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def cpu_seconds(self) -> float:
        """The server's CPU so far, its worker processes included."""
        if self.proc is None:
            return 0.0
        return process_cpu_seconds(self.pid) + sum(
            process_cpu_seconds(child) for child in child_pids(self.pid)
        )

    # -- what an operator and an installer do -------------------------------------------------

    def create_tenant(self, name: str) -> uuid.UUID:
        """A new tenant (its vault is provisioned when its first agent enrolls)."""
        with self.catalog.session() as session:
            return create_tenant(session, name, actor=ACTOR).id

    def tokens(self, tenant_id: uuid.UUID, count: int) -> list[str]:
        """``count`` single-use enrollment tokens for the tenant, made in one transaction."""
        key = self.settings.token_key()
        with self.catalog.session() as session:
            return [
                create_enrollment_token(
                    session, tenant_id, key=key, created_by=ACTOR, ttl=timedelta(hours=6)
                ).plaintext
                for _ in range(count)
            ]

    def enroll(
        self, client: httpx.Client, token: str, hostname: str, tenant_id: uuid.UUID
    ) -> Enrolled:
        """Redeem a token over the API, as ``vaultwatch agent enroll`` does."""
        r = client.post(
            f"{self.url}/api/v1/enroll",
            json={
                "token": token,
                "hostname": hostname,
                "agent_version": "bench",
                "platform": "Linux bench x86_64",
            },
        )
        if r.status_code != 201:
            raise RuntimeError(f"enrollment refused ({r.status_code}): {r.text[:300]}")
        doc = r.json()
        return Enrolled(str(doc["agent_id"]), str(doc["credential"]), tenant_id)

    def vault_dir(self, tenant_id: uuid.UUID) -> Path:
        """The tenant's vault on the server's disk (the default local vault storage)."""
        return Path(self.settings.vault_location(str(tenant_id)))


@contextmanager
def running_server(
    data_dir: Path,
    *,
    catalog_url: str | None = None,
    log_level: str = "warning",
) -> Iterator[ServerProcess]:
    """Initialise a data directory (SQLite catalog unless a URL is given) and run its server."""
    port = free_port()
    result = init_server(data_dir, catalog_url=catalog_url, host=LOOPBACK, port=port)
    server = ServerProcess(result.settings, port, data_dir.parent / "server.log", log_level)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def engine_name(catalog_url: str) -> str:
    """``sqlite`` or ``postgresql``."""
    return (
        "postgresql"
        if make_url(catalog_url).get_backend_name().startswith("postgres")
        else "sqlite"
    )


def describe_catalog(catalog_url: str) -> str:
    """The catalog URL without its password, for reports."""
    return make_url(catalog_url).render_as_string(hide_password=True)


def fmt_seconds(value: float | None, unit: str = "s") -> str:
    """A latency for tables: ms below a second, seconds above."""
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value * 1000:,.1f} ms"
    return f"{value:,.2f} s"


def os_env_without_secrets() -> dict[str, str]:
    """The environment for children, without any passphrase or credential of the caller."""
    env = dict(os.environ)
    for name in ("VAULTWATCH_PASSPHRASE", "VAULTWATCH_AGENT_CREDENTIAL"):
        env.pop(name, None)
    return env


# -- what every service benchmark's command line and report share ----------------------------


def add_output_options(parser: argparse.ArgumentParser, name: str) -> None:
    """``--workdir`` (default bench/work/<name>) and ``--results``."""
    parser.add_argument("--workdir", type=Path, default=WORK_DIR / name)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)


def bench_console() -> Console:
    """A console that keeps wide tables readable in a log as well as on a terminal."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def machine_section(results: dict[str, Any], shared: str, before: str = "") -> list[str]:
    """The report's closing Markdown: the machine, its load, and the command that ran."""
    m = results["machine"]
    return [
        "## Machine",
        "",
        f"{m['cpu']}, {m['cores']} cores, Python {m['python']}; load average before{before} "
        f"{results['load_average_before']}, after {m['load_average']} (a shared machine: "
        f"{shared}).",
        "",
        f"Command: `{results['command']}`",
        "",
    ]


def publish(
    name: str,
    results: dict[str, Any],
    markdown: str,
    table: Table,
    out_dir: Path,
    console: Console,
) -> None:
    """Write the JSON and Markdown results and show the table and where they went."""
    paths = write_results(name, results, markdown, out_dir)
    console.print(table)
    console.print("Wrote " + " and ".join(str(p) for p in paths))
