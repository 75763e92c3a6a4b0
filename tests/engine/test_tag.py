"""Retagging replaces snapshot files and moves their manifests; the data stays as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.errors import EngineError
from vaultwatch.engine.manifest import Manifest, manifest_name
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.tag import change_tags, new_tags


def test_new_tags_rules() -> None:
    assert new_tags(["a", "b"], add=["c", "a"]) == ["a", "b", "c"]
    assert new_tags(["a", "b"], remove=["a"]) == ["b"]
    assert new_tags(["a"], set_to=["x", "x"]) == ["x"]
    assert new_tags(["a"], set_to=[]) == []


def test_change_tags_writes_a_new_snapshot_and_moves_its_manifest(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("f")
    old = backup(repo, [str(src)], BackupOptions(tags=["a"])).snapshot
    manifest = Manifest(old.id, old.time, old.hostname, old.paths, old.tags, packs=[])
    repo.store.put(manifest_name(old.id), manifest.to_json())
    [change] = change_tags(repo, [old], add=["b"])
    assert change.old == old.id and change.tags == ["a", "b"]
    snaps = repo.snapshots()
    assert [s.id for s in snaps] == [change.new]
    new = snaps[0]
    assert new.tree == old.tree and new.time == old.time and new.original == old.id
    assert not repo.store.exists(manifest_name(old.id))
    moved = Manifest.from_json(repo.store.get(manifest_name(new.id)), manifest_name(new.id))
    assert moved.snapshot == new.id and moved.tags == ["a", "b"]
    assert change_tags(repo, snaps, add=["a"]) == []  # nothing changes, nothing is written
    with pytest.raises(EngineError, match="nothing to do"):
        change_tags(repo, snaps)
