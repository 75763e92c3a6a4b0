"""Restore never writes outside its target, and resumes without rewriting what is already right."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.engine.conftest import reopen
from vaultwatch.engine import restore as restore_module
from vaultwatch.engine.backup import backup
from vaultwatch.engine.errors import EngineError
from vaultwatch.engine.pack import DATA, TREE
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import RestoreTargetFullError, restore
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import DIR, FILE, SYMLINK, Node, Tree


def _hostile_snapshot(repo: Repository) -> Snapshot:
    with repo.writer() as w:
        content, _ = w.save(DATA, b"planted by an attacker\n")
        evil = [
            Node(name=b"..", type=FILE, mode=0o644, size=23, content=[content]),
            Node(name=b"../../escaped", type=FILE, mode=0o644, size=23, content=[content]),
            Node(name=b"/etc/passwd-x", type=FILE, mode=0o644, size=23, content=[content]),
            Node(name=b"a\0b", type=FILE, mode=0o644, size=23, content=[content]),
            Node(name=b"fine.txt", type=FILE, mode=0o644, size=23, content=[content]),
            Node(name=b"escape-link", type=SYMLINK, mode=0o777, target=b"/etc"),
        ]
        sub, _ = w.save(TREE, Tree(evil).to_bytes())
        root, _ = w.save(
            TREE, Tree([Node(name=b"data", type=DIR, mode=0o755, subtree=sub)]).to_bytes()
        )
    snap = Snapshot(datetime.now(UTC), root, ["/data"], "host")
    repo.save_snapshot(snap)
    return snap


def test_hostile_names_are_refused_and_nothing_escapes(repo: Repository, tmp_path: Path) -> None:
    snap = _hostile_snapshot(repo)
    jail = tmp_path / "jail"
    target = jail / "target"
    result = restore(repo, snap, target)
    messages = " ".join(e.message for e in result.errors)
    assert "unsafe name" in messages
    assert len(result.errors) == 4
    assert (target / "data" / "fine.txt").read_text() == "planted by an attacker\n"
    # the symlink is recreated as a symlink, never followed
    assert os.readlink(target / "data" / "escape-link") == "/etc"
    outside = sorted(
        p.relative_to(jail) for p in jail.rglob("*") if target not in p.parents and p != target
    )
    assert outside == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jail", "repo"]


def test_symlinked_parent_in_target_is_refused(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("secret")
    snap = backup(repo, [str(src)]).snapshot
    target = tmp_path / "target"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target.mkdir()
    first = str(src).lstrip("/").split("/")[0]
    os.symlink(elsewhere, target / first)  # planted: target/<first component> -> elsewhere
    result = restore(repo, snap, target)
    assert result.errors
    assert all("symlink" in e.message for e in result.errors)
    assert list(elsewhere.iterdir()) == []


def test_target_that_is_a_file_is_refused(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    snap = backup(repo, [str(src)]).snapshot
    (tmp_path / "file").write_text("x")
    with pytest.raises(EngineError, match="not a directory"):
        restore(repo, snap, tmp_path / "file")


def test_existing_symlink_where_a_file_goes_is_replaced_not_followed(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("from backup")
    snap = backup(repo, [str(src)]).snapshot
    victim = tmp_path / "victim"
    victim.write_text("must stay")
    target = tmp_path / "target"
    dest = target / str(src).lstrip("/")
    dest.mkdir(parents=True)
    os.symlink(victim, dest / "f.txt")
    result = restore(repo, snap, target)
    assert not result.errors
    assert victim.read_text() == "must stay"
    assert not (dest / "f.txt").is_symlink()
    assert (dest / "f.txt").read_text() == "from backup"


def test_interrupted_restore_continues_without_rewriting_correct_files(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    big = os.urandom(6 * 1024 * 1024)
    for i in range(4):
        (src / f"f{i}.bin").write_bytes(big[i:] + bytes([i]))
    snap = backup(repo, [str(src)]).snapshot
    target = tmp_path / "target"
    first = restore(reopen(repo_path), snap, target)
    assert first.files_restored == 4
    out = target / str(src).lstrip("/")
    # simulate an interruption: one file half written, one never created, one complete
    with open(out / "f1.bin", "r+b") as f:
        f.truncate(3 * 1024 * 1024)
    (out / "f2.bin").unlink()
    good_before = os.stat(out / "f0.bin")
    second = restore(reopen(repo_path), snap, target)
    assert not second.errors
    assert second.files_skipped == 2  # f0 and f3 were complete
    assert second.files_restored == 2
    # only the missing half of f1 and all of f2 were written
    assert second.bytes_written < 3 * 1024 * 1024 + len(big) + 1024 * 1024
    assert os.stat(out / "f0.bin").st_ino == good_before.st_ino
    for i in range(4):
        assert (out / f"f{i}.bin").read_bytes() == big[i:] + bytes([i])


def test_each_directory_is_checked_once_however_many_files_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The symlink check runs per directory, not per file: a restore asks for the same parent often."""
    dirs = restore_module._SafeDirs(os.fsencode(tmp_path), root_is_new=False)
    checked: list[bytes] = []
    real_lstat = os.lstat

    def counting_lstat(path: bytes) -> os.stat_result:
        checked.append(path)
        return real_lstat(path)

    monkeypatch.setattr(restore_module.os, "lstat", counting_lstat)
    paths = {dirs.ensure([b"srv", b"www"]) for _ in range(100)}
    assert paths == {os.fsencode(tmp_path / "srv" / "www")}
    assert checked == [os.fsencode(tmp_path / "srv"), os.fsencode(tmp_path / "srv" / "www")]
    assert (tmp_path / "srv" / "www").is_dir()


@contextmanager
def small_file_system(mountpoint: Path, size: str = "2m") -> Iterator[Path]:
    """A real file system of `size` (tmpfs) at `mountpoint`, to fill up; needs root."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs (root needed): {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def many_files(root: Path, count: int = 200, size: int = 32 * 1024) -> Path:
    """`count` incompressible files: far more than a small file system holds."""
    for i in range(count):
        sub = root / f"d{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.bin").write_bytes(os.urandom(size))
    return root


def test_a_full_target_stops_the_restore_at_once(repo: Repository, tmp_path: Path) -> None:
    source = many_files(tmp_path / "src")  # 6.4 MiB
    snap = backup(repo, [str(source)]).snapshot
    with small_file_system(tmp_path / "small") as target:
        started = time.monotonic()
        with pytest.raises(RestoreTargetFullError, match="no space left") as raised:
            restore(repo, snap, target)
        assert time.monotonic() - started < 30
        assert "run the same restore again" in str(raised.value)
        # Room again: the same restore continues and finishes.
        subprocess.run(["mount", "-o", "remount,size=16m", str(target)], check=True)
        result = restore(repo, snap, target)
        assert result.errors == []
        restored = target / str(source).lstrip("/")
        for path in source.rglob("*.bin"):
            assert (restored / path.relative_to(source)).read_bytes() == path.read_bytes()
