"""`vaultwatch demo`: the whole service comes up on its defaults and protects a change."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from vaultwatch.engine.repository import Repository
from vaultwatch.store.url import open_store

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _argv(directory: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vaultwatch.cli", "demo", "--dir", str(directory), *extra]


def _env() -> dict[str, str]:
    """A shell where no `vaultwatch` is on PATH yet, as after `make demo`."""
    return {**os.environ, "PATH": "/usr/local/bin:/usr/bin:/bin"}


def _demo(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _argv(directory, *extra, "--once"),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=_env(),
    )


@dataclass(frozen=True)
class Demo:
    directory: Path
    port: int
    first: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """A demo folder set up by a first `--once` run."""
    directory = tmp_path_factory.mktemp("demo") / "demo"
    port = _free_port()
    return Demo(directory, port, _demo(directory, "--port", str(port)))


def test_demo_protects_a_change_and_runs_again_on_the_same_folder(demo: Demo) -> None:
    first, directory, port = demo.first, demo.directory, demo.port
    assert first.returncode == 0, first.stderr
    assert "restored byte-identical" in first.stderr
    assert f"https://127.0.0.1:{port}/api/v1/openapi.json" in first.stdout
    assert f"https://127.0.0.1:{port}/healthz" in first.stdout
    # the printed commands work as written once the printed line put `vaultwatch` on PATH
    assert f'export PATH="{ROOT / "bin"}:$PATH"' in first.stdout
    assert (ROOT / "bin" / "vaultwatch").stat().st_mode & 0o111
    facts = json.loads((directory / "demo.json").read_text())
    assert (directory / "demo.json").stat().st_mode & 0o077 == 0  # holds the admin password
    # the vault is the customer's: readable with their passphrase alone, and encrypted
    passphrase = Path(facts["passphrase_file"]).read_text().strip()
    repo = Repository.open(open_store(facts["vault"]), passphrase)
    after_first = len(repo.snapshots())
    assert after_first >= 1
    vault_bytes = b"".join(p.read_bytes() for p in Path(facts["vault"]).rglob("*") if p.is_file())
    assert b"Every change in this folder" not in vault_bytes

    second = _demo(directory)  # already set up: starts the same service again, on its port
    assert second.returncode == 0, second.stderr
    assert "initialising the server" not in second.stderr
    assert f"https://127.0.0.1:{port}/healthz" in second.stdout
    final = Repository.open(open_store(facts["vault"]), passphrase).snapshots()
    assert len(final) > after_first


def test_demo_serves_what_it_prints_and_ctrl_c_stops_it_quietly(demo: Demo) -> None:
    assert demo.first.returncode == 0, demo.first.stderr
    ca = demo.directory / "server" / "tls" / "ca.pem"
    proc = subprocess.Popen(
        _argv(demo.directory),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        assert proc.stdout is not None
        shown = ""
        deadline = time.monotonic() + 120
        while "Press Ctrl-C to stop." not in shown:
            assert time.monotonic() < deadline and proc.poll() is None, shown
            shown += proc.stdout.readline()
        urls = re.findall(r"https://127\.0\.0\.1:\d+/[^\s)]*", shown)
        assert len(urls) >= 3, shown
        context = ssl.create_default_context(cafile=str(ca))
        for url in urls:
            answer = httpx.get(url, verify=context, follow_redirects=True, timeout=10)
            assert answer.status_code == 200, (url, answer.status_code)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1].startswith("stopped")
    assert "error" not in stderr and "Traceback" not in stderr


def test_demo_says_when_the_port_it_was_given_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _demo(tmp_path / "demo", "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo").exists()  # nothing was set up


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("mine")
    result = _demo(tmp_path, "--port", str(_free_port()))
    assert result.returncode == 1
    assert "holds no demo" in result.stderr
    assert "Traceback" not in result.stderr
