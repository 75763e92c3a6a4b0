"""Readers follow the service's retention: removed packs are not indexed, announced ones only read."""

from __future__ import annotations

import os
from pathlib import Path

from tests.engine.conftest import reopen
from vaultwatch.engine.backup import backup
from vaultwatch.engine.pack import pack_name
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.retention_state import RETENTION_STATE, RetentionState
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.store.local import LocalStore


def _content_pack(repo: Repository, snap: Snapshot, path: Path) -> tuple[bytes, bytes]:
    tree = repo.load_tree(snap.tree)
    for part in path.parts[1:]:
        node = tree.find(part.encode())
        assert node is not None
        if node.subtree is None:
            loc = repo.lookup(node.content[0])
            assert loc is not None
            return node.content[0], loc.pack_id
        tree = repo.load_tree(node.subtree)
    raise AssertionError("not found")


def test_doomed_and_missing_packs_are_left_out_of_the_index(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(os.urandom(100_000))
    first = backup(repo, [str(a)]).snapshot
    b.write_bytes(os.urandom(100_000))
    second = backup(repo, [str(b)]).snapshot
    blob_a, pack_a = _content_pack(repo, first, a)
    blob_b, pack_b = _content_pack(repo, second, b)
    assert pack_a != pack_b

    store = LocalStore(repo_path)
    # Without a state object the index is as the index files say.
    assert reopen(repo_path).lookup(blob_a) is not None

    state = RetentionState(generation=3, doomed={pack_a.hex()})
    store.put(RETENTION_STATE, state.to_json())
    reader = reopen(repo_path)
    reader.load_index()
    # Announced: nothing may deduplicate against it...
    assert not reader.has_blob(blob_a) and reader.stored_blobs([blob_a, blob_b]) == {blob_b}
    assert reader.has_blob(blob_b)
    assert reader.retention_generation == 3
    assert pack_a in reader.removed_packs
    assert reader.unindexed_packs() == []  # and it is not "adopted" as a leftover either
    # ...but while it is stored, a snapshot that still needs it reads from it (a backup
    # that was running at the announcement), and a copy that is not doomed comes first.
    doomed_copy = reader.lookup(blob_a)
    assert doomed_copy is not None and doomed_copy.pack_id == pack_a
    assert set(reader.lookup_many([blob_a, blob_b])) == {blob_a, blob_b}
    assert a.read_bytes().startswith(reader.load_blob(blob_a))

    # Once the pack is gone from data/, it stays out even when no longer announced.
    store.put(RETENTION_STATE, RetentionState(generation=4).to_json(), overwrite=True)
    store.delete(pack_name(pack_a))
    reader = reopen(repo_path)
    assert reader.lookup(blob_a) is None and reader.lookup(blob_b) is not None


def test_a_malformed_state_still_drops_missing_packs() -> None:
    state = RetentionState.from_json(b"{broken")
    assert state.generation == -1 and state.doomed == set()
