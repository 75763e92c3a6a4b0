"""Backup benchmark: vaultwatch against restic and borg on the same data, in the same run.

Steps, each run for every tool back to back so all see the same data and cache state:
init, first backup, backup with no change, ~1 % change, backup of the change, full
restore (verified byte for byte), repository sizes. Results go to bench/results/ as JSON
and Markdown, with every goal from the benchmark issue judged against restic.

    python -m bench.backup_bench [--size 1G] [--tools vaultwatch,restic,borg]
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
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bench.datagen import MIB, format_size, generate, mutate, parse_size, tree_bytes
from bench.tools import (
    BORG_ENCRYPTION,
    REPO_ROOT,
    RUNNERS,
    Borg,
    DiskUsage,
    Runner,
    StepResult,
    drop_page_cache,
    write_results,
)
from bench.treecmp import compare_trees

WORK_MARKER = ".bench-workdir"
STEP_TITLES = {
    "init": "init",
    "backup-first": "first backup",
    "backup-nochange": "no-change backup",
    "backup-change": "backup after change",
    "restore": "full restore",
}


@dataclass
class ToolRun:
    """Everything measured for one tool."""

    runner: Runner
    version: str = "unknown"
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
    """A target for vaultwatch relative to restic."""

    key: str
    title: str
    metric: str
    higher_is_better: bool
    factor: float
    target: str


GOALS = (
    Goal(
        "first_backup",
        "First backup",
        "first_backup_throughput",
        True,
        1.5,
        "≥ 1.5x restic's throughput",
    ),
    Goal(
        "nochange_backup",
        "No-change backup",
        "nochange_backup_seconds",
        False,
        1.0,
        "no slower than restic",
    ),
    Goal(
        "change_backup",
        "Backup after 1 % change",
        "change_backup_seconds",
        False,
        1.0,
        "no slower than restic",
    ),
    Goal("restore", "Full restore", "restore_throughput", True, 1.5, "≥ 1.5x restic's throughput"),
    Goal("repo_size", "Repository size", "repo_bytes", False, 1.0, "no larger than restic's"),
    Goal(
        "peak_memory", "Peak memory (RSS)", "peak_rss_bytes", False, 1.0, "no higher than restic's"
    ),
    Goal(
        "change_growth",
        "Repository growth from the 1 % change",
        "change_growth_bytes",
        False,
        0.5,
        "≤ half of restic's",
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


def tool_metrics(run: ToolRun, first_bytes: int, final_bytes: int) -> dict[str, float | None]:
    """The headline figures of one tool; None where it has no figure."""

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
    nochange_growth = None
    if (second := repo("after_nochange")) is not None and (first := repo("after_first")):
        nochange_growth = second - first
    restore_ok = run.verify is not None and bool(run.verify.get("identical"))
    # init is left out: it is a one-off whose peak is the key-derivation function's.
    rss = [s.max_rss_bytes for k, s in run.steps.items() if s.ok and k != "init"]
    return {
        "first_backup_seconds": seconds("backup-first"),
        "first_backup_throughput": rate("backup-first", first_bytes),
        "nochange_backup_seconds": seconds("backup-nochange"),
        "nochange_backup_throughput": rate("backup-nochange", first_bytes),
        "change_backup_seconds": seconds("backup-change"),
        "change_backup_throughput": rate("backup-change", final_bytes),
        "restore_seconds": seconds("restore") if restore_ok else None,
        "restore_throughput": rate("restore", final_bytes) if restore_ok else None,
        "repo_bytes": repo("after_change"),
        "change_growth_bytes": growth,
        "nochange_growth_bytes": nochange_growth,
        "peak_rss_bytes": max(rss) if rss and run.active else None,
    }


def judge_goals(metrics: dict[str, dict[str, float | None]]) -> list[dict[str, object]]:
    """Each goal: both figures, vaultwatch/restic ratio, and met / not met / missing."""
    judged = []
    for goal in GOALS:
        ours = metrics.get("vaultwatch", {}).get(goal.metric)
        theirs = metrics.get("restic", {}).get(goal.metric)
        status, ratio = "missing", None
        if ours is not None and theirs is not None:
            ratio = ours / theirs if theirs else None
            limit = goal.factor * theirs
            met = ours >= limit if goal.higher_is_better else ours <= limit
            status = "met" if met else "not met"
        judged.append(
            {
                "key": goal.key,
                "title": goal.title,
                "metric": goal.metric,
                "target": goal.target,
                "factor": goal.factor,
                "higher_is_better": goal.higher_is_better,
                "vaultwatch": ours,
                "restic": theirs,
                "ratio": ratio,
                "status": status,
            }
        )
    return judged


class Bench:
    """Runs the steps with a progress display and collects the results."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.workdir: Path = args.workdir.resolve()
        self.data = self.workdir / "data"
        self.runs: list[ToolRun] = []
        self.progress = Progress()
        self.overall = self.current = TaskID(0)
        for name in args.tools:
            runner: Runner
            if name == "borg":
                runner = Borg(
                    self.workdir, drop_caches=args.drop_caches, encryption=args.borg_encryption
                )
            else:
                runner = RUNNERS[name](self.workdir, drop_caches=args.drop_caches)
            self.runs.append(ToolRun(runner))

    def _step(self, run: ToolRun, key: str, action: Callable[[], StepResult]) -> None:
        title = STEP_TITLES[key]
        if run.active:
            self.progress.reset(self.current, description=f"[bold]{run.name}[/]: {title}")
            result = action()
            run.steps[key] = result
            if result.ok:
                self.console.print(
                    f"  {run.name:<11} {title:<20} {result.seconds:8.2f} s"
                    f"  cpu {result.user_seconds + result.system_seconds:7.2f} s"
                    f"  peak RSS {format_size(result.max_rss_bytes):>10}"
                    f"  others' cpu {result.other_cpu_seconds:6.2f} s"
                )
            else:
                run.error = f"{title} failed (exit {result.returncode}): {result.error_tail()}"
                self.console.print(f"[bold red]  {run.name} {title} FAILED[/] — see {result.log}")
                self.console.print(result.error_tail(), markup=False, highlight=False)
        self.progress.advance(self.overall)

    def _each(
        self,
        key: str,
        action: Callable[[ToolRun], StepResult],
        after: Callable[[ToolRun], None] | None = None,
    ) -> None:
        """One step for every tool, back to back."""
        for run in self.runs:
            self._step(run, key, partial(action, run))
            if after and run.active:
                after(run)

    def _verify(self, run: ToolRun, target: Path) -> None:
        """Restored tree against the mutated source; a mismatch fails the tool loudly."""
        try:
            root = run.runner.restored_root(target, self.data)
            diff = compare_trees(self.data, root)
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
            self.console.print(f"  {run.name:<11} {'restore verified':<20} identical")
        if not self.args.keep:
            shutil.rmtree(target, ignore_errors=True)

    def run(self) -> dict[str, Any]:
        args, console = self.args, self.console
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        prepare_workdir(self.workdir)
        cache_drop = drop_page_cache() if args.drop_caches else False

        for run in self.runs:
            run.unavailable = run.runner.unavailable()
            if run.unavailable:
                console.print(f"[yellow]{run.name} not available:[/] {run.unavailable}")
                console.print("[yellow]  its figures are reported as missing[/]")
            else:
                run.version = run.runner.version()
                run.runner.prepare()
                console.print(f"{run.name}: {run.version}")

        with console.status(f"Generating a {format_size(args.size)} data set ..."):
            dataset = generate(self.data, args.size, args.seed)
        cats = dataset.category_bytes()
        console.print(
            f"Data set: {format_size(dataset.total_bytes)} in {dataset.files} files and "
            f"{dataset.dirs} directories ("
            + ", ".join(f"{k} {v / dataset.total_bytes:.0%}" for k, v in cats.items())
            + f"), made in {dataset.seconds:.1f} s"
        )
        console.print(
            "Page cache dropped before every step"
            if cache_drop
            else "[yellow]Page cache NOT dropped (not permitted or disabled)[/]"
        )

        mutation = None
        final_bytes = dataset.total_bytes
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self.progress = Progress(*columns, console=console, transient=True)
        with self.progress as progress:
            self.overall = progress.add_task("all steps", total=5 * len(self.runs))
            self.current = progress.add_task("", total=None)

            def sizes(when: str) -> Callable[[ToolRun], None]:
                def record(run: ToolRun) -> None:
                    run.repo[when] = run.runner.repo_size()

                return record

            self._each("init", lambda r: r.runner.init())
            self._each(
                "backup-first",
                lambda r: r.runner.backup(self.data, "first"),
                sizes("after_first"),
            )
            self._each(
                "backup-nochange",
                lambda r: r.runner.backup(self.data, "nochange"),
                sizes("after_nochange"),
            )
            progress.reset(self.current, description=f"changing {args.fraction:.0%} of the data")
            mutation = mutate(self.data, args.fraction, args.seed)
            final_bytes = tree_bytes(self.data)
            console.print(
                f"  changed {format_size(mutation.changed_bytes)} "
                f"({mutation.changed_fraction:.2%}): "
                f"{mutation.overwrites} overwrites in {mutation.overwritten_files} large files, "
                f"{mutation.appended_files} logs appended, {mutation.edited_files} files edited, "
                f"{mutation.new_files} new, {mutation.deleted_files} deleted"
            )
            self._each(
                "backup-change",
                lambda r: r.runner.backup(self.data, "change"),
                sizes("after_change"),
            )
            restores = self.workdir / "restore"
            self._each(
                "restore",
                lambda r: r.runner.restore(restores / r.name),
                lambda r: self._verify(r, restores / r.name),
            )

        metrics: dict[str, dict[str, float | None]] = {}
        tools: dict[str, Any] = {}
        for run in self.runs:
            if run.unavailable is None:
                run.cache = run.runner.cache_size()
            metrics[run.name] = tool_metrics(run, dataset.total_bytes, final_bytes)
            tools[run.name] = {
                "status": run.status(),
                "version": run.version,
                "unavailable": run.unavailable,
                "error": run.error,
                "settings": run.runner.settings(),
                "metrics": metrics[run.name],
                "steps": {k: s.to_dict() for k, s in run.steps.items()},
                "repo": {k: v.to_dict() for k, v in run.repo.items()},
                "client_cache": run.cache.to_dict() if run.cache else None,
                "restore_check": run.verify,
            }
        steps = [s for r in self.runs for s in r.steps.values()]
        dropped = [s.dropped_cache for s in steps]
        capacity = sum(s.seconds for s in steps) * (os.cpu_count() or 1)
        other_load = sum(s.other_cpu_seconds for s in steps) / capacity if capacity else 0.0
        return {
            "benchmark": "backup",
            "started_at": started.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - t0, 1),
            "command": " ".join(["python -m bench.backup_bench", *sys.argv[1:]]),
            "machine": machine_info(),
            "page_cache_dropped": bool(dropped) and all(dropped),
            "other_load": round(other_load, 3),
            "size_requested": args.size,
            "seed": args.seed,
            "dataset": dataset.to_dict(),
            "mutation": mutation.to_dict() if mutation else None,
            "dataset_bytes_after_change": final_bytes,
            "tools": tools,
            "goals": judge_goals(metrics),
            "ok": all(r.error is None for r in self.runs),
        }


# --------------------------------------------------------------------------- reporting


def _mib(n: float | None) -> str:
    return "—" if n is None else f"{n / MIB:,.1f} MiB"


def _cell(tool: dict[str, Any], text: str | None) -> str:
    if tool["status"] == "missing":
        return "missing"
    if text is None:
        return "failed" if tool["status"] == "failed" else "—"
    return text


def render_markdown(results: dict[str, Any]) -> str:
    """The report: headline table with goals, then details, dataset and machine."""
    tools: dict[str, Any] = results["tools"]
    names = list(tools)
    ds = results["dataset"]
    mut = results["mutation"] or {}
    machine = results["machine"]

    def fmt(metric: str, m: dict[str, Any]) -> str | None:
        v = m.get(metric)
        if v is None:
            return None
        if metric.endswith("_throughput"):
            return f"{v / MIB:,.1f} MiB/s"
        if metric.endswith("_seconds"):
            return f"{v:,.2f} s"
        return _mib(v)

    def both(seconds: str, rate: str, m: dict[str, Any]) -> str | None:
        s, r = fmt(seconds, m), fmt(rate, m)
        return None if s is None else f"{s} · {r}"

    rows: dict[str, Callable[[dict[str, Any]], str | None]] = {
        "first_backup": lambda m: both("first_backup_seconds", "first_backup_throughput", m),
        "nochange_backup": lambda m: fmt("nochange_backup_seconds", m),
        "change_backup": lambda m: fmt("change_backup_seconds", m),
        "restore": lambda m: both("restore_seconds", "restore_throughput", m),
        "repo_size": lambda m: fmt("repo_bytes", m),
        "peak_memory": lambda m: fmt("peak_rss_bytes", m),
        "change_growth": lambda m: fmt("change_growth_bytes", m),
    }
    goals = {g["key"]: g for g in results["goals"]}
    busy = results.get("other_load", 0.0)
    lines = [
        f"# Backup benchmark — {results['started_at']}",
        "",
        f"{format_size(ds['total_bytes'])} generated data set ({ds['files']:,} files), "
        f"{mut.get('changed_fraction', 0):.2%} of it then changed; "
        f"{machine['cores']} cores, {format_size(machine['ram_bytes'])} RAM "
        f"({machine['cpu']}). Page cache dropped before every step: "
        f"{'yes' if results['page_cache_dropped'] else 'no'}.",
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
        "| Measure | " + " | ".join(names) + " | Goal for vaultwatch | Met |",
        "|---|" + "---:|" * len(names) + "---|---|",
    ]
    for key, row in rows.items():
        g = goals[key]
        cells = [_cell(tools[n], row(tools[n]["metrics"])) for n in names]
        if g["status"] == "met":
            verdict = f"✅ yes ({g['ratio']:.2f}x restic)"
        elif g["status"] == "not met":
            verdict = f"❌ no ({g['ratio']:.2f}x restic)" if g["ratio"] is not None else "❌ no"
        else:
            verdict = "— missing"
        lines.append(f"| {g['title']} | " + " | ".join(cells) + f" | {g['target']} | {verdict} |")
    met = sum(g["status"] == "met" for g in results["goals"])
    missing = sum(g["status"] == "missing" for g in results["goals"])
    lines += [
        "",
        f"Goals met: {met} of {len(results['goals'])}"
        + (f" ({missing} missing: vaultwatch or restic has no figure)" if missing else "")
        + ". Throughput is data-set bytes divided by wall time.",
        "",
    ]
    for name in names:
        t = tools[name]
        if t["unavailable"]:
            lines.append(f"- **{name}** not available: {t['unavailable']}")
        elif t["error"]:
            lines.append(f"- **{name}** FAILED: {t['error'].splitlines()[0]}")
    lines += [
        "",
        "## Steps",
        "",
        "| Tool | Step | Wall | CPU (user+sys) | Peak RSS | Then sync | Other CPU | Exit |",
    ]
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        for key, s in tools[name]["steps"].items():
            lines.append(
                f"| {name} | {STEP_TITLES.get(key, key)} | {s['seconds']:,.2f} s | "
                f"{s['user_seconds'] + s['system_seconds']:,.2f} s | "
                f"{_mib(s['max_rss_bytes'])} | {s['sync_seconds']:,.2f} s | "
                f"{s['other_cpu_seconds']:,.2f} s | {s['returncode']} |"
            )
    lines += [
        "",
        "*Then sync*: a `sync` right after the step, i.e. writes the tool left in the page "
        "cache; shown, not counted in its time. *Other CPU*: CPU time used meanwhile by "
        "everything but the tool (other processes, kernel writeback); near zero on an idle "
        "machine.",
        "",
        "## Repository and client cache",
        "",
        "| Tool | After first | After no-change | After 1 % change | Growth from change "
        "| Files | Client cache |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        t = tools[name]
        repo = t["repo"]
        if not repo:
            continue
        sizes = [
            _mib(repo[w]["bytes"]) if w in repo else "—"
            for w in ("after_first", "after_nochange", "after_change")
        ]
        last = repo.get("after_change") or repo.get("after_nochange") or repo["after_first"]
        cache = t["client_cache"]
        lines.append(
            f"| {name} | "
            + " | ".join(sizes)
            + f" | {_mib(t['metrics']['change_growth_bytes'])} | {last['files']:,} | "
            f"{_mib(cache['bytes']) if cache else '—'} |"
        )
    cats = ds["categories"]
    kinds = ds["kinds"]
    lines += [
        "",
        "## Data set",
        "",
        f"Seed {ds['seed']}, {format_size(ds['total_bytes'])} in {ds['files']:,} files and "
        f"{ds['dirs']:,} directories: text {cats['text']['share']:.0%}, "
        f"binary {cats['binary']['share']:.0%}, duplicates {cats['duplicate']['share']:.0%}.",
        "",
        "| Kind | Files | Size |",
        "|---|---:|---:|",
        *(f"| {k} | {v['files']:,} | {_mib(v['bytes'])} |" for k, v in kinds.items()),
        "",
    ]
    if mut:
        lines += [
            f"Change: {format_size(mut['changed_bytes'])} written "
            f"({mut['changed_fraction']:.2%}): {mut['overwrites']} in-place overwrites "
            f"({format_size(mut['overwritten_bytes'])}) in {mut['overwritten_files']} large "
            f"files, {format_size(mut['appended_bytes'])} appended to {mut['appended_files']} "
            f"logs, {mut['edited_files']} small files edited "
            f"({format_size(mut['edited_bytes'])}), {mut['new_files']} new files "
            f"({format_size(mut['new_bytes'])}), {mut['deleted_files']} deleted "
            f"({format_size(mut['deleted_bytes'])}).",
            "",
        ]
    lines += ["## Machine and tools", ""]
    lines.append(
        f"- {machine['cpu']}, {machine['cores']} cores, {format_size(machine['ram_bytes'])} "
        f"RAM, Linux {machine['kernel']}, Python {machine['python']}"
    )
    for name in names:
        t = tools[name]
        settings = ", ".join(f"{k} {v}" for k, v in t["settings"].items())
        lines.append(f"- {name}: {t['version']}" + (f" ({settings})" if settings else ""))
    lines += ["", f"Command: `{results['command']}`", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.backup_bench",
        description="Compare vaultwatch with restic and borg on the same generated data.",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("1G"),
        help="data set size, e.g. 1G (default) or 200M",
    )
    parser.add_argument(
        "--tools",
        default="vaultwatch,restic,borg",
        help="comma-separated, from: " + ", ".join(RUNNERS),
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO_ROOT / "bench" / "work",
        help="scratch directory, emptied first (default bench/work)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO_ROOT / "bench" / "results",
        help="where JSON and Markdown go (default bench/results)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fraction", type=float, default=0.01, help="share of the data to change (default 0.01)"
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
    parser.add_argument("--keep", action="store_true", help="keep restored trees for inspection")
    parser.add_argument(
        "--check-goals", action="store_true", help="exit 2 when a goal is not met or missing"
    )
    args = parser.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in args.tools if t not in RUNNERS]
    if unknown or not args.tools:
        parser.error(f"unknown tool(s) {unknown}; choose from {', '.join(RUNNERS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(soft_wrap=True)
    results = Bench(args, console).run()
    json_path, md_path = write_results(
        "backup", results, render_markdown(results), args.results, latest="latest.md"
    )
    markdown = render_markdown(results)
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
    if args.check_goals and any(g["status"] != "met" for g in results["goals"]):
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
