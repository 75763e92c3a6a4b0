"""Pack references: exactly the packs a snapshot reaches, remembered per tree across snapshots."""

from __future__ import annotations

import os
from pathlib import Path

from tests.engine.conftest import FAST_KDF, PASSPHRASE
from vaultwatch.engine.backup import backup
from vaultwatch.engine.browse import walk_trees
from vaultwatch.engine.references import PackReferences
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.tree import SPLIT_NODES
from vaultwatch.store.local import LocalStore


def _expected(repo: Repository, tree: bytes) -> set[bytes]:
    """Independently: walk every tree and look up every blob's pack."""
    blobs: set[bytes] = set()
    for visit in walk_trees([(b"/", tree)], repo.load_tree):
        assert visit.tree is not None
        blobs.add(visit.tree_id)
        blobs.update(visit.tree.parts)
        for node in visit.tree.nodes:
            blobs.update(node.content)
    found = repo.lookup_many(blobs)
    assert len(found) == len(blobs)
    return {loc.pack_id for loc in found.values()}


def test_packs_are_those_the_snapshot_reaches(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "repo")
    store.create_if_missing()
    repo = Repository.init(store, PASSPHRASE, kdf=FAST_KDF, pack_size=64 * 1024)
    src = tmp_path / "src"
    for d in range(3):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(4):
            (src / f"d{d}" / f"f{f}").write_bytes(os.urandom(30_000))
    big = src / "big"  # more entries than one tree blob holds: stored split in parts
    big.mkdir()
    for f in range(SPLIT_NODES + 10):
        (big / f"e{f:05d}").write_bytes(b"")
    refs = PackReferences(repo)
    first = backup(repo, [str(src)]).snapshot
    assert refs.packs(first.tree) == _expected(repo, first.tree)

    # A change in one directory: the next snapshot's packs are right, and the old
    # snapshot's answer is still right from what is remembered.
    (src / "d1" / "f0").write_bytes(os.urandom(30_000))
    second = backup(repo, [str(src)]).snapshot
    assert refs.packs(second.tree) == _expected(repo, second.tree)
    assert refs.packs(second.tree) != refs.packs(first.tree)
    assert refs.packs(first.tree) == _expected(repo, first.tree)


def test_a_small_memory_bound_still_gives_the_right_answer(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "repo")
    store.create_if_missing()
    repo = Repository.init(store, PASSPHRASE, kdf=FAST_KDF, pack_size=64 * 1024)
    src = tmp_path / "src"
    for d in range(6):
        (src / f"d{d}").mkdir(parents=True)
        (src / f"d{d}" / "f").write_bytes(os.urandom(70_000))
    snap = backup(repo, [str(src)]).snapshot
    refs = PackReferences(repo, max_ids=2)
    assert refs.packs(snap.tree) == _expected(repo, snap.tree)
    assert refs.packs(snap.tree) == _expected(repo, snap.tree)
