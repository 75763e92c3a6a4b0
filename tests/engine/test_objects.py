"""``list`` and ``cat`` read the stored objects back as the engine wrote them."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultwatch.engine.backup import backup
from vaultwatch.engine.errors import EngineError
from vaultwatch.engine.objects import cat, list_ids
from vaultwatch.engine.repository import Repository


def test_index_and_pack_agree_with_the_loaded_index(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"content of f")
    snap = backup(repo, [str(src)]).snapshot
    assert list_ids(repo, "snapshots") == [snap.id]
    repo.load_index(reload=True)
    for name in list_ids(repo, "index"):
        for pack in cat(repo, "index", name):
            header = cat(repo, "pack", pack["id"])
            assert header == pack["blobs"]
            for blob in header:
                loc = repo.lookup(bytes.fromhex(blob["id"]))
                assert loc is not None and loc.offset == blob["offset"]
    assert cat(repo, "snapshot", snap.id[:6])["tree"] == snap.tree.hex()
    with pytest.raises(EngineError, match="cannot list"):
        list_ids(repo, "blobs")
    with pytest.raises(EngineError, match="needs an id"):
        cat(repo, "tree")
