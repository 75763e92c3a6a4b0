"""Backup benchmark: vaultwatch against four anchors (restic 0.18 and 0.14, borg 1.2 and 1.4).

Two data sets, each run by every tool in the same run: the generated set (first backup,
no-change backup, backup after a ~1 % change, full restore) and two Linux source releases
from Debian's packages (first backup of release A, no-change backup, backup after an
in-place upgrade to release B, full restore). Every restore is verified byte for byte.
The tools' order rotates from step to step, so none is always first. The goals are
judged against restic 0.18. Results go to bench/results/ as JSON and Markdown.

    python -m bench.backup_bench [--datasets generated,kernel] [--runs 2] [--size 1G]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.anchors import ANCHORS, REFERENCE, TOOLS_CACHE, InstallError
from bench.datagen import MIB, format_size, parse_size
from bench.datasets import DataSet, GeneratedSet, KernelSet
from bench.tools import (
    BORG_ENCRYPTION,
    REPO_ROOT,
    Borg,
    DiskUsage,
    Restic,
    Runner,
    StepResult,
    Vaultwatch,
    drop_page_cache,
    write_results,
)
from bench.treecmp import compare_trees

WORK_MARKER = ".bench-workdir"
TOOL_NAMES = ("vaultwatch", *ANCHORS)
DATASET_NAMES = ("generated", "kernel")
STEPS = ("init", "backup-first", "backup-nochange", "backup-change", "restore")
STEP_TITLES = {
    "init": "init",
    "backup-first": "first backup",
    "backup-nochange": "no-change backup",
    "backup-change": "backup after change",
    "restore": "full restore",
}
MEASURED_STEPS = STEPS[1:]  # init is left out of memory: its peak is the key derivation's


@dataclass
class ToolRun:
    """Everything measured for one tool on one data set in one run."""

    runner: Runner
    unavailable: str | None = None
    error: str | None = None
    steps: dict[str, StepResult] = field(default_factory=dict)
    repo: dict[str, DiskUsage] = field(default_factory=dict)
    cache: DiskUsage | None = None
    verify: dict[str, object] | None = None

    @property
    def name(self) -> str:
        return self.runner.name

    @property
    def active(self) -> bool:
        return self.unavailable is None and self.error is None

    def status(self) -> str:
        if self.unavailable:
            return "missing"
        return "failed" if self.error else "ok"


@dataclass(frozen=True)
class Goal:
    """A target for vaultwatch relative to the reference anchor.

    A *speed* goal's ratio is the reference's time over ours (a speed-up, met when at
    least factor); a *size* goal's is ours over the reference's (met when at most factor),
    the worst of its metrics when it has several.
    """

    key: str
    title: str
    kind: str  # "speed" or "size"
    metrics: tuple[str, ...]
    factor: float
    target: str
    datasets: tuple[str, ...] = DATASET_NAMES


GOALS = (
    Goal("first_backup", "First backup", "speed", ("first_backup_seconds",), 1.5, "≥ 1.5x faster"),
    Goal(
        "nochange_backup",
        "No-change backup",
        "speed",
        ("nochange_backup_seconds",),
        2.0,
        "≥ 2x faster",
    ),
    Goal(
        "change_backup",
        "Backup after change / upgrade",
        "speed",
        ("change_backup_seconds",),
        1.5,
        "≥ 1.5x faster",
    ),
    Goal("restore", "Full restore", "speed", ("restore_seconds",), 2.0, "≥ 2x faster"),
    Goal("repo_size", "Repository size", "size", ("repo_bytes",), 1.0, "no larger"),
    Goal(
        "peak_memory",
        "Peak memory (RSS)",
        "size",
        tuple(f"rss_{step}" for step in MEASURED_STEPS),
        1.0,
        "no higher at every step",
    ),
    Goal(
        "change_growth",
        "Repository growth from the change",
        "size",
        ("change_growth_bytes",),
        0.5,
        "≤ half",
        ("generated",),
    ),
)


# --------------------------------------------------------------------------- measuring


def machine_info() -> dict[str, object]:
    """Enough about the host to compare runs: CPU, cores, RAM, kernel, Python."""
    cpu = "unknown"
    ram = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_bytes": ram,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


def prepare_workdir(workdir: Path) -> None:
    """Empty the work directory, refusing to wipe a directory this harness did not make."""
    if workdir.exists() and any(workdir.iterdir()) and not (workdir / WORK_MARKER).exists():
        raise SystemExit(f"{workdir} is not empty and not a benchmark work directory; refusing")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / WORK_MARKER).write_text("scratch space of bench.backup_bench; safe to delete\n")


def rotated(items: list[Any], turn: int) -> list[Any]:
    """items starting at position turn (mod its length): each one leads in turn."""
    if not items:
        return items
    k = turn % len(items)
    return items[k:] + items[:k]


def tool_metrics(run: ToolRun, first_bytes: int, final_bytes: int) -> dict[str, float | None]:
    """The headline figures of one tool on one data set; None where it has no figure."""

    def seconds(step: str) -> float | None:
        result = run.steps.get(step)
        return result.seconds if result and result.ok else None

    def rate(step: str, size: int) -> float | None:
        s = seconds(step)
        return size / s if s else None

    def repo(when: str) -> int | None:
        return run.repo[when].bytes if when in run.repo else None

    growth = None
    if (after := repo("after_change")) is not None and (before := repo("after_nochange")):
        growth = after - before
    restore_ok = run.verify is not None and bool(run.verify.get("identical"))
    rss: dict[str, float | None] = {}
    for step in MEASURED_STEPS:
        result = run.steps.get(step)
        ok = result is not None and result.ok and (step != "restore" or restore_ok)
        rss[f"rss_{step}"] = float(result.max_rss_bytes) if ok and result else None
    known = [v for v in rss.values() if v is not None]
    return {
        "first_backup_seconds": seconds("backup-first"),
        "first_backup_throughput": rate("backup-first", first_bytes),
        "nochange_backup_seconds": seconds("backup-nochange"),
        "change_backup_seconds": seconds("backup-change"),
        "restore_seconds": seconds("restore") if restore_ok else None,
        "restore_throughput": rate("restore", final_bytes) if restore_ok else None,
        "repo_bytes": repo("after_change"),
        "change_growth_bytes": growth,
        "peak_rss_bytes": max(known) if known and run.active else None,
        **rss,
    }


def best_metrics(runs: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Per metric, the best of the runs: the highest throughput, the lowest of the rest.

    Other work on a shared machine can only slow a tool down or grow its footprint.
    """
    best: dict[str, float | None] = {}
    for key in {k for run in runs for k in run}:
        values = [v for run in runs if (v := run.get(key)) is not None]
        if not values:
            best[key] = None
        else:
            best[key] = max(values) if key.endswith("_throughput") else min(values)
    return best


def goal_ratio(
    goal: Goal, ours: dict[str, float | None], ref: dict[str, float | None]
) -> float | None:
    """The goal's ratio (see Goal), or None when a figure is missing."""
    ratios = []
    for metric in goal.metrics:
        a, b = ours.get(metric), ref.get(metric)
        if a is None or b is None or (a if goal.kind == "speed" else b) == 0:
            return None
        ratios.append(b / a if goal.kind == "speed" else a / b)
    return min(ratios) if goal.kind == "speed" else max(ratios)


def judge_goals(
    dataset: str, runs: list[dict[str, dict[str, float | None]]], reference: str = REFERENCE
) -> list[dict[str, object]]:
    """Each goal of the data set on the best figures of all runs, with every run's ratio."""
    best_ours = best_metrics([r.get("vaultwatch", {}) for r in runs])
    best_ref = best_metrics([r.get(reference, {}) for r in runs])
    judged: list[dict[str, object]] = []
    for goal in GOALS:
        if dataset not in goal.datasets:
            continue
        ratio = goal_ratio(goal, best_ours, best_ref)
        per_run = [goal_ratio(goal, r.get("vaultwatch", {}), r.get(reference, {})) for r in runs]
        if ratio is None:
            status = "missing"
        else:
            met = ratio >= goal.factor if goal.kind == "speed" else ratio <= goal.factor
            status = "met" if met else "not met"
        judged.append(
            {
                "key": goal.key,
                "title": goal.title,
                "kind": goal.kind,
                "target": goal.target,
                "factor": goal.factor,
                "ratio": ratio,
                "run_ratios": per_run,
                "status": status,
            }
        )
    return judged


def make_runner(name: str, workdir: Path, args: argparse.Namespace, cache: Path) -> Runner:
    """The runner of one tool, pointed at its cached executable for the anchors."""
    if name == "vaultwatch":
        return Vaultwatch(workdir, drop_caches=args.drop_caches)
    anchor = ANCHORS[name]
    exe = str(anchor.executable(cache))
    if anchor.kind == "restic":
        return Restic(workdir, drop_caches=args.drop_caches, binary=exe, name=name)
    return Borg(
        workdir,
        drop_caches=args.drop_caches,
        encryption=args.borg_encryption,
        binary=exe,
        name=name,
    )


class Bench:
    """Installs the anchors, runs every data set for every tool, collects the results."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.workdir: Path = args.workdir.resolve()
        self.cache: Path = args.tools_cache.resolve()
        self.turn = 0
        self.versions: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        self.datasets: list[DataSet] = []
        for key in args.datasets:
            if key == "generated":
                self.datasets.append(GeneratedSet(args.size, args.seed, args.fraction))
            else:
                self.datasets.append(KernelSet())

    # -- tools -------------------------------------------------------------------------

    def install_tools(self) -> None:
        """Install missing anchors (unless told not to) and note each tool's version."""
        for name in self.args.tools:
            if name == "vaultwatch":
                continue
            anchor = ANCHORS[name]
            try:
                if self.args.install_tools:
                    with self.console.status(f"Checking {name} in {anchor.home(self.cache)} ..."):
                        self.versions[name] = anchor.install(self.cache, log=self.console.print)
                elif found := anchor.installed_version(self.cache):
                    self.versions[name] = found
                else:
                    self.unavailable[name] = f"not installed in {anchor.home(self.cache)}"
            except InstallError as exc:
                self.unavailable[name] = f"install failed: {exc}"
        probe = Vaultwatch(self.workdir / "probe", drop_caches=False)
        if "vaultwatch" in self.args.tools:
            if reason := probe.unavailable():
                self.unavailable["vaultwatch"] = reason
            else:
                self.versions["vaultwatch"] = probe.version()
        for name in self.args.tools:
            if name in self.unavailable:
                self.console.print(f"[yellow]{name} not available:[/] {self.unavailable[name]}")
            else:
                self.console.print(f"{name}: {self.versions[name]}")

    # -- steps -------------------------------------------------------------------------

    def _step(self, run: ToolRun, key: str, title: str, action: Callable[[], StepResult]) -> None:
        if not run.active:
            return
        result = action()
        run.steps[key] = result
        if result.ok:
            self.console.print(
                f"  {run.name:<12} {title:<24} {result.seconds:8.2f} s"
                f"  cpu {result.user_seconds + result.system_seconds:7.2f} s"
                f"  peak RSS {format_size(result.max_rss_bytes):>10}"
                f"  others' cpu {result.other_cpu_seconds:6.2f} s"
            )
        else:
            run.error = f"{title} failed (exit {result.returncode}): {result.error_tail()}"
            self.console.print(f"[bold red]  {run.name} {title} FAILED[/] — see {result.log}")
            self.console.print(result.error_tail(), markup=False, highlight=False)

    def _each(
        self,
        runs: list[ToolRun],
        key: str,
        title: str,
        action: Callable[[ToolRun], StepResult],
        after: Callable[[ToolRun], None] | None = None,
    ) -> None:
        """One step for every tool back to back, the order rotated by one each step."""
        for run in rotated(runs, self.turn):
            self._step(run, key, title, partial(action, run))
            if after and run.active:
                after(run)
        self.turn += 1

    def _verify(self, run: ToolRun, source: Path, target: Path) -> None:
        """Restored tree against the source; a mismatch fails the tool loudly."""
        try:
            root = run.runner.restored_root(target, source)
            diff = compare_trees(source, root)
        except OSError as exc:
            run.verify = {"identical": False, "error": str(exc)}
            run.error = f"restore not found: {exc}"
        else:
            run.verify = diff.to_dict()
            if not diff.identical:
                run.error = f"restore differs from the source: {diff.summary()}"
        if run.error:
            self.console.rule(f"[bold red]{run.name}: RESTORE IS NOT IDENTICAL TO THE SOURCE")
            self.console.print(run.error, markup=False, highlight=False)
            self.console.rule(style="red")
        else:
            self.console.print(f"  {run.name:<12} {'restore verified':<24} identical")
        if not self.args.keep:
            shutil.rmtree(target, ignore_errors=True)

    def run_dataset(self, dataset: DataSet, index: int) -> dict[str, Any]:
        """Every step of one data set for every tool; the run's results."""
        console = self.console
        base = self.workdir / dataset.key
        shutil.rmtree(base, ignore_errors=True)
        source = base / "data"
        console.rule(f"{dataset.title}, run {index + 1} of {self.args.runs}")
        with console.status(f"Laying out the {dataset.title} data set ..."):
            laid = dataset.lay(source)
        console.print(dataset.summary(laid, None))
        runs = [ToolRun(make_runner(n, base, self.args, self.cache)) for n in self.args.tools]
        for run in runs:
            run.unavailable = self.unavailable.get(run.name)
            if run.active:
                run.runner.prepare()

        def sizes(when: str) -> Callable[[ToolRun], None]:
            def record(run: ToolRun) -> None:
                run.repo[when] = run.runner.repo_size()

            return record

        self._each(runs, "init", "init", lambda r: r.runner.init())
        self._each(
            runs,
            "backup-first",
            "first backup",
            lambda r: r.runner.backup(source, "first"),
            sizes("after_first"),
        )
        self._each(
            runs,
            "backup-nochange",
            "no-change backup",
            lambda r: r.runner.backup(source, "nochange"),
            sizes("after_nochange"),
        )
        with console.status(f"Changing the {dataset.title} data set ..."):
            changed = dataset.change(source)
        console.print(dataset.summary(laid, changed))
        self._each(
            runs,
            "backup-change",
            dataset.change_title,
            lambda r: r.runner.backup(source, "change"),
            sizes("after_change"),
        )
        restores = base / "restore"
        self._each(
            runs,
            "restore",
            "full restore",
            lambda r: r.runner.restore(restores / r.name),
            lambda r: self._verify(r, source, restores / r.name),
        )
        tools: dict[str, Any] = {}
        for run in runs:
            if run.unavailable is None:
                run.cache = run.runner.cache_size()
            tools[run.name] = {
                "status": run.status(),
                "error": run.error,
                "settings": run.runner.settings(),
                "metrics": tool_metrics(run, laid["total_bytes"], changed["bytes_after"]),
                "steps": {k: s.to_dict() for k, s in run.steps.items()},
                "repo": {k: v.to_dict() for k, v in run.repo.items()},
                "client_cache": run.cache.to_dict() if run.cache else None,
                "restore_check": run.verify,
            }
        if not self.args.keep:
            shutil.rmtree(source, ignore_errors=True)
        return {"laid": laid, "changed": changed, "tools": tools}

    def run(self) -> dict[str, Any]:
        args, console = self.args, self.console
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        load_before = os.getloadavg()
        prepare_workdir(self.workdir)
        self.install_tools()
        cache_drop = drop_page_cache() if args.drop_caches else False
        console.print(
            "Page cache dropped before every step"
            if cache_drop
            else "[yellow]Page cache NOT dropped (not permitted or disabled)[/]"
        )
        for dataset in self.datasets:
            with console.status(f"Fetching the {dataset.title} data set into the cache ..."):
                dataset.fetch()
        per_set: dict[str, list[dict[str, Any]]] = {d.key: [] for d in self.datasets}
        for index in range(args.runs):
            for dataset in self.datasets:
                per_set[dataset.key].append(self.run_dataset(dataset, index))

        datasets: dict[str, Any] = {}
        all_steps: list[dict[str, Any]] = []
        ok = True
        for dataset in self.datasets:
            runs = per_set[dataset.key]
            metrics = [{n: t["metrics"] for n, t in r["tools"].items()} for r in runs]
            datasets[dataset.key] = {
                "title": dataset.title,
                "change_title": dataset.change_title,
                "summary": dataset.summary(runs[-1]["laid"], runs[-1]["changed"]),
                "runs": runs,
                "best": {n: best_metrics([m[n] for m in metrics]) for n in args.tools},
                "goals": judge_goals(dataset.key, metrics),
            }
            for r in runs:
                for t in r["tools"].values():
                    all_steps.extend(t["steps"].values())
                    ok = ok and t["status"] != "failed"
        dropped = [s["dropped_cache"] for s in all_steps]
        capacity = sum(s["seconds"] for s in all_steps) * (os.cpu_count() or 1)
        other = sum(s["other_cpu_seconds"] for s in all_steps)
        return {
            "benchmark": "backup",
            "started_at": started.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - t0, 1),
            "command": " ".join(["python -m bench.backup_bench", *sys.argv[1:]]),
            "machine": machine_info(),
            "load_before": list(load_before),
            "load_after": list(os.getloadavg()),
            "page_cache_dropped": bool(dropped) and all(dropped),
            "other_load": round(other / capacity, 3) if capacity else 0.0,
            "reference": REFERENCE,
            "runs": args.runs,
            "tools": {
                n: {
                    "version": self.versions.get(n, "unknown"),
                    "source": ANCHORS[n].source if n in ANCHORS else "this repository",
                    "unavailable": self.unavailable.get(n),
                }
                for n in args.tools
            },
            "datasets": datasets,
            "ok": ok,
        }


# --------------------------------------------------------------------------- reporting


def _mib(n: float | None) -> str:
    return "—" if n is None else f"{n / MIB:,.1f} MiB"


def _seconds(n: float | None) -> str | None:
    return None if n is None else f"{n:,.2f} s"


def _rate(seconds: float | None, rate: float | None) -> str | None:
    if seconds is None:
        return None
    return f"{seconds:,.2f} s" + (f" · {rate / MIB:,.0f} MiB/s" if rate else "")


ROWS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "first_backup": lambda m: _rate(
        m.get("first_backup_seconds"), m.get("first_backup_throughput")
    ),
    "nochange_backup": lambda m: _seconds(m.get("nochange_backup_seconds")),
    "change_backup": lambda m: _seconds(m.get("change_backup_seconds")),
    "restore": lambda m: _rate(m.get("restore_seconds"), m.get("restore_throughput")),
    "repo_size": lambda m: None if m.get("repo_bytes") is None else _mib(m["repo_bytes"]),
    "peak_memory": lambda m: None if m.get("peak_rss_bytes") is None else _mib(m["peak_rss_bytes"]),
    "change_growth": lambda m: (
        None if m.get("change_growth_bytes") is None else _mib(m["change_growth_bytes"])
    ),
}


def verdict(goal: dict[str, Any]) -> str:
    """The Met cell: yes/no with the ratio, and each run's ratio when there were several."""
    if goal["status"] == "missing":
        return "— missing"
    unit = "x as fast" if goal["kind"] == "speed" else "x"
    text = ("✅ yes" if goal["status"] == "met" else "❌ no") + f" ({goal['ratio']:.2f}{unit}"
    known = [r for r in goal["run_ratios"] if r is not None]
    if len(goal["run_ratios"]) > 1 and known:
        text += "; runs " + " / ".join(f"{r:.2f}" for r in known)
    return text + ")"


def headline_table(results: dict[str, Any]) -> list[str]:
    """One table for both data sets: best figure of each tool per measure, and the goals."""
    names = list(results["tools"])
    ref = results["reference"]
    lines = [
        "| Data set | Measure | " + " | ".join(names) + f" | Goal (vs {ref}) | Met |",
        "|---|---|" + "---:|" * len(names) + "---|---|",
    ]
    for ds in results["datasets"].values():
        goals = {g["key"]: g for g in ds["goals"]}
        last = ds["runs"][-1]["tools"]
        for goal in GOALS:
            row = ROWS[goal.key]
            cells = []
            for n in names:
                text = row(ds["best"][n])
                status = last[n]["status"] if n in last else "missing"
                cells.append(text or ("missing" if status == "missing" else "failed"))
            title = ds["change_title"].capitalize() if goal.key == "change_backup" else goal.title
            if goal.key in goals:
                g = goals[goal.key]
                tail = f"{g['target']} | {verdict(g)}"
            else:
                tail = "reported only | —"
            lines.append(f"| {ds['title']} | {title} | " + " | ".join(cells) + f" | {tail} |")
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    """The report: headline table with goals, then steps, repositories, data sets, tools."""
    machine = results["machine"]
    ref = results["reference"]
    busy = results.get("other_load", 0.0)
    goals = [g for ds in results["datasets"].values() for g in ds["goals"]]
    met = sum(g["status"] == "met" for g in goals)
    missing = sum(g["status"] == "missing" for g in goals)
    load = results.get("load_before", [0, 0, 0])
    lines = [
        f"# Backup benchmark — {results['started_at']}",
        "",
        f"vaultwatch against {', '.join(n for n in results['tools'] if n != 'vaultwatch')} "
        f"on {len(results['datasets'])} data set(s), {results['runs']} run(s); goals judged "
        f"against {ref}. {machine['cores']} cores, {format_size(machine['ram_bytes'])} RAM "
        f"({machine['cpu']}); load average {load[0]:.2f} before, "
        f"{results.get('load_after', [0])[0]:.2f} after. Page cache dropped before every "
        f"step: {'yes' if results['page_cache_dropped'] else 'no'}.",
        "",
        *(
            [
                f"**Warning: the machine was not idle** — other work used {busy:.0%} of its "
                "CPU capacity during the measured steps, so these figures are noisy.",
                "",
            ]
            if busy > 0.05
            else []
        ),
        *headline_table(results),
        "",
        f"Goals met: {met} of {len(goals)}"
        + (f" ({missing} missing: vaultwatch or {ref} has no figure)" if missing else "")
        + ". Each cell is the tool's best over the runs; a goal is judged on the best "
        "figures and every run's ratio is shown beside it. Throughput is data-set bytes "
        "over wall time. Peak memory: the highest step; its goal compares every step.",
        "",
    ]
    for key, ds in results["datasets"].items():
        lines.append(f"- {ds['summary']}")
        for i, run in enumerate(ds["runs"]):
            for name, t in run["tools"].items():
                if t["error"]:
                    lines.append(
                        f"  - {key} run {i + 1}: **{name}** FAILED: {t['error'].splitlines()[0]}"
                    )
    for name, t in results["tools"].items():
        if t["unavailable"]:
            lines.append(f"- **{name}** not available: {t['unavailable']}")
    lines += ["", "## Steps", ""]
    lines += [
        "| Data set | Run | Tool | Step | Wall | CPU (user+sys) | Peak RSS | Then sync "
        "| Other CPU | Exit |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for ds in results["datasets"].values():
        for i, run in enumerate(ds["runs"]):
            for name, t in run["tools"].items():
                for step, s in t["steps"].items():
                    title = ds["change_title"] if step == "backup-change" else STEP_TITLES[step]
                    lines.append(
                        f"| {ds['title']} | {i + 1} | {name} | {title} | {s['seconds']:,.2f} s "
                        f"| {s['user_seconds'] + s['system_seconds']:,.2f} s "
                        f"| {_mib(s['max_rss_bytes'])} | {s['sync_seconds']:,.2f} s "
                        f"| {s['other_cpu_seconds']:,.2f} s | {s['returncode']} |"
                    )
    lines += [
        "",
        "*Then sync*: a `sync` right after the step, i.e. writes the tool left in the page "
        "cache; shown, not counted in its time. *Other CPU*: CPU time used meanwhile by "
        "everything but the tool (other processes, kernel writeback); near zero on an idle "
        "machine. The tools' order rotates by one at every step.",
        "",
        "## Repository and client cache",
        "",
        "| Data set | Run | Tool | After first | After no-change | After change "
        "| Growth from change | Files | Client cache |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for ds in results["datasets"].values():
        for i, run in enumerate(ds["runs"]):
            for name, t in run["tools"].items():
                repo = t["repo"]
                if not repo:
                    continue
                cols = [
                    _mib(repo[w]["bytes"]) if w in repo else "—"
                    for w in ("after_first", "after_nochange", "after_change")
                ]
                last = repo.get("after_change") or repo.get("after_nochange") or repo["after_first"]
                cache = t["client_cache"]
                lines.append(
                    f"| {ds['title']} | {i + 1} | {name} | "
                    + " | ".join(cols)
                    + f" | {_mib(t['metrics']['change_growth_bytes'])} | {last['files']:,} | "
                    f"{_mib(cache['bytes']) if cache else '—'} |"
                )
    lines += ["", "## Machine and tools", ""]
    lines.append(
        f"- {machine['cpu']}, {machine['cores']} cores, {format_size(machine['ram_bytes'])} "
        f"RAM, Linux {machine['kernel']}, Python {machine['python']}"
    )
    settings: dict[str, dict[str, str]] = {}
    for ds in results["datasets"].values():
        for name, t in ds["runs"][-1]["tools"].items():
            settings[name] = t["settings"]
    for name, t in results["tools"].items():
        extra = ", ".join(f"{k} {v}" for k, v in settings.get(name, {}).items())
        lines.append(f"- {name}: {t['version']} — {t['source']}" + (f" ({extra})" if extra else ""))
    lines += ["", f"Command: `{results['command']}`", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def _names(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from "
            + ", ".join(allowed)
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.backup_bench",
        description="Compare vaultwatch with restic and borg on a generated and a real data set.",
    )
    parser.add_argument(
        "--datasets",
        type=lambda t: _names(t, DATASET_NAMES, "data set"),
        default=list(DATASET_NAMES),
        help="comma-separated, from: " + ", ".join(DATASET_NAMES) + " (default both)",
    )
    parser.add_argument(
        "--tools",
        type=lambda t: _names(t, TOOL_NAMES, "tool"),
        default=list(TOOL_NAMES),
        help="comma-separated, from: " + ", ".join(TOOL_NAMES) + " (default all)",
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat every data set this many times (default 1)"
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("1G"),
        help="generated data set size, e.g. 1G (default) or 200M",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO_ROOT / "bench" / "work" / "backup",
        help="scratch directory, emptied first (default bench/work/backup)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO_ROOT / "bench" / "results",
        help="where JSON and Markdown go (default bench/results)",
    )
    parser.add_argument(
        "--tools-cache",
        type=Path,
        default=TOOLS_CACHE,
        help="where the anchors are installed (default bench/cache/tools)",
    )
    parser.add_argument(
        "--no-install-tools",
        dest="install_tools",
        action="store_false",
        help="do not install missing anchors; report them as missing",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fraction", type=float, default=0.01, help="share of the generated data to change"
    )
    parser.add_argument(
        "--no-drop-caches",
        dest="drop_caches",
        action="store_false",
        help="do not drop the page cache before each step",
    )
    parser.add_argument(
        "--borg-encryption",
        default=BORG_ENCRYPTION,
        help="borg init -e mode (default: fastest on this CPU, see tools.py)",
    )
    parser.add_argument("--keep", action="store_true", help="keep source and restored trees")
    parser.add_argument(
        "--check-goals", action="store_true", help="exit 2 when a goal is not met or missing"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(soft_wrap=True)
    results = Bench(args, console).run()
    markdown = render_markdown(results)
    json_path, md_path = write_results(
        "backup", results, markdown, args.results, latest="latest.md"
    )
    console.print()
    print(markdown, flush=True)
    console.print(f"\nWrote {json_path} and {md_path}")
    if results["other_load"] > 0.05:
        console.print(
            f"[yellow]The machine was not idle: other work used {results['other_load']:.0%} "
            "of the CPU during the steps; figures are noisy.[/]"
        )
    if not results["ok"]:
        console.print("[bold red]Benchmark FAILED: a tool step failed or a restore differed.[/]")
        return 1
    goals = [g for ds in results["datasets"].values() for g in ds["goals"]]
    if args.check_goals and any(g["status"] != "met" for g in goals):
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
