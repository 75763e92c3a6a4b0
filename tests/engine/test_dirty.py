"""Incremental backups: only the dirty directories are listed, the snapshot is still whole."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import reopen
from tests.engine.treecompare import describe
from vaultwatch.engine import backup as backup_module
from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.browse import walk
from vaultwatch.engine.dirty import DirtySet
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import restore


def test_dirty_set_records_the_way_to_each_dirty_directory() -> None:
    dirty = DirtySet([b"/a/b/c", b"/a/x/", b"relative/ignored"])
    assert dirty.is_dirty(b"/a/b/c") and dirty.is_dirty(b"/a/x")
    assert not dirty.is_dirty(b"/a/b")
    assert dirty.children_on_way(b"/") == {b"a"}
    assert dirty.children_on_way(b"/a") == {b"b", b"x"}
    assert dirty.children_on_way(b"/a/b") == {b"c"}
    assert dirty.children_on_way(b"/a/b/c") is None
    assert dirty.touches(b"/a") and dirty.touches(b"/a/b/c")
    assert not dirty.touches(b"/a/y") and not dirty.touches(b"/a/b/c/d")
    assert len(dirty) == 2


def make_source(root: Path) -> None:
    """Several levels, a few files each, and one subtree nobody touches."""
    for top in ("alpha", "beta", "quiet"):
        for mid in ("one", "two"):
            deep = root / top / mid / "deeper" / "deepest"
            deep.mkdir(parents=True)
            for i in range(3):
                (deep / f"f{i}.txt").write_text(f"{top} {mid} {i}\n")
                (root / top / mid / f"g{i}.txt").write_text(f"{top} {mid} g{i}\n")
    (root / "top.txt").write_text("top\n")


def restore_and_compare(repo_path: Path, src: Path, target: Path, snapshot_id: str) -> None:
    """Restore the snapshot and compare every entry, byte for byte and metadata, with ``src``."""
    fresh = reopen(repo_path)
    if target.exists():
        shutil.rmtree(target)
    res = restore(fresh, fresh.find_snapshot(snapshot_id), target)
    assert not res.errors, res.errors
    assert describe(target / str(src).lstrip("/")) == describe(src)


def listed_dirs(monkeypatch: pytest.MonkeyPatch, src: Path) -> list[bytes]:
    """Record every directory below ``src`` that the backup lists."""
    listed: list[bytes] = []
    real = os.scandir
    under = os.fsencode(src)

    def counting(path: Any) -> Any:
        if isinstance(path, bytes) and path.startswith(under):
            listed.append(path)
        return real(path)

    monkeypatch.setattr(backup_module.os, "scandir", counting)
    return listed


def test_a_change_deep_down_lists_only_its_directory(
    repo: Repository, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    make_source(src)
    first = backup(repo, [str(src)])
    deep = src / "alpha" / "two" / "deeper" / "deepest"
    (deep / "f1.txt").write_text("changed deep down\n")
    (deep / "new.txt").write_text("a new file\n")
    listed = listed_dirs(monkeypatch, src)
    result = backup(repo, [str(src)], BackupOptions(dirty_paths={os.fsencode(deep)}))
    assert listed == [os.fsencode(deep)]
    assert result.incremental
    assert (result.files_new, result.files_changed) == (1, 1)
    # the totals cover the whole snapshot, as a full walk's would
    assert result.files_unmodified == first.files_new - 1
    assert result.snapshot.summary["scan"] == "incremental"
    monkeypatch.undo()
    restore_and_compare(repo_path, src, tmp_path / "restore", result.snapshot.id)
    full = backup(repo, [str(src)])
    assert (full.files_new + full.files_changed, full.files_unmodified) == (0, first.files_new + 1)
    assert full.total_bytes == result.total_bytes


def test_a_rename_across_directories(repo: Repository, repo_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_source(src)
    backup(repo, [str(src)])
    moved_from = src / "alpha" / "one"
    moved_to = src / "beta" / "two" / "deeper" / "one-moved"
    os.rename(moved_from, moved_to)
    (src / "beta" / "g-moved.txt").write_bytes((src / "top.txt").read_bytes())
    os.rename(src / "top.txt", src / "beta" / "top-moved.txt")
    dirty = {os.fsencode(p) for p in (src / "alpha", moved_to.parent, src, src / "beta")}
    result = backup(repo, [str(src)], BackupOptions(dirty_paths=dirty))
    assert result.incremental
    restore_and_compare(repo_path, src, tmp_path / "restore", result.snapshot.id)
    paths = {p for p, _ in walk(reopen(repo_path), result.snapshot.tree)}
    assert os.fsencode(moved_to / "deeper" / "deepest" / "f0.txt") in paths
    assert os.fsencode(moved_from) not in paths


def test_a_deleted_directory_disappears_and_the_totals_follow(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_source(src)
    first = backup(repo, [str(src)])
    gone = src / "beta" / "one"
    gone_files = sum(len(f) for _, _, f in os.walk(gone))
    gone_bytes = sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(gone) for f in fs)
    shutil.rmtree(gone)
    # the events name the deleted directory and (as the parent of it) its directory
    dirty = {os.fsencode(gone), os.fsencode(gone.parent)}
    result = backup(repo, [str(src)], BackupOptions(dirty_paths=dirty))
    restore_and_compare(repo_path, src, tmp_path / "restore", result.snapshot.id)
    assert result.files_unmodified == first.files_new - gone_files
    assert result.total_bytes == first.total_bytes - gone_bytes


def test_a_dirty_path_that_leads_through_an_excluded_directory_stays_out(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_source(src)
    options = BackupOptions(excludes=["cache"])
    (src / "alpha" / "cache").mkdir()
    (src / "alpha" / "cache" / "junk.bin").write_bytes(b"junk")
    backup(repo, [str(src)], options)
    (src / "alpha" / "cache" / "more").mkdir()
    (src / "alpha" / "cache" / "more" / "junk2.bin").write_bytes(b"junk")
    (src / "alpha" / "kept.txt").write_text("kept\n")
    options.dirty_paths = {
        os.fsencode(src / "alpha" / "cache" / "more"),
        os.fsencode(src / "alpha"),
    }
    result = backup(repo, [str(src)], options)
    assert result.files_new == 1
    paths = {p for p, _ in walk(reopen(repo_path), result.snapshot.tree)}
    assert os.fsencode(src / "alpha" / "kept.txt") in paths
    assert not any(b"/cache" in p for p in paths)


def test_a_new_directory_reached_only_through_deeper_events_is_scanned_whole(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    """The events of the new directory itself were lost: a dirty path below it still finds it."""
    src = tmp_path / "src"
    make_source(src)
    backup(repo, [str(src)])
    fresh = src / "quiet" / "brand-new" / "inner"
    fresh.mkdir(parents=True)
    (fresh / "x.txt").write_text("x\n")
    (fresh.parent / "sibling.txt").write_text("sibling\n")
    result = backup(repo, [str(src)], BackupOptions(dirty_paths={os.fsencode(fresh)}))
    assert result.files_new == 2
    restore_and_compare(repo_path, src, tmp_path / "restore", result.snapshot.id)


def test_no_parent_or_other_paths_mean_a_full_walk(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_source(src)
    dirty = {os.fsencode(src / "alpha")}
    first = backup(repo, [str(src)], BackupOptions(dirty_paths=dirty))
    assert not first.incremental and first.files_new > 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.txt").write_text("o\n")
    both = backup(repo, [str(src), str(other)], BackupOptions(dirty_paths=dirty))
    assert not both.incremental
    again = backup(repo, [str(src), str(other)], BackupOptions(dirty_paths=set()))
    assert again.incremental
    assert again.files_new == again.files_changed == 0
    assert again.files_unmodified == both.files_new + both.files_unmodified
    assert again.total_bytes == both.total_bytes
