"""End-to-end runs of the installed ``vaultwatch`` console script in real processes.

These cover what an in-process runner cannot: the entry point itself, exit
codes as the shell sees them, signals, broken pipes, terminals.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import termios
import time
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import (
    FAST_KDF,
    PASSPHRASE,
    corrupt_a_pack,
    messages,
    read_tree,
    subprocess_env,
    summary_of,
    vaultwatch_exe,
)
from tests.conftest import S3Endpoint
from tests.engine.test_restore_safety import many_files, small_file_system


def run(
    *args: str | Path,
    passphrase: str | None = PASSPHRASE,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the console script; stdin is /dev/null, so nothing can prompt."""
    extra = {"VAULTWATCH_PASSPHRASE": passphrase} if passphrase is not None else {}
    extra.update(env or {})
    proc = subprocess.run(
        [str(vaultwatch_exe()), *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=subprocess_env(**extra),
        timeout=timeout,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_round_trip(tmp_path: Path, data: Path) -> None:
    repo = tmp_path / "repo"
    pwfile = tmp_path / "passphrase"
    pwfile.write_text(PASSPHRASE + "\n")

    init = run("repo", "init", "-r", repo, *FAST_KDF, "--passphrase-file", pwfile, passphrase=None)
    assert init.returncode == 0, init.stderr
    assert init.stdout.startswith("created repository ")

    env = {"VAULTWATCH_REPO": str(repo)}
    first = run("repo", "backup", data, "--json", env=env)
    assert first.returncode == 0, first.stderr
    snap = summary_of(messages(first.stdout))
    assert snap["files_new"] == 3 and snap["errors"] == []

    (data / "alpha.txt").write_text("second version\n")
    second = run("repo", "backup", data, env=env)
    assert second.returncode == 0 and "1 changed" in second.stdout

    snaps = json.loads(run("repo", "snapshots", "--json", env=env).stdout)
    assert len(snaps) == 2 and snaps[0]["id"] == snap["snapshot_id"]

    diff = run("repo", "diff", snap["short_id"], "latest", env=env)
    assert f"M    {data / 'alpha.txt'}" in diff.stdout.splitlines()

    target = tmp_path / "restored"
    restore = run("repo", "restore", "latest", "--target", target, env=env)
    assert restore.returncode == 0, restore.stderr
    assert read_tree(target / data.relative_to("/")) == read_tree(data)

    old = tmp_path / "old"
    run("repo", "restore", snap["short_id"], "--target", old, "-q", env=env)
    assert (old / data.relative_to("/") / "alpha.txt").read_text() == "alpha\n"

    check = run("repo", "check", "--read-data", env=env)
    assert check.returncode == 0 and "no errors were found" in check.stdout


def test_errors_as_the_shell_sees_them(tmp_path: Path, data: Path) -> None:
    repo = tmp_path / "repo"
    assert run("repo", "init", "-r", repo, *FAST_KDF).returncode == 0

    missing = run("repo", "snapshots", "-r", tmp_path / "nope")
    assert (missing.returncode, missing.stderr) == (
        10,
        f"error: no repository at {tmp_path / 'nope'}\n",
    )

    wrong = run("repo", "snapshots", "-r", repo, passphrase="wrong")
    assert wrong.returncode == 12 and wrong.stderr.startswith("error: wrong passphrase")

    nopass = run("repo", "snapshots", "-r", repo, passphrase=None)
    assert nopass.returncode == 1 and "no passphrase" in nopass.stderr

    unknown = run("repo", "explode")
    assert unknown.returncode == 2 and "No such command" in unknown.stderr

    badopt = run("repo", "backup", "-r", repo, data, "--turbo")
    assert (
        badopt.returncode == 2 and "No such option" in badopt.stderr and "--turbo" in badopt.stderr
    )

    gone = run("repo", "backup", "-r", repo, tmp_path / "gone")
    assert gone.returncode == 1 and gone.stderr == f"error: {tmp_path / 'gone'} does not exist\n"

    assert run("--version").stdout.startswith("vaultwatch ")


def test_corrupted_repository_check_exits_1(tmp_path: Path, data: Path) -> None:
    repo = tmp_path / "repo"
    run("repo", "init", "-r", repo, *FAST_KDF)
    run("repo", "backup", "-r", repo, data, "-q")
    corrupt_a_pack(repo)
    result = run("repo", "check", "-r", repo, "--read-data")
    assert result.returncode == 1
    assert "is damaged" in result.stderr and "blob.bin" in result.stderr


def test_unreadable_file_exits_3(tmp_path: Path, data: Path) -> None:
    """A file whose read fails: ``/proc/<pid>/mem`` of another process.

    Running as root, permissions cannot make a file unreadable. Reading
    another process's memory at offset 0 always fails (EIO: page 0 is never
    mapped; EACCES/EPERM where ptrace is restricted), for root too, so this
    is deterministic on any Linux.
    """
    repo = tmp_path / "repo"
    run("repo", "init", "-r", repo, *FAST_KDF)
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        bad = f"/proc/{sleeper.pid}/mem"
        result = run("repo", "backup", "-r", repo, data, bad)
        json_result = run("repo", "backup", "-r", repo, data, bad, "--json")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result.returncode == 3
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and error_lines[0].startswith(f"error: {bad}: ")
    assert "could not be read" in result.stderr
    assert result.stdout.splitlines()[-1].endswith(" saved")

    assert json_result.returncode == 3
    doc = summary_of(messages(json_result.stdout))
    assert [e["path"] for e in doc["errors"]] == [bad]

    # Both snapshots were written and the readable files in them restore.
    snaps = json.loads(run("repo", "snapshots", "-r", repo, "--json").stdout)
    assert len(snaps) == 2
    dump = run("repo", "dump", "-r", repo, "latest", data / "alpha.txt")
    assert dump.stdout == "alpha\n"


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    repo, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(8 * 2**20))
    run("repo", "init", "-r", repo, *FAST_KDF)
    run("repo", "backup", "-r", repo, src, "-q")
    proc = subprocess.Popen(
        [str(vaultwatch_exe()), "repo", "dump", "-r", str(repo), "latest", str(src / "big")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(VAULTWATCH_PASSPHRASE=PASSPHRASE),
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(1000)) == 1000
    proc.stdout.close()  # like `| head -c 1000`
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert stderr == b""


def _read_pty(fd: int, proc: subprocess.Popen[bytes], until: bytes | None = None) -> bytes:
    """Everything the process writes to the pty, until it exits (or ``until`` appears)."""
    buf = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            buf += chunk
            if until is not None and until in buf:
                break
        elif proc.poll() is not None:
            break
    return buf


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    repo, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(64 * 2**20))
    run("repo", "init", "-r", repo, *FAST_KDF)

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(vaultwatch_exe()), "repo", "backup", "-r", str(repo), str(src)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        # the terminal under test, whatever the one running the tests is (CI often has TERM=dumb)
        env=subprocess_env(VAULTWATCH_PASSPHRASE=PASSPHRASE, TERM="xterm-256color", COLUMNS="150"),
    )
    os.close(slave)
    try:
        drawn = _read_pty(master, proc)
    finally:
        os.close(master)
    assert proc.stdout is not None
    stdout = proc.stdout.read().decode()
    assert proc.wait(timeout=60) == 0
    # The last frame drawn holds the final counts; the bar is erased afterwards.
    assert b"64.00 MiB / 64.00 MiB" in drawn and b"1/1 files" in drawn
    assert drawn.rstrip().endswith(b"\x1b[2K")
    # the summary went to stdout, untouched by the bar
    assert "\x1b" not in stdout and stdout.splitlines()[-1].endswith(" saved")

    (src / "big").write_bytes(os.urandom(2**20))
    piped = run("repo", "backup", "-r", repo, src)
    assert piped.returncode == 0 and piped.stderr == ""


def _own_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty on stdin."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_interrupt_at_the_passphrase_prompt_exits_130(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(vaultwatch_exe()), "repo", "init", "-r", str(tmp_path / "repo"), *FAST_KDF],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=subprocess_env(),
        preexec_fn=_own_terminal,
    )
    os.close(slave)
    try:
        prompt = _read_pty(master, proc, until=b"passphrase")
        assert b"Repository passphrase" in prompt
        proc.send_signal(signal.SIGINT)
        rest = _read_pty(master, proc)
    finally:
        os.close(master)
    assert proc.wait(timeout=30) == 130
    assert b"Traceback" not in prompt + rest
    assert not (tmp_path / "repo" / "config").exists()


def test_init_asks_twice_and_shows_no_empty_default(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(vaultwatch_exe()), "repo", "init", "-r", str(tmp_path / "repo"), *FAST_KDF],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=subprocess_env(),
        preexec_fn=_own_terminal,
    )
    os.close(slave)
    try:
        first = _read_pty(master, proc, until=b": ")
        os.write(master, PASSPHRASE.encode() + b"\n")
        again = _read_pty(master, proc, until=b": ")
        os.write(master, PASSPHRASE.encode() + b"\n")
        rest = _read_pty(master, proc)
    finally:
        os.close(master)
    assert proc.wait(timeout=60) == 0, rest
    assert first.strip().endswith(b"Repository passphrase:")
    assert again.strip().endswith(b"Repository passphrase (again):"), again
    assert b"[]" not in first + again + rest
    assert (tmp_path / "repo" / "config").exists()


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_sigterm_during_backup_acts_as_ctrl_c(tmp_path: Path) -> None:
    """``kill`` (or a service stop) mid-backup: the message, 130, no lock left, a sound repository."""
    repo, src = tmp_path / "repo", tmp_path / "src"
    for d in range(8):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(50):
            (src / f"d{d}" / f"f{f}.bin").write_bytes(os.urandom(256 * 1024))  # 100 MiB in all
    run("repo", "init", "-r", repo, *FAST_KDF)
    proc = subprocess.Popen(
        [str(vaultwatch_exe()), "repo", "backup", "-r", str(repo), str(src)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(VAULTWATCH_PASSPHRASE=PASSPHRASE),
    )
    try:
        deadline = time.monotonic() + 60
        while not (_files(repo / "locks") and _files(repo / "data")):  # locked, packs written
            assert proc.poll() is None, "the backup ended before it could be stopped"
            assert time.monotonic() < deadline, "the backup wrote no pack"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in stderr and "saved" not in stdout
    assert _files(repo / "locks") == []
    assert _files(repo / "snapshots") == []
    assert _files(repo / "index")  # the packs written before the signal are indexed
    check = run("repo", "check", "-r", repo)
    assert check.returncode == 0, check.stdout + check.stderr
    again = run("repo", "backup", "-r", repo, src, "--json")  # adopts what the first one wrote
    assert again.returncode == 0, again.stderr
    assert run("repo", "check", "-r", repo).returncode == 0


def test_restore_onto_a_full_disk_stops_with_one_message(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    source = many_files(tmp_path / "src")
    run("repo", "init", "-r", repo, *FAST_KDF)
    assert run("repo", "backup", "-r", repo, source, "-q").returncode == 0
    with small_file_system(tmp_path / "small") as target:
        result = run("repo", "restore", "-r", repo, "latest", "--target", target)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 2, result.stderr  # not one line per file that did not fit
    assert lines[0].startswith("restoring snapshot ")
    assert lines[-1].startswith("error: no space left on the restore target")


@pytest.mark.s3
def test_round_trip_on_object_storage(s3_endpoint: S3Endpoint, tmp_path: Path, data: Path) -> None:
    url = f"s3:{s3_endpoint.url}/vw-cli-{uuid.uuid4().hex[:12]}/vault"
    assert run("repo", "init", "-r", url, *FAST_KDF).returncode == 0
    backup = run("repo", "backup", "-r", url, data, "--json")
    assert backup.returncode == 0, backup.stderr
    target = tmp_path / "out"
    assert run("repo", "restore", "-r", url, "latest", "--target", target).returncode == 0
    assert read_tree(target / data.relative_to("/")) == read_tree(data)
    assert run("repo", "check", "-r", url, "--read-data").returncode == 0
    other = url.rsplit("/", 1)[0] + "/elsewhere"
    assert run("repo", "snapshots", "-r", other).returncode == 10
