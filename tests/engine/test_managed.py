"""Writing into a managed vault: every snapshot's reference manifest first, naming its packs."""

from __future__ import annotations

import os
from pathlib import Path

from tests.engine.conftest import FAST_KDF, PASSPHRASE
from tests.engine.test_references import _expected
from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.managed import ManagedRepository
from vaultwatch.engine.manifest import Manifest, backup_set_of, manifest_name
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.store.local import LocalStore


class _Recording(LocalStore):
    """A local store that remembers the order objects were created in."""

    created: list[str]

    def put(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        self.created.append(name)
        super().put(name, data, overwrite=overwrite)


def _managed(tmp_path: Path) -> tuple[ManagedRepository, _Recording]:
    store = _Recording(tmp_path / "vault")
    store.created = []
    store.create_if_missing()
    repo = ManagedRepository.init(store, PASSPHRASE, kdf=FAST_KDF, pack_size=64 * 1024)
    assert isinstance(repo, ManagedRepository)
    return repo, store


def test_each_snapshot_has_its_manifest_stored_before_it(tmp_path: Path) -> None:
    repo, store = _managed(tmp_path)
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "one").write_bytes(os.urandom(90_000))
    (src / "two").write_text("hello\n")
    first = backup(repo, [str(src)], BackupOptions(tags=["set:www", "nightly"])).snapshot
    (src / "a" / "one").write_bytes(os.urandom(90_000))
    second = backup(repo, [str(src)], BackupOptions(tags=["set:www"])).snapshot

    for snap in (first, second):
        name = manifest_name(snap.id)
        assert store.created.index(name) < store.created.index(f"snapshots/{snap.id}")
        manifest = Manifest.from_json(store.get(name), name)
        assert {bytes.fromhex(p) for p in manifest.packs} == _expected(repo, snap.tree)
        assert manifest.hostname == snap.hostname
        assert manifest.paths == snap.paths
        assert manifest.tags == snap.tags
        assert manifest.backup_set == "www"
        assert manifest.time == snap.time
    second_manifest = Manifest.from_json(store.get(manifest_name(second.id)))
    assert second_manifest.parent == first.id
    # The second snapshot's new content lives in a pack the first one does not need.
    first_manifest = Manifest.from_json(store.get(manifest_name(first.id)))
    assert set(second_manifest.packs) - set(first_manifest.packs)


def test_a_snapshot_outside_any_backup_set_names_none(tmp_path: Path) -> None:
    repo, store = _managed(tmp_path)
    (tmp_path / "f").write_bytes(b"x" * 1000)
    snap: Snapshot = backup(repo, [str(tmp_path / "f")]).snapshot
    manifest = Manifest.from_json(store.get(manifest_name(snap.id)))
    assert manifest.backup_set is None
    assert backup_set_of(["nightly", "set:db", "set:other"]) == "db"
    assert backup_set_of([]) is None
