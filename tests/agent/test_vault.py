"""The agent's repository: manifests before snapshots, and no snapshot when nothing changed."""

from __future__ import annotations

import os
from pathlib import Path

from tests.engine.conftest import FAST_KDF, PASSPHRASE
from vaultwatch.agent.vault import AgentRepository, is_unchanged
from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.manifest import Manifest
from vaultwatch.store.local import LocalStore


def _repo(tmp_path: Path) -> AgentRepository:
    store = LocalStore(tmp_path / "vault")
    store.create_if_missing()
    repo = AgentRepository.init(store, PASSPHRASE, kdf=FAST_KDF)
    assert isinstance(repo, AgentRepository)
    return repo


def test_each_snapshot_has_a_manifest_naming_its_set_and_packs(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    src = tmp_path / "srv" / "www"
    src.mkdir(parents=True)
    (src / "index.html").write_bytes(os.urandom(20_000))
    snap = backup(repo, [str(src)], BackupOptions(tags=["set:www"], hostname="web1")).snapshot
    name = f"manifests/{snap.id}"
    manifest = Manifest.from_json(repo.store.get(name), name)
    assert manifest.backup_set == "www" and manifest.hostname == "web1"
    assert manifest.paths == [str(src)] and manifest.time == snap.time
    assert manifest.received is None  # only the gateway stamps
    stored = {o.name.rsplit("/", 1)[-1] for o in repo.store.list("data/")}
    assert set(manifest.packs) == stored  # one backup: every pack is this snapshot's


def test_nothing_changed_means_no_new_snapshot(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    outside = tmp_path / "srv"
    src = outside / "www"
    src.mkdir(parents=True)
    (src / "a").write_bytes(b"one")
    options = BackupOptions(tags=["set:www"])
    first = backup(repo, [str(src)], options).snapshot

    # Something outside the set changes the directory above it: still nothing to save.
    (outside / "unrelated.log").write_bytes(b"x")
    again = backup(repo, [str(src)], BackupOptions(tags=["set:www"])).snapshot
    assert is_unchanged(again) and again.id == first.id
    assert [o.name for o in repo.store.list("snapshots/")] == [f"snapshots/{first.id}"]

    # Other tags are another line of snapshots; a change inside the set is a new snapshot.
    other = backup(repo, [str(src)], BackupOptions(tags=["set:www", "manual"])).snapshot
    assert not is_unchanged(other)
    os.chmod(src, 0o700)  # the set's own directory's metadata
    changed = backup(repo, [str(src)], BackupOptions(tags=["set:www"], parent=first.id)).snapshot
    assert not is_unchanged(changed) and changed.parent == first.id
    assert len(list(repo.store.list("snapshots/"))) == 3
