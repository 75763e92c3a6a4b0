"""Which snapshot ``latest`` is under restic's host, path and tag filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.errors import SnapshotNotFoundError
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.snapshot_select import SnapshotFilter, resolve_snapshot


def test_latest_among_the_filtered(repo: Repository, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    first = backup(repo, [str(a)], BackupOptions(hostname="h1", tags=["x", "y"])).snapshot
    second = backup(repo, [str(b)], BackupOptions(hostname="h2")).snapshot
    assert resolve_snapshot(repo, "latest").id == second.id
    assert resolve_snapshot(repo, "latest", SnapshotFilter(hosts=["h1"])).id == first.id
    assert resolve_snapshot(repo, "latest", SnapshotFilter(paths=[str(a)])).id == first.id
    assert resolve_snapshot(repo, "latest", SnapshotFilter(tags=["x,y"])).id == first.id
    assert resolve_snapshot(repo, "latest", SnapshotFilter(tags=["x,z", "y"])).id == first.id
    # an id is taken as named, whatever the filters
    assert resolve_snapshot(repo, second.id[:8], SnapshotFilter(hosts=["h1"])).id == second.id
    with pytest.raises(SnapshotNotFoundError, match="no snapshot matches host h3"):
        resolve_snapshot(repo, "latest", SnapshotFilter(hosts=["h3"]))
