"""The whole system on loopback for e2e tests: a real server (TLS, own CA) and real agent processes.

Everything is driven through the ``vaultwatch`` command as an operator and
an installer would (server init, tenant, token, agent enroll, agent run);
only the server process is started by a small script that adds a log of
vault uploads (see server_proc.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from vaultwatch.engine.repository import Repository
from vaultwatch.store.local import LocalStore

SERVER_PROC = Path(__file__).with_name("server_proc.py")
VW = [sys.executable, "-c", "import sys; from vaultwatch.cli.main import main; sys.argv[0] = 'vaultwatch'; main()"]  # fmt: skip


_STARTED: list[subprocess.Popen[bytes]] = []


def kill_leftovers() -> None:
    """Kill every process a test started and did not stop (a failed test must not leave any)."""
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vw(*args: str, cwd: Path | None = None) -> str:
    """Run the vaultwatch command; its stdout (fails the test with its stderr on error)."""
    proc = subprocess.run(
        [*VW, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"vaultwatch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
        )
    return proc.stdout


def wait_for(what: str, predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll until ``predicate`` returns something truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Server:
    """The server process (gateway role and the rest) on a fixed port, restartable."""

    def __init__(self, data_dir: Path, port: int, ca: Path, events: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.ca = ca
        self.events = events
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(SERVER_PROC),
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--events",
                    str(self.events),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _STARTED.append(self.proc)

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                ctx = ssl.create_default_context(cafile=str(self.ca))
                return httpx.get(self.url + "/healthz", verify=ctx, timeout=2).is_success
            except httpx.HTTPError:
                return False

        wait_for("the server to answer", healthy, 30)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def uploads(self) -> list[dict[str, Any]]:
        """Every vault upload event the server logged so far."""
        if not self.events.exists():
            return []
        return [json.loads(line) for line in self.events.read_text().splitlines() if line]


@dataclass
class Service:
    """A running service with one tenant."""

    root: Path
    server: Server
    tenant_id: str

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def vault_dir(self) -> Path:
        return self.data_dir / "vaults" / self.tenant_id

    def token(self) -> str:
        doc = json.loads(vw("admin", "token", "create", "--tenant", "acme", "--data-dir", str(self.data_dir), "--json"))  # fmt: skip
        return str(doc["token"])

    def open_vault(self, passphrase: str) -> Repository:
        """The tenant's vault read directly from the server's disk, with the customer's passphrase."""
        return Repository.open(LocalStore(self.vault_dir), passphrase)


def start_service(root: Path) -> Service:
    """server init, tenant create, server run."""
    data_dir = root / "server"
    port = free_port()
    vw("server", "init", "--data-dir", str(data_dir), "--port", str(port))
    tenant = json.loads(vw("admin", "tenant", "create", "acme", "--data-dir", str(data_dir), "--json"))  # fmt: skip
    server = Server(
        data_dir, port, data_dir / "tls" / "ca.pem", root / "uploads.jsonl", root / "server.log"
    )
    server.start()
    return Service(root, server, str(tenant["id"]))


class Agent:
    """An enrolled agent process protecting some backup sets."""

    def __init__(
        self,
        root: Path,
        service: Service,
        url: str,
        sets: list[dict[str, Any]],
        *,
        agent: dict[str, Any] | None = None,
        network: dict[str, Any] | None = None,
        metrics_port: int | None = None,
        hostname: str = "e2e-host",
        enroll_args: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.config = root / "etc" / "agent.toml"
        self.state_dir = root / "state"
        self.log = root / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        vw(
            "agent",
            "enroll",
            "--server",
            url,
            "--token",
            service.token(),
            "--ca-cert",
            str(service.server.ca),
            "--config",
            str(self.config),
            "--state-dir",
            str(self.state_dir),
            "--hostname",
            hostname,
            *enroll_args,
        )
        doc = tomllib.loads(self.config.read_text())
        doc["agent"].update(agent or {})
        doc["backup_set"] = sets
        if network:
            doc["network"] = network
        if metrics_port is not None:
            doc["metrics"] = {"enabled": True, "address": "127.0.0.1", "port": metrics_port}
        self.config.write_text(tomli_w.dumps(doc))
        self.passphrase_path = root / "etc" / "passphrase"
        self.passphrase = self.passphrase_path.read_text().splitlines()[0]

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*VW, "agent", "run", "--config", str(self.config), "--log-format", "text"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _STARTED.append(self.proc)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def status(self) -> dict[str, Any]:
        """status.json as the daemon last wrote it ({} before the first write)."""
        try:
            doc = json.loads((self.state_dir / "status.json").read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def status_cli(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(vw("agent", "status", "--config", str(self.config), "--json"))  # fmt: skip
        return out

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float) -> Any:
        """wait_for, failing early if the agent died and showing its log on failure."""

        def check() -> Any:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the agent exited ({self.proc.returncode}):\n{self.tail()}")
            return predicate()

        try:
            return wait_for(what, check, timeout, 0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nagent log:\n{self.tail()}") from None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def data_puts(events: list[dict[str, Any]]) -> Counter[str]:
    """How many times each pack was sent (every PUT that reached the server, cut or not)."""
    return Counter(e["name"] for e in events if e["event"] == "start" and e["name"].startswith("data/"))  # fmt: skip


def resent_packs(events: list[dict[str, Any]]) -> int:
    """Sends of a pack beyond its first."""
    return sum(n - 1 for n in data_puts(events).values())


def sent_data_bytes(events: list[dict[str, Any]]) -> int:
    """Bytes of every pack upload that reached the server (declared sizes, cut ones included)."""
    return sum(e["size"] for e in events if e["event"] == "start" and e["name"].startswith("data/"))  # fmt: skip


def inflight_data_puts(events: list[dict[str, Any]]) -> list[str]:
    """Packs whose upload has started and not been answered yet."""
    open_: Counter[str] = Counter()
    for e in events:
        if e["name"].startswith("data/"):
            open_[e["name"]] += 1 if e["event"] == "start" else -1
    return [n for n, c in open_.items() if c > 0]


def make_data(root: Path, total: int, seed: int = 1) -> None:
    """Incompressible files of mixed sizes adding up to ``total`` bytes."""
    rng = __import__("random").Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    written = i = 0
    while written < total:
        size = min(total - written, rng.choice([4096, 65536, 700_000, 3_000_000, 9_000_000]))
        sub = root / f"dir{i % 5}"
        sub.mkdir(exist_ok=True)
        (sub / f"file{i:04d}.bin").write_bytes(os.urandom(size))
        written += size
        i += 1


def tree_digest(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file below ``root``."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = p.read_bytes()
    return out
