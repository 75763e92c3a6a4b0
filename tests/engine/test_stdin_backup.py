"""A stream backed up as one file: restored and read back byte for byte, deduplicated."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from vaultwatch.engine.backup import BackupOptions
from vaultwatch.engine.errors import EngineError
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import RestoreOptions, restore
from vaultwatch.engine.stdin_backup import backup_stdin


def test_stream_round_trip_and_dedup(repo: Repository, tmp_path: Path) -> None:
    payload = os.urandom(5_000_000)
    result = backup_stdin(repo, io.BytesIO(payload), "dump.sql", BackupOptions(tags=["db"]))
    snap = result.snapshot
    assert snap.paths == ["/dump.sql"] and snap.tags == ["db"] and snap.id
    assert result.total_bytes == len(payload)
    assert len(payload) <= result.bytes_added < len(payload) + 20_000  # the data and one tree
    target = tmp_path / "out"
    restored = restore(repo, repo.find_snapshot(snap.id), target, RestoreOptions(verify=True))
    assert restored.files_verified == 1 and not restored.errors
    assert (target / "dump.sql").read_bytes() == payload
    again = backup_stdin(repo, io.BytesIO(payload), "dump.sql")
    assert again.bytes_added < 10_000  # only the tree is new


def test_empty_stream_and_bad_names(repo: Repository) -> None:
    empty = backup_stdin(repo, io.BytesIO(b""), "empty")
    assert empty.total_bytes == 0
    for bad in ("", "a/b", "..", "."):
        with pytest.raises(EngineError, match="plain file name"):
            backup_stdin(repo, io.BytesIO(b"x"), bad)
