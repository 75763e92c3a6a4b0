"""A backup's summary (``BackupResult.to_dict``): what the snapshot holds, and what it could not."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from tests.conftest import make_unexaminable
from tests.engine.conftest import reopen
from vaultwatch.engine.backup import backup
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.stdin_backup import backup_stdin

#: A write-only sysfs attribute: a 4096-byte file that root cannot read either.
WRITE_ONLY = "/sys/bus/pci/rescan"


def _source(root: Path) -> Path:
    (root / "d").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a" * 1000)
    (root / "d" / "b.bin").write_bytes(os.urandom(50_000))
    return root


def test_a_partial_backup_counts_the_snapshot_and_the_unreadable_apart(
    repo: Repository, repo_path: Path, tmp_path: Path, unreadable_file: str
) -> None:
    src = _source(tmp_path / "src")
    deep = make_unexaminable(src)
    result = backup(repo, [str(src), unreadable_file])
    summary = result.to_dict()
    assert {e.path for e in result.errors} == {unreadable_file, deep}
    assert {k: summary[k] for k in ("files_new", "files_changed", "files_unmodified")} == {
        "files_new": 2,
        "files_changed": 0,
        "files_unmodified": 0,
    }
    # The entry that could not be examined is an error, but not known to be a file.
    assert (summary["files_total"], summary["files_unreadable"], summary["errors"]) == (2, 1, 2)
    assert summary["total_bytes"] == 51_000 and summary["warnings"] == 0
    assert summary["scan"] == "full" and summary["dirs"] >= 2
    assert summary["bytes_added"] >= 51_000 and summary["bytes_stored"] > 0
    # The snapshot records this very summary.
    assert reopen(repo_path).find_snapshot(result.snapshot.id).summary == summary

    again = backup(repo, [str(src), unreadable_file]).to_dict()
    counts = ("files_new", "files_unmodified", "files_total", "files_unreadable", "bytes_read")
    assert tuple(again[k] for k in counts) == (0, 2, 2, 1, 0)


def _unreadable(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError:
        return os.path.isfile(path)
    return False


def test_an_unreadable_file_adds_no_bytes_to_the_total(repo: Repository, tmp_path: Path) -> None:
    if not _unreadable(WRITE_ONLY):
        pytest.skip(f"needs the write-only sysfs file {WRITE_ONLY}")
    assert os.stat(WRITE_ONLY).st_size > 0
    src = _source(tmp_path / "src")
    summary = backup(repo, [str(src), WRITE_ONLY]).to_dict()
    assert (summary["files_total"], summary["files_unreadable"]) == (2, 1)
    assert summary["total_bytes"] == 51_000  # the files in the snapshot, not the one left out


def test_a_stream_is_summed_up_the_same_way(repo: Repository) -> None:
    result = backup_stdin(repo, io.BytesIO(b"x" * 3000), "dump.sql")
    summary = result.to_dict()
    assert (summary["files_new"], summary["files_total"], summary["files_unreadable"]) == (1, 1, 0)
    assert (summary["total_bytes"], summary["bytes_read"], summary["scan"]) == (3000, 3000, "stdin")
    assert result.snapshot.summary == summary
