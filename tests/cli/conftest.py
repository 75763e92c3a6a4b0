"""Fixtures for the command-line tests: a runner that checks no traceback escapes, a fast repository."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from vaultwatch.cli.main import app

PASSPHRASE = "correct horse battery staple"
FAST_KDF = ["--kdf-memory", "8", "--kdf-time", "1"]
_OUR_ENV = (
    "VAULTWATCH_REPO",
    "VAULTWATCH_PASSPHRASE",
    "VAULTWATCH_PASSPHRASE_FILE",
    "VAULTWATCH_DEBUG",
    "COLUMNS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own repository settings must never leak into a test."""
    for var in _OUR_ENV:
        monkeypatch.delenv(var, raising=False)


class Cli:
    """Runs ``vaultwatch`` in-process; every run is checked for leaked tracebacks."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(
        self,
        *args: str | Path,
        passphrase: str | None = PASSPHRASE,
        env: dict[str, str] | None = None,
        input: str | bytes | None = None,
    ) -> Result:
        full_env: dict[str, str | None] = {"VAULTWATCH_PASSPHRASE": passphrase}
        full_env.update(env or {})
        result = self.runner.invoke(app, [str(a) for a in args], env=full_env, input=input)
        assert "Traceback" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        return result

    def ok(self, *args: str | Path, **kwargs: Any) -> Result:
        """Run and insist on success."""
        result = self(*args, **kwargs)
        assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}"
        return result

    def json(self, *args: str | Path, **kwargs: Any) -> Any:
        """Run with --json and parse stdout, which must hold the JSON and nothing else.

        A stream of restic-style messages (``backup --json``) gives its summary.
        """
        result = self.ok(*args, "--json", **kwargs)
        docs = messages(result.stdout)
        return summary_of(docs) if len(docs) > 1 else docs[0]

    def json_lines(self, *args: str | Path, **kwargs: Any) -> list[Any]:
        """Run with --json; every line of stdout parsed."""
        return messages(self.ok(*args, "--json", **kwargs).stdout)


def messages(stdout: str) -> list[Any]:
    """Each line of a command's stdout as JSON (every line must parse)."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def summary_of(docs: list[Any]) -> Any:
    """The one ``summary`` message of a stream: the last line, as restic writes it."""
    assert all(isinstance(d, dict) and "message_type" in d for d in docs), docs
    assert docs[-1]["message_type"] == "summary", docs[-1]
    assert [d["message_type"] for d in docs].count("summary") == 1
    return docs[-1]


@pytest.fixture
def cli() -> Cli:
    """The in-process command runner."""
    return Cli()


@pytest.fixture
def repo(cli: Cli, tmp_path: Path) -> Path:
    """An initialized repository with a cheap KDF."""
    path = tmp_path / "repo"
    cli.ok("repo", "init", "-r", path, *FAST_KDF)
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A small tree: text, a binary file in a subdirectory, a deeper file and a symlink."""
    root = tmp_path / "data"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "alpha.txt").write_text("alpha\n")
    (root / "sub" / "blob.bin").write_bytes(os.urandom(300_000))
    (root / "sub" / "deep" / "Notes.md").write_text("# notes\n" * 50)
    (root / "link").symlink_to("alpha.txt")
    return root


@pytest.fixture
def snapshot(cli: Cli, repo: Path, data: Path) -> str:
    """The full id of one backup of ``data`` in ``repo``."""
    doc = cli.json("repo", "backup", "-r", repo, data)
    return str(doc["snapshot_id"])


def vaultwatch_exe() -> Path:
    """The installed console script next to the interpreter running the tests."""
    exe = Path(sys.executable).parent / "vaultwatch"
    if not exe.exists():
        pytest.skip("the vaultwatch console script is not installed in this environment")
    return exe


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test process's environment without our variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _OUR_ENV}
    env.update(extra)
    return env


def read_tree(root: Path) -> dict[str, bytes | str]:
    """Relative path -> file content, symlink target (as 'link:...') or 'dir'."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = f"link:{os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = path.read_bytes()
    return out


def corrupt_a_pack(repo: Path) -> Path:
    """Flip one byte in the middle of the largest data pack; returns the pack's path."""
    packs = sorted((repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    pack = packs[-1]
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    os.chmod(pack, 0o600)
    pack.write_bytes(bytes(raw))
    return pack


@pytest.fixture
def chdir_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run inside tmp_path (for relative paths on the command line)."""
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)
