"""The dry run predicts exactly what the backup then does, and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.backup_plan import dry_run
from vaultwatch.engine.repository import Repository


def _objects(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "locks" not in p.parts)


def test_dry_run_matches_the_backup(repo: Repository, repo_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a.txt").write_text("a" * 1000)
    (src / "d" / "b.bin").write_bytes(os.urandom(200_000))
    (src / "d" / "skip.tmp").write_text("x")
    (src / "copy.bin").write_bytes((src / "d" / "b.bin").read_bytes())  # deduplicated
    options = BackupOptions(excludes=["*.tmp"])
    before = _objects(repo_path)
    plan = dry_run(repo, [str(src)], options)
    assert _objects(repo_path) == before
    done = backup(repo, [str(src)], options)
    assert (plan.files_new, plan.files_changed, plan.files_unmodified) == (3, 0, 0)
    assert plan.files_new == done.files_new and plan.total_bytes == done.total_bytes
    assert plan.bytes_added == 201_000  # file data once: copy.bin deduplicates against b.bin
    assert 201_000 <= done.bytes_added < 201_000 + 10_000  # the backup adds its trees too
    assert plan.dirs == done.dirs
    assert {f.path for f in plan.files} == {
        str(src / "a.txt"),
        str(src / "d" / "b.bin"),
        str(src / "copy.bin"),
    }

    (src / "a.txt").write_text("changed")
    again = dry_run(repo, [str(src)], options)
    assert (again.files_new, again.files_changed, again.files_unmodified) == (0, 1, 2)
    assert again.parent == done.snapshot.id and again.bytes_added == len("changed")
