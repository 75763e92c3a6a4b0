"""The gateway's vault access: the upload names it publishes, and its upload spool (what a
restart removes and what it must leave alone)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultwatch.catalog import Catalog
from vaultwatch.errors import VaultwatchError
from vaultwatch.gateway.vault import (
    DIGEST_REGEX,
    UPLOAD_NAME_REGEX,
    VaultAccess,
    check_layout,
    clean_spool,
    expected_content_id,
    parse_digest,
    process_spool,
)
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


UPLOAD_NAME = re.compile(UPLOAD_NAME_REGEX)
_ID = "ab" + "0123456789abcdef" * 3 + "0123456789abcd"


def _uploadable(name: str) -> bool:
    try:
        check_layout(name)
        expected_content_id(name)
    except VaultwatchError:
        return False
    return True


@pytest.mark.parametrize(
    "name",
    [
        "config",
        "keys/k1",
        "locks/a/b.c",
        f"data/ab/{_ID}",
        f"index/{_ID}",
        f"snapshots/{_ID}",
        f"manifests/{_ID}",
        "configs",
        "keys/",
        "keys/..",
        "locks/.tmp-1",
        f"data/cd/{_ID}",
        f"data/ab/{_ID}0",
        f"data/AB/{_ID.upper()}",
        "index/abc",
        "manifests/x",
        "retention/state",
        "trash/x",
        "other/x",
    ],
)
def test_upload_name_regex_is_the_layout_check(name: str) -> None:
    assert bool(UPLOAD_NAME.fullmatch(name)) == _uploadable(name)


@given(st.from_regex(UPLOAD_NAME, fullmatch=True))
def test_every_upload_name_the_regex_makes_fits_the_layout(name: str) -> None:
    assert _uploadable(name)


@pytest.mark.parametrize("value", [_ID, _ID.upper(), f" {_ID}", f"{_ID}\n", _ID[:-1], "", "x" * 64])
def test_digest_regex_is_what_parse_digest_takes(value: str) -> None:
    try:
        parsed = parse_digest(value)
    except VaultwatchError:
        parsed = None
    assert (parsed is not None) == bool(re.fullmatch(DIGEST_REGEX, value))
    if parsed is not None:
        assert parsed == value.lower()
