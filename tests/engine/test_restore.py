"""Restore's selection by restic patterns and its read-back verification."""

from __future__ import annotations

import os
from pathlib import Path

from vaultwatch.engine.backup import backup
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import RestoreOptions, restore


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_excludes_include_globs_and_dirs_on_the_way(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "cache").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "empty").mkdir()
    for rel in ("a/x.txt", "a/cache/y.txt", "a/z.log", "b/w.txt"):
        (src / rel).write_text(rel)
    snap = backup(repo, [str(src)]).snapshot
    rel = src.relative_to("/")

    out = tmp_path / "o1"
    r = restore(repo, snap, out, RestoreOptions(excludes=["cache", "*.log"]))
    assert _files(out / rel) == {"a/x.txt", "b/w.txt"} and r.files_restored == 2

    out = tmp_path / "o2"
    r = restore(repo, snap, out, RestoreOptions(includes=["*.txt"], excludes=["/**/b"]))
    assert _files(out / rel) == {"a/x.txt", "a/cache/y.txt"}
    assert not (out / rel / "empty").exists() and not (out / rel / "b").exists()
    made = sum(1 for p in out.rglob("*") if p.is_dir())
    assert r.dirs == made


def test_verify_counts_and_catches(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(3_000_000))
    (src / "small").write_text("s")
    os.link(src / "small", src / "hard")
    snap = backup(repo, [str(src)]).snapshot
    out = tmp_path / "out"
    r = restore(repo, snap, out, RestoreOptions(verify=True))
    assert r.files_verified == 3 and not r.errors
    big = out / src.relative_to("/") / "big"
    st = big.stat()
    with open(big, "r+b") as f:
        f.seek(2_000_000)
        f.write(b"\0")
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = restore(repo, snap, out, RestoreOptions(verify=True))
    assert again.files_skipped == 2 and again.files_verified == 2  # the hard link is a link
    assert [e.path for e in again.errors] == [str(big)]
    assert "content differs at offset" in again.errors[0].message
