"""The demo: the whole service on its embedded defaults, on this machine.

It runs what an operator and a customer would run, as separate processes:
``server init`` (SQLite catalog, local vault, own CA), ``admin tenant create``,
``admin token create``, ``server run``, ``agent enroll`` and ``agent run`` with a
continuous backup set over a sample folder. Then it watches the customer's
vault the way the customer can (with their passphrase) and reports every new
snapshot. ``once`` mode proves the chain end to end and exits: a file written
into the protected folder shows up in a snapshot and restores byte-identical.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import RestoreOptions, restore
from vaultwatch.errors import VaultwatchError
from vaultwatch.files import write_private
from vaultwatch.passphrases import read_passphrase_file
from vaultwatch.server import port_in_use
from vaultwatch.server_config import DEFAULT_PORT
from vaultwatch.store.url import open_store

TENANT = "Demo Customer"
HOST = "127.0.0.1"
SAMPLE_FILES = {
    "documents/welcome.txt": "Every change in this folder is backed up within seconds.\n",
    "documents/notes.md": "# Notes\n\n- write something here and watch the snapshot appear\n",
    "projects/app/main.py": "print('hello from a protected server')\n",
    "projects/app/config.toml": "[app]\nname = 'demo'\n",
}


class DemoError(VaultwatchError):
    """The demo could not set up or run the service."""


@dataclass(frozen=True)
class DemoLayout:
    """Where the demo keeps everything (one folder, safe to delete)."""

    root: Path

    @property
    def server_dir(self) -> Path:
        return self.root / "server"

    @property
    def agent_config(self) -> Path:
        return self.root / "agent" / "agent.toml"

    @property
    def agent_state(self) -> Path:
        return self.root / "agent" / "state"

    @property
    def protected(self) -> Path:
        return self.root / "protected"

    @property
    def facts(self) -> Path:
        return self.root / "demo.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


@dataclass(frozen=True)
class DemoFacts:
    """What setup produced, kept in demo.json (0600) so a second run shows it again."""

    url: str
    admin_email: str
    admin_password: str
    tenant_id: str
    vault: str
    agent_id: str
    passphrase_file: str
    ca_cert: str


def _cli(*args: str) -> str:
    """Run one real `vaultwatch` command; DemoError with its message if it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "vaultwatch.cli", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no message"
        raise DemoError(f"`vaultwatch {' '.join(args[:3])}` failed: {message}")
    return proc.stdout


def choose_port(port: int | None, report: Callable[[str], None]) -> int:
    """The port for a new demo: the one asked for if free, else (none asked) any free one."""
    if port is not None:
        if port_in_use(HOST, port):
            raise DemoError(
                f"port {port} on {HOST} is in use: stop what listens there or choose another "
                "with --port"
            )
        return port
    if not port_in_use(HOST, DEFAULT_PORT):
        return DEFAULT_PORT
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        free = int(probe.getsockname()[1])
    report(f"port {DEFAULT_PORT} is in use: the demo uses port {free}")
    return free


def demo_port(facts: DemoFacts) -> int:
    """The port the demo was set up on (the agent's configuration points at it)."""
    return int(facts.url.rsplit(":", 1)[1])


def setup(layout: DemoLayout, port: int | None, report: Callable[[str], None]) -> DemoFacts:
    """Initialise server, tenant, token, sample folder and agent (only on the first run)."""
    if layout.facts.exists():
        return DemoFacts(**json.loads(layout.facts.read_text()))
    if layout.root.exists() and any(layout.root.iterdir()):
        raise DemoError(f"{layout.root} exists but holds no demo: remove it or choose --dir")
    port = choose_port(port, report)
    layout.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    report("initialising the server (SQLite catalog, local vault, own certificate authority)")
    init = json.loads(
        _cli("server", "init", "--data-dir", str(layout.server_dir), "--port", str(port), "--json")
    )
    report("creating the tenant and an enrollment token")
    tenant = json.loads(
        _cli("admin", "tenant", "create", TENANT, "--data-dir", str(layout.server_dir), "--json")
    )
    token = json.loads(
        _cli(
            "admin",
            "token",
            "create",
            "--tenant",
            TENANT,
            "--data-dir",
            str(layout.server_dir),
            "--expires",
            "1h",
            "--json",
        )
    )
    for rel, text in SAMPLE_FILES.items():
        path = layout.protected / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    ca = str(init.get("ca_cert") or layout.server_dir / "tls" / "ca.pem")
    url = f"https://{HOST}:{port}"
    with running(layout, "server", _server_argv(layout, port)):
        wait_healthy(url, Path(ca))
        report("enrolling the agent with the token")
        enrolled = json.loads(
            _cli(
                "agent",
                "enroll",
                "--server",
                url,
                "--token",
                token["token"],
                "--ca-cert",
                ca,
                "--config",
                str(layout.agent_config),
                "--state-dir",
                str(layout.agent_state),
                "--json",
            )
        )
    with open(layout.agent_config, "a") as f:
        f.write(
            "\n[[backup_set]]\n"
            'name = "demo-folder"\n'
            f"paths = [{json.dumps(str(layout.protected))}]\n"
            'mode = "continuous"\n'
            'quiet = "1s"\n'
            'max_delay = "5s"\n'
        )
    facts = DemoFacts(
        url=url,
        admin_email=str(init.get("admin_email") or ""),
        admin_password=str(init.get("admin_password") or ""),
        tenant_id=str(tenant["id"]),
        vault=str(tenant["vault"]),
        agent_id=str(enrolled["agent_id"]),
        passphrase_file=str(enrolled["passphrase_file"]),
        ca_cert=ca,
    )
    write_private(layout.facts, json.dumps(facts.__dict__, indent=1).encode(), exclusive=True)
    return facts


def _server_argv(layout: DemoLayout, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vaultwatch.cli",
        "server",
        "run",
        "--data-dir",
        str(layout.server_dir),
        "--host",
        HOST,
        "--port",
        str(port),
    ]


def _agent_argv(layout: DemoLayout) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vaultwatch.cli",
        "agent",
        "run",
        "--config",
        str(layout.agent_config),
        "--log-format",
        "json",
    ]


@contextmanager
def running(layout: DemoLayout, name: str, argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """A service process with its log in logs/<name>.log, stopped (SIGTERM, then SIGKILL) at exit."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    with open(layout.logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(url: str, ca: Path, timeout: float = 30.0) -> None:
    """Wait until the server answers /healthz over TLS with its own CA."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", context=context, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise DemoError(f"the server did not answer at {url} within {timeout:.0f}s (see logs/)")
        time.sleep(0.2)


class VaultWatcher:
    """Reads the tenant's vault as its customer can: with the passphrase, no server needed."""

    def __init__(self, facts: DemoFacts) -> None:
        self.facts = facts
        self._repo: Repository | None = None

    def _open(self) -> Repository | None:
        if self._repo is None:
            store = open_store(self.facts.vault)
            if not store.exists("config"):
                return None  # the agent has not created the vault yet
            passphrase = read_passphrase_file(Path(self.facts.passphrase_file))
            self._repo = Repository.open(store, passphrase)
        return self._repo

    def snapshots(self) -> list[tuple[str, str, int]]:
        """(short id, time, files) of every snapshot, oldest first."""
        repo = self._open()
        if repo is None:
            return []
        out = []
        for snap in repo.snapshots():
            files = int(snap.summary.get("files_new", 0)) + int(
                snap.summary.get("files_changed", 0)
            )
            files += int(snap.summary.get("files_unmodified", 0))
            out.append((snap.short_id, snap.time.astimezone().strftime("%H:%M:%S"), files))
        return out

    def restore_file(self, path: Path, into: Path) -> bytes | None:
        """The file's content in the latest snapshot that has it, restored for real."""
        repo = self._open()
        if repo is None:
            return None
        repo.load_index(reload=True)
        snaps = repo.snapshots()
        if not snaps:
            return None
        shutil.rmtree(into, ignore_errors=True)
        try:
            result = restore(repo, snaps[-1], into, RestoreOptions(includes=[str(path)]))
        except VaultwatchError:
            return None
        target = into / str(path).lstrip("/")
        if result.errors or not target.is_file():
            return None
        return target.read_bytes()


def prove(
    layout: DemoLayout, watcher: VaultWatcher, report: Callable[[str], None], timeout: float = 90.0
) -> float:
    """Write a new file into the protected folder; seconds until it restores byte-identical."""
    marker = layout.protected / "documents" / f"proof-{int(time.time())}.txt"
    content = f"written at {time.time()}\n".encode()
    marker.write_bytes(content)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vaultwatch-demo-restore-") as tmp:
        while time.monotonic() - started < timeout:
            if watcher.restore_file(marker, Path(tmp)) == content:
                seconds = time.monotonic() - started
                report(
                    f"{marker.name} was protected and restored byte-identical after {seconds:.1f}s"
                )
                return seconds
            time.sleep(0.5)
    raise DemoError(f"{marker} did not appear in a snapshot within {timeout:.0f}s (see logs/)")


def run_demo(
    root: Path,
    port: int | None,
    *,
    once: bool,
    report: Callable[[str], None],
    show: Callable[[DemoFacts, DemoLayout], None],
    tick: Callable[[list[tuple[str, str, int]]], None],
) -> float | None:
    """Set up (first time), start server and agent, then watch (or prove and stop).

    ``port`` None: 8443, or any free port when that one is taken. A demo that
    is set up keeps its port (the agent is enrolled against that URL).
    """
    layout = DemoLayout(Path(os.path.abspath(root)))
    facts = setup(layout, port, report)
    if port is not None and port != demo_port(facts):
        report(f"this demo was set up on port {demo_port(facts)}: --port applies to a new --dir")
    port = demo_port(facts)
    if port_in_use(HOST, port):
        raise DemoError(
            f"port {port} on {HOST} is in use (this demo was set up on it): stop what "
            f"listens there, or remove {layout.root} to set the demo up again on another port"
        )
    with running(layout, "server", _server_argv(layout, port)) as server:
        wait_healthy(facts.url, Path(facts.ca_cert))
        with running(layout, "agent", _agent_argv(layout)) as agent:
            show(facts, layout)
            watcher = VaultWatcher(facts)
            if once:
                return prove(layout, watcher, report)
            seen = -1
            while True:
                for name, proc in (("server", server), ("agent", agent)):
                    if proc.poll() is not None:
                        raise DemoError(
                            f"the {name} stopped (exit {proc.returncode}); see {layout.logs}"
                        )
                with suppress(VaultwatchError, OSError):
                    snaps = watcher.snapshots()
                    if len(snaps) != seen:
                        seen = len(snaps)
                        tick(snaps)
                time.sleep(1.0)
