"""`vaultwatch demo`: the whole service comes up on its defaults and protects a change."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from vaultwatch.engine.repository import Repository
from vaultwatch.store.url import open_store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo(directory: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "vaultwatch.cli",
            "demo",
            "--dir",
            str(directory),
            "--port",
            str(port),
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_demo_protects_a_change_and_runs_again_on_the_same_folder(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    port = _free_port()
    first = _demo(directory, port)
    assert first.returncode == 0, first.stderr
    assert "restored byte-identical" in first.stderr
    assert f"https://127.0.0.1:{port}/api/v1" in first.stdout
    facts = json.loads((directory / "demo.json").read_text())
    assert (directory / "demo.json").stat().st_mode & 0o077 == 0  # holds the admin password
    # the vault is the customer's: readable with their passphrase alone, and encrypted
    passphrase = Path(facts["passphrase_file"]).read_text().strip()
    repo = Repository.open(open_store(facts["vault"]), passphrase)
    after_first = len(repo.snapshots())
    assert after_first >= 1
    vault_bytes = b"".join(p.read_bytes() for p in Path(facts["vault"]).rglob("*") if p.is_file())
    assert b"Every change in this folder" not in vault_bytes

    second = _demo(directory, port)  # already set up: starts the same service again
    assert second.returncode == 0, second.stderr
    assert "initialising the server" not in second.stderr
    final = Repository.open(open_store(facts["vault"]), passphrase).snapshots()
    assert len(final) > after_first


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("mine")
    result = _demo(tmp_path, _free_port())
    assert result.returncode == 1
    assert "holds no demo" in result.stderr
    assert "Traceback" not in result.stderr
