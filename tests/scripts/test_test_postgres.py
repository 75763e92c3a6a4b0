"""scripts/test-postgres.sh: the tests' own throwaway PostgreSQL, apart from the machine's."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "test-postgres.sh"

pytestmark = pytest.mark.postgres


def running(pid: int) -> bool:
    """Whether the process still runs (a zombie waiting for a parent to reap it does not)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state == "Z":
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.1)


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **env},
    )


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """A directory the server's user can reach (pytest's tmp_path is private to root)."""
    parent = Path(tempfile.mkdtemp(prefix="vw-pgtest-"))
    parent.chmod(0o755)
    try:
        yield parent / "cluster"
    finally:
        run("stop", str(parent / "cluster"))  # if the test failed half-way
        shutil.rmtree(parent, ignore_errors=True)


def test_start_runs_its_own_cluster_and_stop_removes_it(cluster_dir: Path) -> None:
    started = run("start", str(cluster_dir))
    assert started.returncode == 0, started.stderr
    url = make_url(started.stdout.strip())
    assert url.host == "127.0.0.1" and url.port is not None and url.port != 5432
    assert (url.username, url.database) == ("vaultwatch", "vaultwatch_test")
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        port, can_create = conn.execute(
            "SELECT inet_server_port(), rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone() or (None, None)
    assert port == url.port  # the server that answered is ours, not one on 5432
    assert can_create  # the tests create a database per test
    assert (cluster_dir / "data" / "PG_VERSION").is_file()
    pid = int((cluster_dir / "data" / "postmaster.pid").read_text().split()[0])

    stopped = run("stop", str(cluster_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert not cluster_dir.exists()
    assert not listening(url.port)
    assert not running(pid)


def test_cluster_goes_when_its_owner_dies_without_stopping_it(cluster_dir: Path) -> None:
    """A test run killed before its teardown (SIGKILL, a timeout) must not leave a server."""
    owner = subprocess.Popen(["sleep", "600"])
    try:
        started = run("start", str(cluster_dir), VAULTWATCH_PG_OWNER_PID=str(owner.pid))
        assert started.returncode == 0, started.stderr
        port = make_url(started.stdout.strip()).port
        assert port is not None and listening(port)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 60
    while cluster_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not cluster_dir.exists()
    assert not listening(port)


def test_start_fails_loudly_without_server_binaries(cluster_dir: Path, tmp_path: Path) -> None:
    result = run("start", str(cluster_dir), VAULTWATCH_PG_BINDIR=str(tmp_path))
    assert result.returncode != 0
    assert result.stdout == ""  # no URL for the tests to use
    assert f"no initdb in VAULTWATCH_PG_BINDIR={tmp_path}" in result.stderr
    assert not cluster_dir.exists()  # nothing half-made is left behind


def test_stop_leaves_directories_it_did_not_make_alone(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me")
    result = run("stop", str(tmp_path))
    assert result.returncode != 0
    assert "not touching it" in result.stderr
    assert (tmp_path / "precious").read_text() == "keep me"
