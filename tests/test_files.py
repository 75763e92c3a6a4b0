"""Private files: mode from the first byte, whole or not at all, never silently replaced when exclusive."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vaultwatch.files import write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_private_file_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "deep" / "secret", b"s3cret\n")
    finally:
        os.umask(old)
    assert (tmp_path / "deep" / "secret").read_bytes() == b"s3cret\n"
    assert _mode(tmp_path / "deep" / "secret") == 0o600
    assert _mode(tmp_path / "deep") == 0o700


def test_replacing_swaps_the_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_private(path, b"old", mode=0o640)
    write_private(path, b"new" * 100_000, mode=0o640)
    assert path.read_bytes() == b"new" * 100_000
    assert _mode(path) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    write_private(path, b"complete = true\n")
    with pytest.raises(TypeError):
        write_private(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"complete = true\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.toml"]


def test_exclusive_refuses_to_replace_a_key(tmp_path: Path) -> None:
    key = tmp_path / "ca-key.pem"
    write_private(key, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        write_private(key, b"second", exclusive=True)
    assert key.read_bytes() == b"first"
