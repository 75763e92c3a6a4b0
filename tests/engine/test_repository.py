"""Repository reads: packs read in bounded spans, trees fetched together into the cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.engine.conftest import FAST_KDF, PASSPHRASE, reopen, tree_at
from vaultwatch.engine import repository as repository_mod
from vaultwatch.engine.backup import backup
from vaultwatch.engine.index import BlobIndex, BlobLocation
from vaultwatch.engine.pack import DATA, PackBuilder, pack_name
from vaultwatch.engine.repository import BlobWriter, Repository
from vaultwatch.store.local import LocalStore

KIB = 1024


def record_reads(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(object, length) of every range read from the store from now on."""
    reads: list[tuple[str, int]] = []
    real_get_range = repo.store.get_range

    def recording_get_range(name: str, offset: int, length: int) -> bytes:
        reads.append((name, length))
        return real_get_range(name, offset, length)

    monkeypatch.setattr(repo.store, "get_range", recording_get_range)
    if repo.store.reads_in_place:  # such packs are read into a reused buffer
        real_read_into = repo.store.read_into

        def recording_read_into(name: str, offset: int, buffer: memoryview) -> int:
            reads.append((name, len(buffer)))
            return real_read_into(name, offset, buffer)

        monkeypatch.setattr(repo.store, "read_into", recording_read_into)
    return reads


def _packed(repo: Repository, tmp_path: Path) -> tuple[Repository, bytes, list[BlobLocation]]:
    """A repository whose biggest pack holds many blobs, reopened, and that pack's blobs."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}").write_bytes(os.urandom(50 * KIB + i))
    backup(repo, [str(src)])
    repo = reopen(Path(repo.store.location))
    repo.load_index()
    pack_id, locs = max(repo.index.by_pack().items(), key=lambda item: len(item[1]))
    return repo, pack_id, locs


def test_read_pack_in_bounded_spans(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, pack_id, locs = _packed(repo, tmp_path)
    assert len(locs) >= 20
    whole = {loc.blob_id: data for loc, data in repo.read_pack(pack_id, locs)}
    reads = record_reads(repo, monkeypatch)
    pieces = list(repo.read_pack(pack_id, list(reversed(locs)), max_span=200 * KIB))
    assert [loc.offset for loc, _ in pieces] == sorted(loc.offset for loc in locs)
    assert {loc.blob_id: data for loc, data in pieces} == whole  # same bytes, all verified
    lengths = [length for _, length in reads]
    assert len(lengths) > 1 and max(lengths) <= 200 * KIB
    reads.clear()
    list(repo.read_pack(pack_id, locs[:1], max_span=1))  # one blob larger than the bound
    assert reads == [(pack_name(pack_id), locs[0].length)]


def test_cache_trees_reads_a_pack_once_for_many_trees(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "tree"
    for i in range(12):
        (src / f"d{i}").mkdir(parents=True)
        (src / f"d{i}" / "file").write_text(f"dir {i}")
    snap = backup(repo, [str(src)]).snapshot
    repo = reopen(Path(repo.store.location))
    root = tree_at(repo, snap.tree, src)
    subtrees = [n.subtree for n in root.nodes if n.subtree is not None]
    assert len(subtrees) == 12
    reads = record_reads(repo, monkeypatch)
    repo.cache_trees(subtrees)
    packs = [name for name, _ in reads]
    assert packs and len(packs) == len(set(packs))  # each pack once
    before = len(reads)
    loaded = [repo.load_tree(t) for t in subtrees]
    assert len(reads) == before  # served from the cache
    assert sorted(t.nodes[0].name for t in loaded) == [b"file"] * 12


def test_load_trees_reads_ranges_of_at_most_max_span(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "tree"
    for i in range(40):
        (src / f"d{i:02}").mkdir(parents=True)
        for f in range(30):  # trees of a few KiB each, one pack
            (src / f"d{i:02}" / f"a-long-file-name-{f:03}").write_text(f"{i} {f}")
    snap = backup(repo, [str(src)]).snapshot
    repo = reopen(Path(repo.store.location))
    top = tree_at(repo, snap.tree, src)
    wanted = [n.subtree for n in top.nodes if n.subtree is not None][::8]  # every eighth
    reads = record_reads(repo, monkeypatch)
    whole = repo.load_trees(wanted, workers=1)
    one_range = max(length for _, length in reads)
    reads.clear()
    spans = repo.load_trees(wanted, workers=1, max_span=4 * KIB)
    assert len(spans) == len(whole) == 5 and all(len(t.nodes) == 30 for t in spans.values())
    assert len(reads) == 5 and max(length for _, length in reads) <= 4 * KIB < one_range


def test_the_tree_cache_holds_a_bounded_number_of_nodes_the_newest_kept(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "tree"
    sizes = {"a": 3, "b": 4, "c": 4, "huge": 9}
    for name, files in sizes.items():
        (src / name).mkdir(parents=True)
        for f in range(files):
            (src / name / f"f{f}").write_text(f"{name} {f}")
    snap = backup(repo, [str(src)]).snapshot
    repo = reopen(Path(repo.store.location))
    monkeypatch.setattr(repository_mod, "_TREE_CACHE_NODES", 7)
    top = tree_at(repo, snap.tree, src)
    ids = {n.name.decode(): n.subtree for n in top.nodes}
    names = {tree_id: name for name, tree_id in ids.items()}
    cached = repo._tree_cache
    repo.load_tree(ids["a"])
    repo.load_tree(ids["b"])  # 3 + 4 nodes: the path's trees before them are dropped
    assert [names.get(t) for t in cached] == ["a", "b"]
    repo.load_tree(ids["a"])  # used again: "b" is now the least recently used
    repo.load_tree(ids["c"])
    assert [names.get(t) for t in cached] == ["a", "c"]
    repo.load_tree(ids["huge"])
    assert [names.get(t) for t in cached] == ["huge"]  # alone over the limit, still kept
    assert repo._tree_cache_nodes == 9


def test_writer_builds_packs_in_the_buffers_of_stored_ones(
    repo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repository.init(LocalStore(repo_path), PASSPHRASE, kdf=FAST_KDF, pack_size=64 * KIB)
    buffers: list[bytearray] = []
    real_submit = BlobWriter._submit

    def recording_submit(self: BlobWriter, builder: PackBuilder) -> None:
        buffers.append(builder.buffer)
        real_submit(self, builder)

    monkeypatch.setattr(BlobWriter, "_submit", recording_submit)
    blobs = [os.urandom(20 * KIB + i) for i in range(12)]
    ids = []
    with repo.writer() as writer:
        for i in range(0, len(blobs), 3):  # three blobs a pack, each stored before the next
            ids += [writer.save(DATA, b)[0] for b in blobs[i : i + 3]]
            writer.flush()
    assert len(buffers) == 4
    assert all(b is buffers[0] for b in buffers)  # one buffer, written again for each pack
    assert len({repo.lookup(b).pack_id for b in ids}) == 4  # type: ignore[union-attr]
    reopened = reopen(repo_path)
    assert [reopened.load_blob(b) for b in ids] == blobs  # no pack kept bytes of the last


def test_a_pack_indexed_during_a_batch_search_is_not_stored_twice(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search runs outside the writer's lock; an upload may index its blob meanwhile."""
    data = os.urandom(5 * KIB)
    with repo.writer() as writer:
        bid, new = writer.save(DATA, data)  # reserved, in a pack not yet stored
        assert new
        real_stored_blobs = repo.stored_blobs
        searches = 0

        def search_then_upload(blob_ids: list[bytes]) -> set[bytes]:
            nonlocal searches
            searches += 1
            found = real_stored_blobs(blob_ids)
            if searches == 1:
                writer.flush()  # the pack is stored and indexed after the search looked
            return found

        monkeypatch.setattr(repo, "stored_blobs", search_then_upload)
        assert writer.reserve_many([bid]) == [False]
    assert len(repo.index.by_pack()) == 1  # one pack, one copy of the blob


def _blobs_per_index_file(repo: Repository) -> list[int]:
    counts = []
    for obj in repo.store.list("index/"):
        index = BlobIndex()
        index.load_file(repo.load_file("index", obj.name), obj.name)
        counts.append(len(index))
    return counts


@pytest.mark.parametrize("max_blobs", [10, None])
def test_an_index_file_is_written_once_its_packs_hold_enough_blobs(
    repo_path: Path, monkeypatch: pytest.MonkeyPatch, max_blobs: int | None
) -> None:
    """Packs of small blobs: an index file every few packs, not every ``index_every`` packs."""
    if max_blobs is not None:
        monkeypatch.setattr(repository_mod, "_INDEX_MAX_BLOBS", max_blobs)
    repo = Repository.init(LocalStore(repo_path), PASSPHRASE, kdf=FAST_KDF, pack_size=4 * KIB)
    blobs = [os.urandom(1000 + i) for i in range(40)]  # four blobs a pack
    with repo.writer() as writer:
        ids = [writer.save(DATA, b)[0] for b in blobs]
    counts = _blobs_per_index_file(repo)
    assert sum(counts) == len(blobs)
    if max_blobs is None:
        assert counts == [40]  # ten packs, fewer than index_every: one file at the end
    else:
        assert sorted(counts) == [4, 12, 12, 12]  # three packs a file, the last one at flush
    reopened = reopen(repo_path)
    assert [reopened.load_blob(b) for b in ids] == blobs
