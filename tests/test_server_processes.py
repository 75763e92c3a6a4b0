"""``server run`` as processes: several workers, and what happens to them when the supervisor dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.test_server import Running, vw


def _children(parent: int) -> dict[int, str]:
    """The live (non-zombie) child processes of `parent`, with their command lines."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    vw("server", "init", "--data-dir", str(data_dir))
    server = Running(data_dir, "--workers", "2")
    try:
        deadline = time.monotonic() + 30
        while True:
            children = _children(server.proc.pid)
            workers = [pid for pid, cmd in children.items() if "spawn_main" in cmd]
            if len(workers) == 2:
                break
            assert time.monotonic() < deadline, f"two workers did not start: {children}"
            time.sleep(0.1)
        assert server.get("/healthz").status_code == 200
        assert not _port_free(server.port)
    except BaseException:
        server.stop()
        raise

    server.proc.kill()  # SIGKILL: the supervisor gets no chance to stop its workers
    server.proc.wait(timeout=10)
    killed = time.monotonic()
    while any(_alive(pid) for pid in children) or not _port_free(server.port):
        if time.monotonic() - killed > 10:
            for pid in children:
                if _alive(pid):
                    os.kill(pid, 9)
            raise AssertionError(f"workers outlived their supervisor: {children}")
        time.sleep(0.1)
    assert time.monotonic() - killed < 10


def test_a_worker_whose_supervisor_is_already_gone_stops() -> None:
    """The parent-pid check: a supervisor that died before the worker asked for the signal."""
    code = "import time; from vaultwatch.server import follow_supervisor as f; f(1); time.sleep(30)"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=20, check=False
    )
    assert proc.returncode == -signal.SIGTERM
    assert time.monotonic() - started < 10
