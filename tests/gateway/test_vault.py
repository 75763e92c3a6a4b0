"""The gateway's upload spool: what a restart removes and what it must leave alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vaultwatch.catalog import Catalog
from vaultwatch.gateway.vault import VaultAccess, clean_spool, process_spool
from vaultwatch.server_config import ServerSettings

HOST = socket.gethostname()


def _dead_pid() -> int:
    """The pid of a process that has exited (a killed server worker's, for the spool)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """Another live process (a sibling worker still spooling)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def _file(path: Path, age: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"partial upload")
    if age:
        past = time.time() - age
        os.utime(path, (past, past))
    return path


def test_clean_spool_removes_only_what_stopped_processes_left(
    tmp_path: Path, live_pid: int
) -> None:
    started = time.time()
    dead = tmp_path / f"{_dead_pid()}@{HOST}"
    dead_files = [_file(dead / "upload-a"), _file(dead / "upload-b", age=3600)]
    own = process_spool(tmp_path)
    own_stale = _file(own / "upload-old", age=60)  # an earlier process with this pid
    own_live = _file(own / "upload-new")  # written since this process started
    os.utime(own_live, (started + 1, started + 1))
    sibling = _file(tmp_path / f"{live_pid}@{HOST}" / "upload-busy", age=3600)
    other_host = _file(tmp_path / f"{_dead_pid()}@elsewhere.example" / "upload-x", age=3600)
    loose_stale = _file(tmp_path / "upload-legacy", age=60)
    loose_unknown = _file(tmp_path / "notes.txt", age=3600)

    assert clean_spool(tmp_path, started=started) == 4

    assert not dead.exists() and not any(p.exists() for p in dead_files)
    assert not own_stale.exists() and not loose_stale.exists()
    assert own_live.exists() and sibling.exists() and other_host.exists()
    assert loose_unknown.exists()
    assert clean_spool(tmp_path, started=started) == 0


def test_a_starting_gateway_cleans_the_spool_and_uses_its_own(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    left = _file(spool / f"{_dead_pid()}@{HOST}" / "upload-killed", age=10)
    settings = ServerSettings(
        data_dir=tmp_path,
        catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}",
        vault_url=str(tmp_path / "vaults"),
        tls_cert=tmp_path / "cert.pem",
        tls_key=tmp_path / "key.pem",
        ca_cert=None,
        token_key_file=tmp_path / "token.key",
        spool_dir=spool,
    )
    catalog = Catalog(settings.catalog_url)
    try:
        vaults = VaultAccess(settings, catalog)
        assert not left.parent.exists()
        assert vaults.spool == spool / f"{os.getpid()}@{HOST}"
        assert vaults.spool.is_dir() and (vaults.spool.stat().st_mode & 0o777) == 0o700
        vaults.close()
    finally:
        catalog.dispose()
