"""Copying snapshots between repositories with different keys: restorable byte for byte, deduplicated."""

from __future__ import annotations

from pathlib import Path

from tests.engine.conftest import FAST_KDF
from tests.engine.treecompare import build_tree, describe
from vaultwatch.engine.backup import backup
from vaultwatch.engine.check import check
from vaultwatch.engine.copy import copy_snapshots
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import restore
from vaultwatch.store.local import LocalStore


def test_copy_restores_identically_and_skips_what_is_there(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    build_tree(src)
    snap = backup(repo, [str(src)]).snapshot
    dest_store = LocalStore(tmp_path / "dest")
    dest_store.create_if_missing()
    dest = Repository.init(dest_store, "another passphrase", kdf=FAST_KDF)
    assert dest.master.id_key != repo.master.id_key

    result = copy_snapshots(repo, dest, [snap])
    [new_id] = result.copied.values()
    copied = dest.find_snapshot(new_id)
    assert copied.original == snap.id and copied.time == snap.time and copied.tree != snap.tree
    target = tmp_path / "out"
    restore(dest, copied, target)
    assert describe(target / src.relative_to("/")) == describe(src)
    assert check(dest, read_data=True).ok

    again = copy_snapshots(repo, dest, repo.snapshots())
    assert again.copied == {} and again.skipped == [snap.id] and again.blobs_copied == 0
