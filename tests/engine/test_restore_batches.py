"""Restore in batches: what a restore holds follows the batch, the result is the snapshot's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import reopen, tree_at
from tests.engine.treecompare import build_tree, describe
from vaultwatch.engine import restore as restore_module
from vaultwatch.engine.backup import backup
from vaultwatch.engine.pack import DATA
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import RestoreOptions, restore


def _batches_of(monkeypatch: pytest.MonkeyPatch, files: int) -> list[int]:
    """Make batches of ``files`` files and record each batch's size as it is restored."""
    monkeypatch.setattr(restore_module, "_BATCH_FILES", files)
    sizes: list[int] = []
    real = restore_module._Restore.restore_batch

    def recording(self: Any) -> None:
        sizes.append(len(self._wanted_files))
        real(self)

    monkeypatch.setattr(restore_module._Restore, "restore_batch", recording)
    return sizes


def _spread_tree(root: Path) -> None:
    """Every kind of entry, then hard links whose sources are planned batches earlier."""
    build_tree(root)
    for d in range(6):
        sub = root / f"d{d}" / "deeper"
        sub.mkdir(parents=True)
        for f in range(5):
            (sub / f"f{f}.txt").write_text(f"file {f} of directory {d}\n" * (d + 1))
    os.link(root / "d0" / "deeper" / "f0.txt", root / "d5" / "deeper" / "link-to-d0")
    os.link(root / "small.txt", root / "d4" / "link-to-small")


def test_a_restore_in_batches_of_two_files_is_the_snapshot_exactly(
    repo: Repository, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    _spread_tree(src)
    snap = backup(repo, [str(src)]).snapshot
    sizes = _batches_of(monkeypatch, 2)
    monkeypatch.setattr(restore_module, "_TREE_READ", 1)
    out = tmp_path / "out"
    result = restore(reopen(repo_path), snap, out, RestoreOptions(verify=True))
    assert not result.errors, result.errors
    assert describe(out / str(src).lstrip("/")) == describe(src)
    files = sum(1 for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    assert result.files_verified == files  # hard links verified against blobs of other batches
    links = 3  # build_tree's hardlink.bin and the two above: made as links, not written
    assert sum(sizes) == files - links and max(sizes) <= 2  # each file in one batch of two
    linked = out / str(src).lstrip("/") / "d5" / "deeper" / "link-to-d0"
    assert linked.stat().st_ino == (linked.parent.parent.parent / "d0/deeper/f0.txt").stat().st_ino


def test_the_walk_reads_each_tree_once_and_only_a_few_ahead(
    repo: Repository, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    for d in range(12):
        (src / f"d{d:02}" / "inner").mkdir(parents=True)
        (src / f"d{d:02}" / "inner" / "f").write_text(f"unique content {d}")  # unique trees
    snap = backup(repo, [str(src)]).snapshot
    monkeypatch.setattr(restore_module, "_TREE_READ", 3)
    reader = reopen(repo_path)
    asked: list[list[bytes]] = []
    real = reader.load_trees

    def recording(tree_ids: list[bytes], **kwargs: Any) -> Any:
        asked.append(list(tree_ids))
        return real(tree_ids, **kwargs)

    monkeypatch.setattr(reader, "load_trees", recording)
    result = restore(reader, snap, tmp_path / "out")
    assert not result.errors
    every = [tid for call in asked for tid in call]
    directories = sum(1 for p in src.rglob("*") if p.is_dir()) + len(src.parts)  # and the path
    assert len(every) == len(set(every)) == directories
    assert max(len(call) for call in asked) <= 4  # the tree wanted and three ahead


def test_entries_are_restored_in_the_order_a_backup_stores_them(
    repo: Repository, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Name order, a subdirectory's files where its name falls: a batch reads neighbouring packs."""
    src = tmp_path / "src"
    for rel in ("a/inner/1", "b.txt", "c/2", "c/d/3", "e.txt"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    snap = backup(repo, [str(src)]).snapshot
    monkeypatch.setattr(restore_module, "_BATCH_FILES", 1)
    order: list[str] = []
    real = restore_module._Restore.restore_batch

    def recording(self: Any) -> None:
        order.extend(
            os.fsdecode(path)[len(str(out / str(src).lstrip("/"))) + 1 :]
            for path, _, _ in self._wanted_files
        )
        real(self)

    monkeypatch.setattr(restore_module._Restore, "restore_batch", recording)
    out = tmp_path / "out"
    assert not restore(reopen(repo_path), snap, out).errors
    assert order == ["a/inner/1", "b.txt", "c/2", "c/d/3", "e.txt"]


def test_a_damaged_file_fails_its_hard_links_in_later_batches(
    repo: Repository, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "z").mkdir()
    (src / "a" / "victim.bin").write_bytes(os.urandom(200_000))
    for i in range(4):
        (src / "m" / str(i)).mkdir(parents=True)
        (src / "m" / str(i) / "f").write_text(f"filler {i}")
    os.link(src / "a" / "victim.bin", src / "z" / "linked.bin")
    snap = backup(repo, [str(src)]).snapshot
    r = reopen(repo_path)
    r.load_index()
    victim = r.index.lookup(tree_at(r, snap.tree, src / "a").nodes[0].content[0])
    assert victim is not None and victim.type == DATA
    pack = repo_path / "data" / victim.pack_id.hex()[:2] / victim.pack_id.hex()
    raw = bytearray(pack.read_bytes())
    raw[victim.offset + 10] ^= 0xFF
    os.chmod(pack, 0o600)
    pack.write_bytes(bytes(raw))
    sizes = _batches_of(monkeypatch, 1)
    out = tmp_path / "out"
    result = restore(reopen(repo_path), snap, out)
    base = out / str(src).lstrip("/")
    failed = {e.path: e.message for e in result.errors}
    assert set(failed) == {str(base / "a" / "victim.bin"), str(base / "z" / "linked.bin")}
    assert "hard link source is damaged" in failed[str(base / "z" / "linked.bin")]
    assert not (base / "a" / "victim.bin").exists() and not (base / "z" / "linked.bin").exists()
    assert all((base / "m" / str(i) / "f").read_text() == f"filler {i}" for i in range(4))
    assert len(sizes) >= 5


class _FirstTotals(Progress):
    """Remembers the totals when the first byte of content is counted."""

    first: tuple[int | None, int | None] | None = None

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        if self.first is None and nbytes:
            self.first = (self.bytes_total, self.files_total)
        super().add(nbytes, files)


@pytest.mark.parametrize("includes", [[], ["/**/d1"]], ids=["whole", "included"])
def test_progress_totals_end_exact_and_the_whole_snapshot_is_known_at_once(
    repo: Repository,
    repo_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    includes: list[str],
) -> None:
    src = tmp_path / "src"
    for d in range(3):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(4):
            (src / f"d{d}" / f"f{f}").write_bytes(os.urandom(1000 * (f + 1)))
    os.link(src / "d0" / "f0", src / "d2" / "hard")  # counted once: restored as a link
    snap = backup(repo, [str(src)]).snapshot
    _batches_of(monkeypatch, 3)
    progress = _FirstTotals()
    result = restore(reopen(repo_path), snap, tmp_path / "out", RestoreOptions(includes), progress)
    assert not result.errors
    chosen = [p for p in src.rglob("*") if p.is_file() and (not includes or "d1" in p.parts)]
    files = [p for p in chosen if p.name != "hard"]
    assert (progress.bytes_total, progress.files_total) == (
        sum(p.stat().st_size for p in files),
        len(files),
    )
    assert (progress.bytes_done, progress.files_done) == (progress.bytes_total, len(files))
    assert progress.first is not None
    if includes:
        assert progress.first[1] is not None and progress.first[1] <= 3  # learnt batch by batch
    else:  # from the snapshot's summary, before anything was written
        assert progress.first == (snap.summary["total_bytes"], snap.summary["files_total"])
