"""The mounted view's layout and reads, without FUSE: every path and every byte range."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.mountfs import SnapshotFS
from vaultwatch.engine.repository import Repository


def test_layout_attributes_and_ranged_reads(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    payload = os.urandom(4_000_000)  # several chunks
    (src / "big").write_bytes(payload)
    os.symlink("big", src / "link")
    snap = backup(repo, [str(src)], BackupOptions(hostname="h1", tags=["t"])).snapshot
    fs = SnapshotFS(repo)
    assert fs.readdir("/") == ["ids", "snapshots", "hosts", "tags"]
    assert fs.readdir("/ids") == [snap.short_id]
    [when] = [n for n in fs.readdir("/snapshots") if n != "latest"]
    assert fs.readlink("/snapshots/latest") == when
    assert fs.readdir("/hosts/h1") == [when] and fs.readdir("/tags/t") == [when]
    inner = f"/ids/{snap.short_id}{src}"
    assert sorted(fs.readdir(inner)) == ["big", "link"]
    attr = fs.getattr(f"{inner}/big")
    assert stat.S_ISREG(attr.mode) and attr.size == len(payload)
    assert stat.S_ISLNK(fs.getattr(f"{inner}/link").mode) and fs.readlink(f"{inner}/link") == "big"
    for offset, size in (
        (0, 10),
        (1_000_000, 2_500_000),
        (len(payload) - 5, 100),
        (len(payload), 1),
    ):
        assert fs.read(f"/tags/t/{when}{src}/big", size, offset) == payload[offset : offset + size]
    with pytest.raises(OSError) as missing:
        fs.getattr(f"{inner}/nope")
    assert missing.value.errno == errno.ENOENT
    with pytest.raises(OSError) as not_dir:
        fs.readdir(f"{inner}/big")
    assert not_dir.value.errno == errno.ENOTDIR
    with pytest.raises(OSError):
        fs.getattr("/ids/00000000")
