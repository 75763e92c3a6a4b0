"""Passphrase files read the same for the CLI and the agent: the first line, as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from vaultwatch.agent.vault import create_passphrase_file
from vaultwatch.passphrases import PassphraseFileError, read_passphrase_file


@pytest.mark.parametrize(
    ("content", "passphrase"),
    [
        (b"correct horse", "correct horse"),  # no line ending at all
        (b"correct horse\n", "correct horse"),
        (b"correct horse\r\n", "correct horse"),  # written on Windows
        (b"correct horse\n\n", "correct horse"),  # only the first line ending goes
        (b"  spaced out \r\nnext line", "  spaced out "),  # other whitespace is the passphrase's
        (b"p\xc3\xa4ssphrase\n", "p\u00e4ssphrase"),
    ],
)
def test_the_passphrase_is_the_first_line(tmp_path: Path, content: bytes, passphrase: str) -> None:
    f = tmp_path / "pw"
    f.write_bytes(content)
    assert read_passphrase_file(f) == passphrase


def test_a_file_the_agent_writes_reads_back(tmp_path: Path) -> None:
    f = tmp_path / "agent.key"
    create_passphrase_file(f)
    passphrase = read_passphrase_file(f)
    assert len(passphrase) >= 32 and f.read_text() == passphrase + "\n"


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\nsecond line\n"])
def test_an_empty_first_line_is_refused(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "pw"
    f.write_bytes(content)
    with pytest.raises(PassphraseFileError, match=re.escape(f"passphrase file {f} is empty")):
        read_passphrase_file(f)


def test_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "nope"
    with pytest.raises(
        PassphraseFileError, match=re.escape(f"cannot read passphrase file {f}: it does not")
    ):
        read_passphrase_file(f)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(PassphraseFileError, match="it is a directory"):
        read_passphrase_file(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("secret\n")
    f.chmod(0)
    with pytest.raises(
        PassphraseFileError, match=re.escape(f"cannot read passphrase file {f}: Permission")
    ):
        read_passphrase_file(f)


def test_not_text(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_bytes(b"\xff\xfe")
    with pytest.raises(PassphraseFileError, match="not UTF-8 text"):
        read_passphrase_file(f)
