"""Rebuilding the index from the packs alone."""

from __future__ import annotations

from pathlib import Path

from tests.engine.conftest import reopen
from tests.engine.treecompare import build_tree, describe
from vaultwatch.engine.backup import backup
from vaultwatch.engine.check import check
from vaultwatch.engine.repair import repair_index
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import restore


def test_lost_and_stale_index_files_are_replaced(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    build_tree(src)
    backup(repo, [str(src)])
    for f in (repo_path / "index").iterdir():
        f.unlink()
    (repo_path / "index" / ("00" * 32)).write_bytes(b"garbage")  # a damaged index file goes too
    result = repair_index(reopen(repo_path))
    packs = [p for p in (repo_path / "data").rglob("*") if p.is_file()]
    assert result.packs == len(packs) and result.damaged_packs == []
    assert result.index_files_removed == 1
    assert [p.name for p in (repo_path / "index").iterdir()] != ["00" * 32]
    fresh = reopen(repo_path)
    assert check(fresh, read_data=True).ok
    target = tmp_path / "out"
    restore(fresh, fresh.find_snapshot("latest"), target)
    assert describe(target / src.relative_to("/")) == describe(src)
