"""Change-driven backups: what a snapshot costs when little changed.

Two figures, both from the engine in this process on a local repository:

1. Metadata a snapshot stores for a one-line append to one file in a directory of
   10,000 files six levels deep: repository bytes added by that snapshot, with the
   large-directory split switched off (one tree blob per directory, the format before
   split trees) and on.
2. Time of a no-change backup of a generated tree of ``--files`` files: a full walk
   (every entry lstat-ed, every tree rebuilt) against an incremental one told that one
   directory changed.

    python -m bench.incremental [--files 78600] [--wide 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.service import add_output_options, bench_console, load_average, now_iso
from bench.tools import write_results
from vaultwatch.engine import tree as tree_module
from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.keys import KdfParams
from vaultwatch.engine.repository import Repository
from vaultwatch.store.local import LocalStore

FAST_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
PASSPHRASE = "bench incremental"
FILES_PER_DIR = 100


def repo_bytes(path: Path) -> int:
    """Bytes of every object in the repository directory."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def new_repo(path: Path) -> Repository:
    if path.exists():
        shutil.rmtree(path)
    store = LocalStore(path)
    store.create_if_missing()
    return Repository.init(store, PASSPHRASE, kdf=FAST_KDF)


@contextmanager
def split_trees(enabled: bool) -> Iterator[None]:
    """Switch the large-directory split off (every tree one blob) or leave it on."""
    saved = tree_module.SPLIT_NODES
    if not enabled:
        tree_module.SPLIT_NODES = 1 << 62
    try:
        yield
    finally:
        tree_module.SPLIT_NODES = saved


def make_wide_dir(root: Path, files: int) -> Path:
    """``files`` small distinct files in a directory six levels below ``root``."""
    deep = root.joinpath("a", "b", "c", "d", "e", "wide")
    deep.mkdir(parents=True)
    for i in range(files):
        (deep / f"file-{i:05d}.log").write_text(f"log {i}\n" + "line of text\n" * (i % 7))
    return deep


def append_growth(work: Path, files: int, *, split: bool, incremental: bool) -> dict[str, Any]:
    """Bytes stored by each of a few snapshots that each append one line to one file."""
    src = work / "wide-src"
    if src.exists():
        shutil.rmtree(src)
    deep = make_wide_dir(src, files)
    repo_path = work / "wide-repo"
    growth = []
    with split_trees(split):
        repo = new_repo(repo_path)
        backup(repo, [str(src)])
        for k in range(5):
            target = deep / f"file-{(k * 997) % files:05d}.log"
            with open(target, "a") as fh:
                fh.write(f"appended line {k}\n")
            before = repo_bytes(repo_path)
            dirty = {os.fsencode(deep)} if incremental else None
            backup(repo, [str(src)], BackupOptions(dirty_paths=dirty))
            growth.append(repo_bytes(repo_path) - before)
        repo.close()
    return {
        "split_trees": split,
        "incremental": incremental,
        "bytes_per_snapshot": growth,
        "median_bytes": sorted(growth)[len(growth) // 2],
    }


def make_big_tree(root: Path, files: int) -> list[Path]:
    """``files`` small files, 100 a directory, directories nested three levels."""
    dirs = []
    for i in range(files):
        if i % FILES_PER_DIR == 0:
            n = i // FILES_PER_DIR
            d = root / f"p{n // 1000:03d}" / f"q{(n // 30) % 100:03d}" / f"d{n:06d}"
            d.mkdir(parents=True, exist_ok=True)
            dirs.append(d)
        (dirs[-1] / f"f{i % FILES_PER_DIR:03d}.txt").write_bytes(b"x%d\n" % i)
    return dirs


def scan_times(work: Path, files: int, rounds: int) -> dict[str, Any]:
    """No-change backup time: full walk against incremental with one dirty directory."""
    src = work / "big-src"
    if src.exists():
        shutil.rmtree(src)
    dirs = make_big_tree(src, files)
    repo = new_repo(work / "big-repo")
    t0 = time.monotonic()
    backup(repo, [str(src)])
    first = time.monotonic() - t0
    full, incremental = [], []
    same = True
    for k in range(rounds):
        t0 = time.monotonic()
        r = backup(repo, [str(src)], BackupOptions())
        full.append(time.monotonic() - t0)
        dirty = {os.fsencode(dirs[(k * 7919) % len(dirs)])}
        t0 = time.monotonic()
        inc = backup(repo, [str(src)], BackupOptions(dirty_paths=dirty))
        incremental.append(time.monotonic() - t0)
        # Equal unless a directory's atime moved between the two runs (both are right then).
        same = same and inc.snapshot.tree == r.snapshot.tree
    repo.close()
    return {
        "files": files,
        "directories": len(dirs),
        "first_backup_seconds": round(first, 2),
        "full_walk_seconds": [round(x, 3) for x in full],
        "incremental_seconds": [round(x, 3) for x in incremental],
        "full_walk_median": round(sorted(full)[len(full) // 2], 3),
        "incremental_median": round(sorted(incremental)[len(incremental) // 2], 3),
        "same_tree_as_full_walk": same,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=78_600, help="files in the scan test")
    parser.add_argument("--wide", type=int, default=10_000, help="files in the wide directory")
    parser.add_argument("--rounds", type=int, default=3)
    add_output_options(parser, "incremental")
    args = parser.parse_args(argv)
    console = bench_console()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"started_at": now_iso(), "load_before": load_average()}
    console.print(f"one-line append in a directory of {args.wide} files ...")
    results["append"] = [
        append_growth(work, args.wide, split=False, incremental=False),
        append_growth(work, args.wide, split=True, incremental=True),
    ]
    for row in results["append"]:
        console.print(
            f"  split trees {'on ' if row['split_trees'] else 'off'}: "
            f"{row['median_bytes']:,} bytes a snapshot ({row['bytes_per_snapshot']})"
        )
    console.print(f"no-change backups of {args.files:,} files ...")
    results["scan"] = scan_times(work, args.files, args.rounds)
    scan = results["scan"]
    console.print(
        f"  full walk {scan['full_walk_median']} s, incremental {scan['incremental_median']} s"
    )
    results["load_after"] = load_average()
    for path in write_results("incremental", results, _markdown(results), args.results):
        console.print(f"wrote {path}")
    return 0


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Change-driven backups",
        "",
        f"Run {results['started_at']}, load average before {results['load_before']}, "
        f"after {results['load_after']}.",
        "",
        "| one-line append, 10,000-file directory at depth 6 | bytes stored a snapshot |",
        "| --- | --- |",
    ]
    for row in results["append"]:
        name = "split trees, incremental" if row["split_trees"] else "one blob a tree, full walk"
        lines.append(f"| {name} | {row['median_bytes']:,} |")
    scan = results["scan"]
    lines += [
        "",
        f"No-change backup of {scan['files']:,} files in {scan['directories']:,} directories: "
        f"full walk {scan['full_walk_median']} s, incremental (one dirty directory) "
        f"{scan['incremental_median']} s.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
