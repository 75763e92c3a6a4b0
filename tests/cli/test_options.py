"""Options every repository command shares: where the repository is, how the passphrase is found."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import FAST_KDF, Cli


def test_passphrase_file_first_line_wins_over_env(cli: Cli, tmp_path: Path) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_bytes(b"from the file\r\nignored second line\n")
    cli.ok("repo", "init", "-r", tmp_path / "r", *FAST_KDF, "--passphrase-file", pwfile)
    # The file is used even though the environment holds another passphrase.
    cli.ok("repo", "snapshots", "-r", tmp_path / "r", "--passphrase-file", pwfile, passphrase="x")
    # Its first line, without the line ending, is the passphrase.
    cli.ok("repo", "snapshots", "-r", tmp_path / "r", passphrase="from the file")
    wrong = cli("repo", "snapshots", "-r", tmp_path / "r", passphrase="from the file\r")
    assert wrong.exit_code == 12


def test_passphrase_file_from_the_environment(cli: Cli, tmp_path: Path) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_text("env file\n")
    env = {"VAULTWATCH_PASSPHRASE_FILE": str(pwfile), "VAULTWATCH_REPO": str(tmp_path / "r")}
    cli.ok("repo", "init", *FAST_KDF, passphrase=None, env=env)
    assert cli.json("repo", "snapshots", passphrase=None, env=env) == []
    # and it is really that file being read
    pwfile.write_text("changed\n")
    assert cli("repo", "snapshots", passphrase=None, env=env).exit_code == 12


def test_options_on_the_group_and_the_command(cli: Cli, repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    cli.ok("repo", "init", "-r", other, *FAST_KDF, passphrase="other pass")
    # restic style: options before the command
    assert json.loads(cli.ok("repo", "-r", repo, "--json", "snapshots").stdout) == []
    # the command's own option wins over the group's, which wins over the environment
    env = {"VAULTWATCH_REPO": str(tmp_path / "missing")}
    result = cli("repo", "-r", repo, "snapshots", "-r", other, passphrase="other pass", env=env)
    assert result.exit_code == 0
    result = cli("repo", "-r", repo, "snapshots", env=env)
    assert result.exit_code == 0
    assert cli("repo", "snapshots", env=env).exit_code == 10
