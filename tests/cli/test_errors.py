"""Bad input and failures: one clear line on stderr, the documented exit code, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path

import pytest

from tests.cli.conftest import FAST_KDF, PASSPHRASE, Cli
from vaultwatch.cli import main as main_module
from vaultwatch.cli.main import app
from vaultwatch.engine.lock import RepositoryLock
from vaultwatch.store.local import LocalStore


def test_version(cli: Cli) -> None:
    from vaultwatch import __version__

    result = cli.ok("--version")
    assert result.stdout.strip() == f"vaultwatch {__version__}"


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    result = cli("repo", "frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.stderr
    assert result.stdout == ""


def test_unknown_option_is_a_usage_error(cli: Cli, repo: Path) -> None:
    result = cli("repo", "snapshots", "-r", repo, "--colour")
    assert result.exit_code == 2
    assert "No such option" in result.stderr and "--colour" in result.stderr


def test_missing_repository_exits_10(cli: Cli, tmp_path: Path) -> None:
    result = cli("repo", "snapshots", "-r", tmp_path / "nowhere")
    assert result.exit_code == 10
    assert result.stderr == f"error: no repository at {tmp_path / 'nowhere'}\n"


def test_empty_directory_is_no_repository(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = cli("repo", "snapshots", "-r", tmp_path / "empty", passphrase=None)
    # Reported as missing before any passphrase is asked for.
    assert result.exit_code == 10
    assert "no repository at" in result.stderr


def test_wrong_passphrase_exits_12(cli: Cli, repo: Path) -> None:
    result = cli("repo", "snapshots", "-r", repo, passphrase="not it")
    assert result.exit_code == 12
    assert result.stderr.startswith("error: wrong passphrase")


def test_no_passphrase_and_no_terminal(cli: Cli, repo: Path) -> None:
    result = cli("repo", "snapshots", "-r", repo, passphrase=None)
    assert result.exit_code == 1
    assert "no passphrase" in result.stderr
    assert "VAULTWATCH_PASSPHRASE" in result.stderr and "--passphrase-file" in result.stderr


def test_empty_passphrase_env_is_refused(cli: Cli, repo: Path) -> None:
    result = cli("repo", "snapshots", "-r", repo, passphrase="")
    assert result.exit_code == 1
    assert "VAULTWATCH_PASSPHRASE is set but empty" in result.stderr


def test_no_repository_given(cli: Cli) -> None:
    result = cli("repo", "snapshots")
    assert result.exit_code == 1
    assert "no repository given" in result.stderr and "VAULTWATCH_REPO" in result.stderr


def test_init_twice_fails_before_asking_for_a_passphrase(cli: Cli, repo: Path) -> None:
    result = cli("repo", "init", "-r", repo, *FAST_KDF, passphrase=None)
    assert result.exit_code == 1
    assert result.stderr == f"error: a repository already exists at {repo}\n"


def test_init_into_a_non_empty_directory_is_refused_and_writes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    target = tmp_path / "photos"
    target.mkdir()
    (target / "My Photo.jpg").write_bytes(b"mine")
    result = cli("repo", "init", "-r", target, *FAST_KDF, passphrase=None)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {target} is not empty and holds no repository: "
        "init needs an empty or new directory (or bucket prefix)\n"
    )
    assert [p.name for p in target.iterdir()] == ["My Photo.jpg"]
    # an empty directory is fine
    (target / "My Photo.jpg").unlink()
    assert cli("repo", "init", "-r", target, *FAST_KDF).exit_code == 0


def test_init_on_a_file_is_refused(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = cli("repo", "init", "-r", target, *FAST_KDF)
    assert result.exit_code != 0
    assert "is not a directory" in result.stderr


def test_unsupported_url_scheme(cli: Cli) -> None:
    result = cli("repo", "snapshots", "-r", "sftp:host:/srv/repo")
    assert result.exit_code == 1
    assert "sftp: repositories are not supported" in result.stderr


def test_snapshot_id_that_is_not_hex(cli: Cli, repo: Path, snapshot: str) -> None:
    result = cli("repo", "ls", "-r", repo, "zz-top")
    assert result.exit_code == 1
    assert "'zz-top' is not a snapshot id" in result.stderr


def test_unknown_snapshot_id(cli: Cli, repo: Path, snapshot: str) -> None:
    other = "0" if snapshot[0] != "0" else "1"
    result = cli("repo", "restore", "-r", repo, other * 6, "--target", repo.parent / "out")
    assert result.exit_code == 1
    assert result.stderr == f"error: no snapshot '{other * 6}'\n"
    assert not (repo.parent / "out").exists()


def test_latest_in_an_empty_repository(cli: Cli, repo: Path) -> None:
    result = cli("repo", "ls", "-r", repo, "latest")
    assert result.exit_code == 1
    assert "no snapshot yet" in result.stderr


def test_ambiguous_prefix(cli: Cli, repo: Path, data: Path) -> None:
    ids: list[str] = []
    # 17 snapshots must share a first hex digit; usually far fewer are needed.
    while True:
        ids.append(cli.json("repo", "backup", "-r", repo, data, "-q")["snapshot_id"])
        firsts = [i[0] for i in ids]
        shared = next((c for c in firsts if firsts.count(c) > 1), None)
        if shared is not None:
            break
    result = cli("repo", "dump", "-r", repo, shared, str(data / "alpha.txt"))
    assert result.exit_code == 1
    assert f"snapshot prefix '{shared}' matches" in result.stderr
    assert result.stdout == ""


def test_restore_target_that_is_a_file(cli: Cli, repo: Path, snapshot: str, tmp_path: Path) -> None:
    target = tmp_path / "plain-file"
    target.write_text("keep me")
    result = cli("repo", "restore", "-r", repo, "latest", "--target", target)
    assert result.exit_code == 1
    assert f"restore target {target} exists and is not a directory" in result.stderr
    assert target.read_text() == "keep me"


def test_restore_target_below_a_file_names_the_path(
    cli: Cli, repo: Path, snapshot: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    result = cli("repo", "restore", "-r", repo, "latest", "--target", blocker / "sub")
    assert result.exit_code == 1
    # The OSError became a message naming the path, not a traceback.
    assert str(blocker / "sub") in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ")


def test_nonexistent_backup_path(cli: Cli, repo: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    result = cli("repo", "backup", "-r", repo, missing)
    assert result.exit_code == 1
    assert result.stderr == f"error: {missing} does not exist\n"
    assert cli.json("repo", "snapshots", "-r", repo) == []


def test_backup_without_paths_is_a_usage_error(cli: Cli, repo: Path) -> None:
    result = cli("repo", "backup", "-r", repo)
    assert result.exit_code == 2
    assert "nothing to back up" in result.stderr


def test_force_and_parent_together(cli: Cli, repo: Path, data: Path) -> None:
    result = cli("repo", "backup", "-r", repo, data, "--force", "--parent", "abcd")
    assert result.exit_code == 2
    assert "--force and --parent cannot be used together" in result.stderr


def test_missing_passphrase_file(cli: Cli, repo: Path, tmp_path: Path) -> None:
    result = cli(
        "repo", "snapshots", "-r", repo, "--passphrase-file", tmp_path / "nope", passphrase=None
    )
    assert result.exit_code == 1
    assert f"cannot read passphrase file {tmp_path / 'nope'}" in result.stderr


def test_empty_passphrase_file(cli: Cli, repo: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\nsecond line\n")
    result = cli("repo", "snapshots", "-r", repo, "--passphrase-file", empty, passphrase=None)
    assert result.exit_code == 1
    assert "is empty" in result.stderr


def test_unreadable_exclude_file(cli: Cli, repo: Path, data: Path, tmp_path: Path) -> None:
    result = cli("repo", "backup", "-r", repo, data, "--exclude-file", tmp_path / "nope")
    assert result.exit_code == 1
    assert f"cannot read exclude file {tmp_path / 'nope'}" in result.stderr


def test_bad_escrow_key_file(cli: Cli, tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n")
    result = cli("repo", "init", "-r", tmp_path / "r", *FAST_KDF, "--escrow-public-key", pem)
    assert result.exit_code == 1
    assert f"{pem} is not a PEM public key" in result.stderr
    assert not (tmp_path / "r" / "config").exists()


def test_repository_locked_by_a_live_process(cli: Cli, repo: Path, data: Path) -> None:
    lock = RepositoryLock(LocalStore(repo), exclusive=True, purpose="prune")
    lock.acquire()
    try:
        result = cli("repo", "backup", "-r", repo, data)
        assert result.exit_code == 11  # restic: failed to lock the repository
        assert "repository is locked: exclusive lock for prune" in result.stderr
        as_json = cli("repo", "backup", "-r", repo, data, "--json")
        assert as_json.exit_code == 11 and as_json.stdout == ""
        doc = json.loads(as_json.stderr)
        assert doc["message_type"] == "exit_error" and doc["code"] == 11
        assert doc["message"].startswith("repository is locked: exclusive lock for prune")
        # unlock leaves a live lock alone unless told otherwise
        assert cli.json("repo", "unlock", "-r", repo) == {"removed": 0}
        assert cli.json("repo", "unlock", "-r", repo, "--remove-all") == {"removed": 1}
        cli.ok("repo", "backup", "-r", repo, data, "-q")
    finally:
        lock.release()


def test_unlock_removes_a_stale_lock(cli: Cli, repo: Path) -> None:
    stale = {
        "exclusive": True,
        "hostname": socket.gethostname(),
        "pid": 2**22 + 12345,  # above pid_max's default: no such process
        "time": time.time(),
        "purpose": "backup",
    }
    (repo / "locks").mkdir(exist_ok=True)
    (repo / "locks" / ("ab" * 16)).write_text(json.dumps(stale))
    result = cli.ok("repo", "unlock", "-r", repo)
    assert result.stdout == "removed 1 lock\n"
    assert list((repo / "locks").iterdir()) == []


def test_keyboard_interrupt_exits_130(
    cli: Cli, repo: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("vaultwatch.cli.repo.backup.backup", interrupted)
    result = cli("repo", "backup", "-r", repo, data)
    assert result.exit_code == 130
    assert result.stderr == "error: interrupted\n"


def test_disk_full_names_the_path(
    cli: Cli, repo: Path, snapshot: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "out" / "big"))

    monkeypatch.setattr("vaultwatch.cli.repo.restore.restore", full)
    result = cli("repo", "restore", "-r", repo, "latest", "--target", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.endswith(f"error: no space left on device: {tmp_path / 'out' / 'big'}\n")


def test_unexpected_error_has_no_traceback_unless_debugging(
    cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("something odd")

    monkeypatch.setattr("vaultwatch.cli.repo.common.select_snapshots", broken)
    result = cli("repo", "snapshots", "-r", repo)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: unexpected ValueError: something odd (set VAULTWATCH_DEBUG=1 for details)\n"
    )

    debug = cli.runner.invoke(
        app,
        ["repo", "snapshots", "-r", str(repo)],
        env={"VAULTWATCH_PASSPHRASE": PASSPHRASE, "VAULTWATCH_DEBUG": "1"},
    )
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "ValueError: something odd" in debug.stderr


def test_other_sub_apps_load_only_when_used(cli: Cli) -> None:
    import subprocess
    import sys

    probe = (
        "import sys; import vaultwatch.cli.main as m; "
        "print(sorted(n for n in sys.modules if n.startswith(('vaultwatch.catalog', 'sqlalchemy', 'vaultwatch.cli.admin'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
    # ... yet they are listed and work.
    listing = cli.ok("--help").stdout
    assert all(name in listing for name in ("repo", "agent", "server", "admin"))
    assert "tenant" in cli.ok("admin", "--help").stdout
    assert "--install-completion" not in cli.ok("admin", "--help").stdout


def test_a_broken_sub_app_is_an_error_not_a_traceback(
    cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(main_module._LAZY_APPS, "ghost", "vaultwatch.cli.no_such_module:app")
    result = cli("ghost", "run")
    assert result.exit_code == 1
    assert "unexpected ModuleNotFoundError" in result.stderr
    # the repository commands are unaffected
    cli.ok("repo", "snapshots", "-r", repo)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["snapshots"], 10),  # the repository does not exist
        (["ls", "latest"], 10),
    ],
)
def test_exit_errors_as_json_on_stderr(
    cli: Cli, tmp_path: Path, args: list[str], code: int
) -> None:
    result = cli("repo", *args, "-r", tmp_path / "none", "--json")
    assert result.exit_code == code
    assert result.stdout == ""
    doc = json.loads(result.stderr)
    assert doc == {
        "message_type": "exit_error",
        "code": code,
        "message": f"no repository at {tmp_path / 'none'}",
    }


def test_wrong_passphrase_as_json(cli: Cli, repo: Path) -> None:
    result = cli("repo", "--json", "snapshots", "-r", repo, passphrase="wrong")
    assert result.exit_code == 12
    assert json.loads(result.stderr)["code"] == 12


def test_json_errors_do_not_stick_to_the_next_command(cli: Cli, tmp_path: Path) -> None:
    cli("repo", "snapshots", "-r", tmp_path / "none", "--json")
    plain = cli("repo", "snapshots", "-r", tmp_path / "none")
    assert plain.stderr.startswith("error: no repository at ")
