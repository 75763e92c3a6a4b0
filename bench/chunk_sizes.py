"""Chunk-size sweep: the default FastCDC sizes chosen from measurements, not guessed.

For each average chunk size (min = avg/4, max = avg*8) a fresh repository backs up the
same generated data set, then the same ~1 % change. Each backup is a child process, so
its wall time, CPU time and peak RSS (os.wait4) belong to that run alone. Measured per
size: first-backup speed and repository size, dedup ratio, the bytes the change adds,
the real mean chunk size, and the blob count, projected to the index memory of a 1 TB
repository. The recommendation is computed from those figures.

    python -m bench.chunk_sizes [--size 1G] [--sizes 16K,32K,64K,128K,256K,1M]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.datagen import DATA_DIR, GIB, KIB, MIB, format_size, generate, mutate, parse_size
from bench.tools import PASSPHRASE, REPO_ROOT, Runner, StepResult, write_results
from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.chunker import Chunker
from vaultwatch.engine.index import ENTRY_DTYPE
from vaultwatch.engine.keys import KdfParams
from vaultwatch.engine.pack import DATA
from vaultwatch.engine.repository import ChunkerParams, Repository
from vaultwatch.store.local import LocalStore

# rich and bench.backup_bench are imported where used, so a measured child loads the
# engine and little else and its peak RSS is the backup's.
if TYPE_CHECKING:
    from rich.table import Table

DEFAULT_SIZES = "16K,32K,64K,128K,256K,1M"
# A benchmark repository needs no real key stretching; the KDF only slows init and open.
BENCH_KDF = KdfParams(1, 8192, 1)
# 1 TB as the design document counts it ("10 million blobs (about 1 TB)").
PROJECTED_BYTES = 10**12
INDEX_BUDGET = GIB
# The compact index keeps one ENTRY_DTYPE row per blob (49 bytes: id, type, pack, offset,
# length, raw length); the pack table is extra.
ENTRY_BYTES = ENTRY_DTYPE.itemsize
SPEED_TOLERANCE = 0.10
SUBDIR = "chunk-sizes"


def chunker_for(avg: int) -> ChunkerParams:
    """The sweep's rule: min = avg/4, max = avg*8 (the shape of the current default)."""
    return ChunkerParams(min_size=avg // 4, avg_size=avg, max_size=avg * 8)


def size_label(n: int) -> str:
    """'64 KiB', '1 MiB': exact binary units for chunk-size headings."""
    if n % MIB == 0:
        return f"{n // MIB} MiB"
    if n % KIB == 0:
        return f"{n // KIB} KiB"
    return f"{n} B"


def parse_sizes(text: str) -> list[int]:
    """Comma-separated average sizes, deduplicated and sorted; pyfastcdc's limits enforced."""
    sizes = sorted({parse_size(part) for part in text.split(",") if part.strip()})
    if not sizes:
        raise ValueError("no chunk sizes given")
    for avg in sizes:
        # pyfastcdc accepts min in [64, 1 MiB] and max in [1 KiB, 16 MiB].
        if not 256 <= avg <= 2 * MIB:
            raise ValueError(f"average chunk size {avg} is outside 256 B - 2 MiB")
    return sizes


# --------------------------------------------------------------------------- child


def child_backup(repo_path: Path, source: Path, result_path: Path) -> int:
    """One backup in this (measured) process; the engine's own figures go to result_path."""
    repo = Repository.open(LocalStore(repo_path), PASSPHRASE)
    try:
        result = backup(repo, [str(source)], BackupOptions(hostname="bench"))
    finally:
        repo.close()
    figures = {
        "seconds": result.duration,
        "bytes_read": result.bytes_read,
        "bytes_added": result.bytes_added,
        "bytes_stored": result.bytes_stored,
        "total_bytes": result.total_bytes,
        "files_new": result.files_new,
        "files_changed": result.files_changed,
        "files_unmodified": result.files_unmodified,
        "errors": [f"{e.path}: {e.message}" for e in result.errors],
    }
    result_path.write_text(json.dumps(figures, indent=1))
    return 1 if result.errors else 0


# --------------------------------------------------------------------------- one size


class SizeRunner(Runner):
    """A fresh repository with one chunk size; every backup runs as a measured child."""

    def __init__(self, workdir: Path, params: ChunkerParams, *, drop_caches: bool) -> None:
        self.name = f"avg-{params.avg_size}"
        super().__init__(workdir, drop_caches=drop_caches)
        self.params = params

    def tool_env(self) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH")
        return {"PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT)}

    def init_repo(self) -> None:
        """Created here, unmeasured: with the small KDF it takes milliseconds."""
        store = LocalStore(self.repo)
        store.create_if_missing()
        Repository.init(store, PASSPHRASE, kdf=BENCH_KDF, chunker=self.params).close()

    def measured_backup(self, source: Path, label: str) -> tuple[StepResult, dict[str, Any]]:
        """Drop the page cache, back up in a child, and return its step and engine figures."""
        out = self.base / f"backup-{label}.json"
        argv = [
            sys.executable,
            "-m",
            "bench.chunk_sizes",
            "--child-backup",
            str(self.repo),
            str(source.resolve()),
            str(out),
        ]
        step = self._run(f"backup-{label}", argv)
        if not step.ok:
            raise RuntimeError(
                f"{self.name}: backup {label} failed (exit {step.returncode}):\n{step.error_tail()}"
            )
        figures: dict[str, Any] = json.loads(out.read_text())
        return step, figures

    def index_counts(self) -> dict[str, int]:
        """Blobs in the repository's index, as the engine loads it."""
        repo = Repository.open(LocalStore(self.repo), PASSPHRASE)
        try:
            repo.load_index()
            data_blobs = data_bytes = 0
            for loc in repo.index.entries():
                if loc.type == DATA:
                    data_blobs += 1
                    data_bytes += loc.raw_length
            return {"blobs": len(repo.index), "data_blobs": data_blobs, "data_bytes": data_bytes}
        finally:
            repo.close()

    def chunk_seed(self) -> int:
        """The repository's secret chunker seed, so measured cuts match the backup's."""
        repo = Repository.open(LocalStore(self.repo), PASSPHRASE)
        try:
            return repo.master.chunker_seed
        finally:
            repo.close()


def cdc_mean(root: Path, params: ChunkerParams, seed: int) -> dict[str, int]:
    """Cut the large files as the backup does: small files are one chunk whatever the size."""
    chunker = Chunker(params.min_size, params.avg_size, params.max_size, seed)
    chunks = total = 0
    for path in sorted((root / DATA_DIR).rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                for chunk in chunker.chunks(fh):
                    chunks += 1
                    total += len(chunk)
    return {"chunks": chunks, "bytes": total, "mean": total // chunks if chunks else 0}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_metrics(run: dict[str, Any], dataset_bytes: int) -> dict[str, Any]:
    """The flat figures the table and the recommendation use."""
    fastest = run["fastest_first"]
    first, change = run["backups"][fastest], run["backups"]["change"]
    s_first, s_change = run["steps"][fastest], run["steps"]["change"]
    firsts = [run["steps"][k] for k in run["steps"] if k.startswith("first-")]
    index = run["index"]["after_first"]
    blobs = index["blobs"]
    return {
        "avg_size": run["chunker"]["avg_size"],
        "min_size": run["chunker"]["min_size"],
        "max_size": run["chunker"]["max_size"],
        "mean_chunk_bytes": run["cdc_large_files"]["mean"],
        "mean_data_blob_bytes": index["data_bytes"] // max(1, index["data_blobs"]),
        "first_backup_seconds": first["seconds"],
        "first_backup_throughput": dataset_bytes / first["seconds"],
        "first_backup_wall_seconds": s_first["seconds"],
        "first_backup_cpu_seconds": s_first["user_seconds"] + s_first["system_seconds"],
        "first_backup_peak_rss": max(s["max_rss_bytes"] for s in firsts),
        "first_backup_runs": [
            run["backups"][k]["seconds"] for k in run["backups"] if k.startswith("first-")
        ],
        "repo_bytes_first": run["repo"]["after_first"]["bytes"],
        "dedup_ratio": dataset_bytes / unique if (unique := index["data_bytes"]) else None,
        "change_backup_seconds": change["seconds"],
        "change_backup_wall_seconds": s_change["seconds"],
        "change_backup_cpu_seconds": s_change["user_seconds"] + s_change["system_seconds"],
        "change_backup_peak_rss": s_change["max_rss_bytes"],
        "change_bytes_added": change["bytes_added"],
        "change_growth_bytes": run["repo"]["after_change"]["bytes"]
        - run["repo"]["after_first"]["bytes"],
        "blobs": blobs,
        "change_new_blobs": run["index"]["after_change"]["blobs"] - blobs,
        "index_bytes_1tb": blobs / dataset_bytes * PROJECTED_BYTES * ENTRY_BYTES,
    }


# --------------------------------------------------------------------------- the sweep


def _ignore(_text: str) -> None:
    pass


def prepare_workdir(workdir: Path) -> Path:
    """The sweep's own scratch directory inside workdir, emptied first."""
    from bench.backup_bench import prepare_workdir as prepare

    base = workdir.resolve() / SUBDIR
    prepare(base)
    return base


def sweep(
    workdir: Path,
    avg_sizes: Sequence[int],
    *,
    size: int,
    seed: int = 1,
    fraction: float = 0.01,
    repeat: int = 1,
    drop_caches: bool = True,
    keep: bool = False,
    step: Callable[[str], None] = _ignore,
    note: Callable[[str], None] = _ignore,
) -> dict[str, Any]:
    """Generate the data once, then measure every chunk size on identical data and change.

    The first backup runs ``repeat`` times, each into a fresh repository, and the
    fastest counts: on a busy machine one run can be slowed by others' work, never
    sped up. ``workdir`` must be empty or a previous sweep's; ``step`` is told when
    each measured unit starts and ``note`` gets one line per result, for a live display.
    """
    from bench.backup_bench import machine_info

    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    base = prepare_workdir(workdir)
    pristine = base / "pristine"
    step(f"generating {format_size(size)} of data")
    dataset = generate(pristine, size, seed)
    note(
        f"data set: {format_size(dataset.total_bytes)} in {dataset.files:,} files, "
        f"made in {dataset.seconds:.1f} s"
    )
    load_samples: list[list[float]] = [_load()]
    mutation: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = []
    for avg in avg_sizes:
        params = chunker_for(avg)
        label = size_label(avg)
        runner = SizeRunner(base, params, drop_caches=drop_caches)
        runner.prepare()
        data = base / "data"  # same path for every size, so the second backup has a parent
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(pristine, data, symlinks=True)
        run: dict[str, Any] = {
            "label": label,
            "chunker": asdict(params),
            "steps": {},
            "backups": {},
            "repo": {},
            "index": {},
            "load_average": {},
        }

        for i in range(1, repeat + 1):
            key = f"first-{i}"
            step(f"{label}: first backup" + (f" ({i} of {repeat})" if repeat > 1 else ""))
            shutil.rmtree(runner.repo, ignore_errors=True)
            runner.init_repo()
            run["load_average"][key] = _load()
            result, run["backups"][key] = runner.measured_backup(data, key)
            run["steps"][key] = result.to_dict()
            load_samples.append(_load())
        # The fastest run gives the speed; the last repository goes on to the change.
        run["fastest_first"] = min(
            (k for k in run["backups"] if k.startswith("first-")),
            key=lambda k: float(run["backups"][k]["seconds"]),
        )
        run["repo"]["after_first"] = runner.repo_size().to_dict()
        run["index"]["after_first"] = runner.index_counts()

        # The same deterministic change on a fresh copy of the same bytes, for every size.
        changed = mutate(data, fraction, seed).to_dict()
        if mutation is None:
            mutation = changed
        elif changed != mutation:
            raise RuntimeError(f"{label}: the change differs from the first size's")

        step(f"{label}: backup after the change")
        run["load_average"]["change"] = _load()
        second, run["backups"]["change"] = runner.measured_backup(data, "change")
        run["steps"]["change"] = second.to_dict()
        run["repo"]["after_change"] = runner.repo_size().to_dict()
        run["index"]["after_change"] = runner.index_counts()
        load_samples.append(_load())

        run["cdc_large_files"] = cdc_mean(pristine, params, runner.chunk_seed())
        run["metrics"] = run_metrics(run, dataset.total_bytes)
        runs.append(run)
        m = run["metrics"]
        note(
            f"  {label:>7}: first {m['first_backup_seconds']:6.2f} s "
            f"({m['first_backup_throughput'] / MIB:6.1f} MiB/s, cpu {m['first_backup_cpu_seconds']:6.2f} s), "
            f"change {m['change_backup_seconds']:5.2f} s adds {format_size(m['change_bytes_added'])}, "
            f"{m['blobs']:,} blobs, mean chunk {format_size(m['mean_chunk_bytes'])}, "
            f"load {run['load_average'][run['fastest_first']][0]:.1f}"
        )
        if not keep:
            shutil.rmtree(runner.repo, ignore_errors=True)
    shutil.rmtree(base / "data", ignore_errors=True)
    if not keep:  # the machine is shared: leave only the small logs behind
        shutil.rmtree(pristine, ignore_errors=True)

    steps = [s for r in runs for s in r["steps"].values()]
    capacity = sum(s["seconds"] for s in steps) * (os.cpu_count() or 1)
    other = sum(s["other_cpu_seconds"] for s in steps)
    ones = [sample[0] for sample in load_samples]
    return {
        "benchmark": "chunk-sizes",
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 1),
        "command": " ".join(["python -m bench.chunk_sizes", *sys.argv[1:]]),
        "machine": machine_info(),
        "page_cache_dropped": bool(steps) and all(s["dropped_cache"] for s in steps),
        "other_load": round(other / capacity, 3) if capacity else 0.0,
        "load_average": {"min_1m": min(ones), "max_1m": max(ones), "samples": load_samples},
        "size_requested": size,
        "seed": seed,
        "fraction": fraction,
        "repeat": repeat,
        "rule": "min = avg/4, max = avg*8",
        "index_entry_bytes": ENTRY_BYTES,
        "projected_bytes": PROJECTED_BYTES,
        "dataset": dataset.to_dict(),
        "mutation": mutation,
        "runs": runs,
        "recommendation": recommend([r["metrics"] for r in runs]),
    }


def recommend(metrics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Smallest average within 10 % of the fastest first backup whose 1 TB index fits 1 GiB.

    Smaller chunks dedup small changes better, so the smallest size that costs
    neither speed nor too much index memory wins; the current default is judged
    against the same rule.
    """
    default = ChunkerParams()
    fastest = max(m["first_backup_throughput"] for m in metrics)
    floor = fastest * (1 - SPEED_TOLERANCE)

    def fails(m: dict[str, Any]) -> list[str]:
        why = []
        if m["first_backup_throughput"] < floor:
            why.append(f"first backup {1 - m['first_backup_throughput'] / fastest:.0%} slower")
        if m["index_bytes_1tb"] >= INDEX_BUDGET:
            why.append(f"1 TB index {format_size(m['index_bytes_1tb'])}")
        return why

    ok = [m for m in metrics if not fails(m)]
    best = min(ok, key=lambda m: m["avg_size"]) if ok else None
    fast = [m for m in metrics if m["first_backup_throughput"] >= floor]
    fast_only = min(fast, key=lambda m: m["avg_size"])
    leanest = min(metrics, key=lambda m: m["index_bytes_1tb"])
    # CPU time is what a busy machine disturbs least: the same speed check on it.
    least_cpu = min(m["first_backup_cpu_seconds"] for m in metrics)
    cpu_ok = [
        m["avg_size"]
        for m in metrics
        if m["first_backup_cpu_seconds"] * (1 - SPEED_TOLERANCE) <= least_cpu
    ]
    follows_rule = default == chunker_for(default.avg_size)
    measured = next((m for m in metrics if m["avg_size"] == default.avg_size), None)
    if measured is None:
        verdict, supported = "not measured in this sweep", None
    elif best is not None and best["avg_size"] == default.avg_size:
        verdict, supported = "supported: it is the recommended size", True
    elif best is None:
        why = ", ".join(fails(measured)) + " (no size meets both limits here)"
        supported = False
        if fast_only is measured:
            verdict = f"partly supported: the smallest size within {SPEED_TOLERANCE:.0%} of the fastest, but {why}"
        else:
            verdict = f"not supported: {why}; on speed alone the rule picks {size_label(fast_only['avg_size'])}"
    elif fails(measured):
        verdict, supported = "not supported: " + ", ".join(fails(measured)), False
    else:
        assert best is not None  # measured passes, so some size does
        saved = measured["change_bytes_added"] - best["change_bytes_added"]
        verdict = f"not supported: {size_label(best['avg_size'])} also meets both limits" + (
            f" and its 1 % change adds {format_size(saved)} less" if saved > 0 else ""
        )
        supported = False
    return {
        "rule": f"smallest average whose first-backup throughput is within "
        f"{SPEED_TOLERANCE:.0%} of the fastest and whose projected 1 TB index is under "
        f"{format_size(INDEX_BUDGET)}",
        "fastest_throughput": fastest,
        "recommended": asdict(chunker_for(best["avg_size"])) if best else None,
        "qualifying": [m["avg_size"] for m in ok],
        # What speed alone would pick, and the smallest index any size gives: when no size
        # fits, they tell whether chunk size could fix the index at all.
        "speed_only": fast_only["avg_size"],
        "within_speed_by_cpu": cpu_ok,
        "smallest_index": {"avg_size": leanest["avg_size"], "bytes": leanest["index_bytes_1tb"]},
        "rejected": {str(m["avg_size"]): fails(m) for m in metrics if fails(m)},
        "default": asdict(default),
        "default_follows_rule": follows_rule,
        "default_supported": supported,
        "default_verdict": verdict,
    }


# --------------------------------------------------------------------------- reporting


COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    (
        "Avg (min-max)",
        lambda m: (
            f"{size_label(m['avg_size'])} ({size_label(m['min_size'])}-{size_label(m['max_size'])})"
        ),
    ),
    ("Mean chunk", lambda m: format_size(m["mean_chunk_bytes"])),
    ("Mean blob", lambda m: format_size(m["mean_data_blob_bytes"])),
    ("First backup", lambda m: f"{m['first_backup_seconds']:.2f} s"),
    ("Throughput", lambda m: f"{m['first_backup_throughput'] / MIB:.1f} MiB/s"),
    ("CPU", lambda m: f"{m['first_backup_cpu_seconds']:.2f} s"),
    (
        "Peak RSS",
        lambda m: format_size(max(m["first_backup_peak_rss"], m["change_backup_peak_rss"])),
    ),
    ("Repo", lambda m: format_size(m["repo_bytes_first"])),
    ("Dedup", lambda m: f"{m['dedup_ratio']:.3f}x" if m["dedup_ratio"] else "—"),
    ("Change backup", lambda m: f"{m['change_backup_seconds']:.2f} s"),
    ("Change adds", lambda m: format_size(m["change_bytes_added"])),
    ("Repo growth", lambda m: format_size(m["change_growth_bytes"])),
    ("Blobs", lambda m: f"{m['blobs']:,}"),
    ("Index @ 1 TB", lambda m: format_size(m["index_bytes_1tb"])),
)


def recommendation_text(results: dict[str, Any]) -> list[str]:
    """The recommendation and the verdict on the default, as short sentences."""
    rec = results["recommendation"]
    d = rec["default"]
    default = (
        f"{size_label(d['min_size'])} / {size_label(d['avg_size'])} / {size_label(d['max_size'])}"
    )
    if rec["recommended"]:
        r = rec["recommended"]
        head = (
            f"Recommended: avg {size_label(r['avg_size'])} (min {size_label(r['min_size'])}, "
            f"max {size_label(r['max_size'])})"
        )
    else:
        low = rec["smallest_index"]
        head = (
            "Recommended: none — no size met both limits. Even "
            f"{size_label(low['avg_size'])} projects a {format_size(low['bytes'])} index for 1 TB, "
            "so chunk size alone cannot meet the index limit on this data set (each small "
            f"file is a blob of its own). On speed alone: {size_label(rec['speed_only'])}"
        )
    rejected = "; ".join(
        f"{size_label(int(k))}: {', '.join(v)}" for k, v in rec["rejected"].items()
    )
    return [
        f"{head}. Rule: the {rec['rule']}.",
        f"Rejected: {rejected}." if rejected else "No size was rejected.",
        f"Speed judged by first-backup CPU time instead (steadier on a busy machine), within "
        f"{SPEED_TOLERANCE:.0%} of the least: "
        + ", ".join(size_label(a) for a in rec["within_speed_by_cpu"])
        + ".",
        f"Current default (ChunkerParams()): min/avg/max {default}"
        + (" (follows min = avg/4, max = avg*8)" if rec["default_follows_rule"] else "")
        + f" — {rec['default_verdict']}.",
    ]


def rich_table(results: dict[str, Any]) -> Table:
    """The per-size figures for the terminal."""
    from rich.table import Table

    table = Table(title=f"Chunk sizes — {format_size(results['dataset']['total_bytes'])} data set")
    for title, _ in COLUMNS:
        table.add_column(title, justify="left" if title.startswith("Avg") else "right")
    rec = results["recommendation"]["recommended"]
    for run in results["runs"]:
        m = run["metrics"]
        style = "bold green" if rec and m["avg_size"] == rec["avg_size"] else None
        table.add_row(*(cell(m) for _, cell in COLUMNS), style=style)
    return table


def render_markdown(results: dict[str, Any]) -> str:
    """The report: figures, recommendation, method, data set, change and machine."""
    ds, mut, machine = results["dataset"], results["mutation"] or {}, results["machine"]
    load = results["load_average"]
    busy = results["other_load"]
    lines = [
        f"# Chunk-size sweep — {results['started_at']}",
        "",
        f"{format_size(ds['total_bytes'])} generated data set (seed {ds['seed']}, "
        f"{ds['files']:,} files), then {mut.get('changed_fraction', 0):.2%} of it changed; "
        f"{machine['cores']} cores, {format_size(machine['ram_bytes'])} RAM ({machine['cpu']}). "
        f"Page cache dropped before every backup: {'yes' if results['page_cache_dropped'] else 'no'}. "
        f"Load average (1 min) during the run: {load['min_1m']:.2f}-{load['max_1m']:.2f}; "
        f"other work used {busy:.0%} of the CPU during the backups.",
        "",
        *(
            [
                "**Warning: the machine was not idle**, so times are noisy; CPU time is the "
                "steadier figure.",
                "",
            ]
            if busy > 0.05
            else []
        ),
        "| " + " | ".join(t for t, _ in COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    rec = results["recommendation"]["recommended"]
    for run in results["runs"]:
        m = run["metrics"]
        cells = [cell(m) for _, cell in COLUMNS]
        if rec and m["avg_size"] == rec["avg_size"]:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *recommendation_text(results), ""]
    lines += [
        "## How the figures are made",
        "",
        f"- Sizes follow one rule: {results['rule']}. *Mean chunk* is the real mean of "
        "FastCDC's cuts over the large files (the repository's own seed); pyfastcdc's "
        "average is about avg + min. *Mean blob* is the mean of the unique data blobs in "
        "the index, where every small file is one blob whatever the chunk size.",
        "- *First backup* and *Throughput*: the engine's backup time (lock, index, scan, "
        "read, chunk, hash, compress, encrypt, pack, write) in a child process, data-set "
        "bytes divided by it; the child's wall time (with interpreter start) is in the "
        "JSON. *CPU* and *Peak RSS* are the child's own, from os.wait4.",
        "- *Dedup*: data-set bytes / bytes of the unique data blobs after the first backup "
        "(before compression). *Change adds*: new blob bytes (data and trees, before "
        "compression) of the backup after the change; "
        "*Repo growth*: the repository's apparent size growth (compressed, encrypted, "
        "with trees and index).",
        f"- *Index @ 1 TB*: blobs in the index after the first backup (data and trees) per "
        f"data-set byte x 10^12 x {results['index_entry_bytes']} bytes per compact index entry.",
        "",
        "## Data set and change",
        "",
        f"Text {ds['categories']['text']['share']:.0%}, binary "
        f"{ds['categories']['binary']['share']:.0%}, duplicates "
        f"{ds['categories']['duplicate']['share']:.0%}; {ds['dirs']:,} directories.",
    ]
    if mut:
        lines += [
            "",
            f"Change (identical for every size): {format_size(mut['changed_bytes'])} written: "
            f"{mut['overwrites']} in-place overwrites ({format_size(mut['overwritten_bytes'])}) "
            f"in {mut['overwritten_files']} large files, {format_size(mut['appended_bytes'])} "
            f"appended to {mut['appended_files']} logs, {mut['edited_files']} small files "
            f"edited, {mut['new_files']} new files ({format_size(mut['new_bytes'])}), "
            f"{mut['deleted_files']} deleted.",
        ]
    lines += [
        "",
        "## Machine",
        "",
        f"{machine['cpu']}, {machine['cores']} cores, {format_size(machine['ram_bytes'])} RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}. Sweep took "
        f"{results['seconds']:.0f} s.",
        "",
        f"Command: `{results['command']}`",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chunk_sizes",
        description="Measure backup speed, dedup and index size for several chunk sizes.",
    )
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"))
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes(DEFAULT_SIZES),
        help=f"average chunk sizes; min = avg/4, max = avg*8 (default {DEFAULT_SIZES})",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO_ROOT / "bench" / "work",
        help=f"scratch space; the sweep empties and uses <workdir>/{SUBDIR}",
    )
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="first backups per size, each into a fresh repository; the fastest counts (default 3)",
    )
    parser.add_argument("--no-drop-caches", dest="drop_caches", action="store_false")
    parser.add_argument(
        "--keep", action="store_true", help="keep the data set and each size's repository"
    )
    parser.add_argument("--child-backup", nargs=3, type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_backup:
        return child_backup(*args.child_backup)

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = 200  # a log keeps the whole table on one line per size
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting", total=1 + (args.repeat + 1) * len(args.sizes))
        begun = False

        def step(text: str) -> None:
            nonlocal begun
            if begun:
                progress.advance(task)
            begun = True
            progress.update(task, description=text)

        results = sweep(
            args.workdir,
            args.sizes,
            size=args.size,
            seed=args.seed,
            fraction=args.fraction,
            repeat=args.repeat,
            drop_caches=args.drop_caches,
            keep=args.keep,
            step=step,
            note=console.print,
        )
        progress.advance(task)
    json_path, md_path = write_results(
        "chunk-sizes", results, render_markdown(results), args.results
    )
    console.print()
    console.print(rich_table(results))
    for line in recommendation_text(results):
        console.print(line, markup=False, highlight=False)
    if not results["page_cache_dropped"]:
        console.print("[yellow]Page cache NOT dropped (not permitted or disabled).[/]")
    console.print(f"\nWrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
