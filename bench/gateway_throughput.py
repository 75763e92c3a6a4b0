"""Backup throughput through the gateway against straight into a local repository.

The same generated data set (``bench.datagen``) is backed up by ``vaultwatch repo backup``
once into a local directory and once into a tenant's vault through a real gateway on
loopback (``vw+https://``: GatewayStore over TLS, the way agents send their packs), each
as a measured child process (``bench.tools``' launcher: wall time, CPU, peak RSS), with
the page cache dropped first where permitted. The gateway's own CPU time during the
backup is read from its process, since on loopback it competes for the same cores. The
goal: the gateway path keeps at least 80 % of the local throughput.

    python -m bench.gateway_throughput [--size 512M] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.backup_bench import prepare_workdir
from bench.datagen import MIB, format_size, generate, parse_size
from bench.service import (
    LOOPBACK,
    ServerProcess,
    add_output_options,
    bench_console,
    host_info,
    load_average,
    machine_section,
    now_iso,
    publish,
    running_server,
)
from bench.tools import DiskUsage, StepResult, Vaultwatch, disk_usage
from vaultwatch.store.http import CA_CERT_ENV, CREDENTIAL_ENV, SCHEME

GOAL_RATIO = 0.80
MODES = ("local", "gateway")


class LocalVaultwatch(Vaultwatch):
    """``vaultwatch repo backup`` into a directory, reporting the engine's own figures."""

    name = "local"

    def backup_argv(self, source: Path, label: str) -> list[str]:
        argv = super().backup_argv(source, label)
        return [*argv[:-1], "--json", argv[-1]]


class GatewayVaultwatch(Vaultwatch):
    """The same command, with the tenant's vault behind the gateway as its repository."""

    name = "gateway"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int,
        credential: str,
        ca_cert: Path,
        vault_dir: Path,
        drop_caches: bool = True,
    ) -> None:
        super().__init__(workdir, drop_caches=drop_caches)
        self.url = f"{SCHEME}://{LOOPBACK}:{port}"
        self.credential = credential
        self.ca_cert = ca_cert
        self.vault_dir = vault_dir

    def tool_env(self) -> dict[str, str]:
        return {
            **super().tool_env(),
            CREDENTIAL_ENV: self.credential,
            CA_CERT_ENV: str(self.ca_cert),
        }

    def init_argv(self) -> list[str]:
        return [self.binary, "repo", "init", "-r", self.url]

    def backup_argv(self, source: Path, label: str) -> list[str]:
        argv = [self.binary, "repo", "backup", "-r", self.url, "--host", "bench", "--json"]
        return [*argv, str(source)]

    def repo_size(self) -> DiskUsage:
        return disk_usage(self.vault_dir)


def engine_report(step: StepResult) -> dict[str, Any] | None:
    """The backup command's own --json line from its log (None when it has none)."""
    try:
        lines = Path(step.log).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if not line.startswith("{"):
            continue
        try:
            doc: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        if doc.get("message_type") == "summary":  # not the streamed status lines
            return doc
    return None


@dataclass
class Settings:
    """One run's parameters (the test uses tiny ones)."""

    workdir: Path
    size: int = 512 * MIB
    repeat: int = 2
    seed: int = 1
    drop_caches: bool = True


def measure(
    mode: str, rep: int, data: Path, data_bytes: int, server: ServerProcess, settings: Settings
) -> dict[str, Any]:
    """init, then the measured first backup, in a fresh repository (a fresh tenant's vault)."""
    base = settings.workdir / f"run{rep}"
    runner: Vaultwatch
    server_cpu = 0.0
    if mode == "local":
        runner = LocalVaultwatch(base, drop_caches=settings.drop_caches)
    else:
        tenant = server.create_tenant(f"Bench throughput {rep}")
        with httpx.Client(verify=server.ssl_context(), timeout=30) as client:
            agent = server.enroll(client, server.tokens(tenant, 1)[0], f"bench-{rep}", tenant)
        runner = GatewayVaultwatch(
            base,
            port=server.port,
            credential=agent.credential,
            ca_cert=server.ca_cert,
            vault_dir=server.vault_dir(tenant),
            drop_caches=settings.drop_caches,
        )
    runner.prepare()
    init = runner.init()
    if not init.ok:
        raise RuntimeError(f"{mode} init failed: {init.error_tail()}")
    cpu0 = server.cpu_seconds()
    step = runner.backup(data, "first")
    if mode == "gateway":
        server_cpu = server.cpu_seconds() - cpu0
    if not step.ok:
        raise RuntimeError(f"{mode} backup failed: {step.error_tail()}")
    report = engine_report(step)
    engine_seconds = float(report["duration"]) if report else None
    if report and report.get("errors"):
        raise RuntimeError(f"{mode} backup could not read some files: {report['errors'][:3]}")
    return {
        "mode": mode,
        "rep": rep,
        "seconds": step.seconds,
        "engine_seconds": engine_seconds,
        "throughput": data_bytes / step.seconds,
        "engine_throughput": data_bytes / engine_seconds if engine_seconds else None,
        "client_cpu_seconds": step.user_seconds + step.system_seconds,
        "server_cpu_seconds": round(server_cpu, 2),
        "max_rss_bytes": step.max_rss_bytes,
        "other_cpu_seconds": step.other_cpu_seconds,
        "dropped_cache": step.dropped_cache,
        "repo": runner.repo_size().to_dict(),
        "bytes_added": report.get("bytes_added") if report else None,
        "step": step.to_dict(),
    }


def run_gateway_throughput(settings: Settings, console: Console) -> dict[str, Any]:
    """Data set, server, then local and gateway backups alternately, ``repeat`` times each."""
    started_at = now_iso()
    load_before = load_average()
    settings.workdir = settings.workdir.resolve()
    prepare_workdir(settings.workdir)
    data = settings.workdir / "data"
    with console.status(f"generating a {format_size(settings.size)} data set ..."):
        dataset = generate(data, settings.size, settings.seed)
    console.print(
        f"data set: {format_size(dataset.total_bytes)} in {dataset.files:,} files "
        f"(made in {dataset.seconds:.1f} s)"
    )
    runs: list[dict[str, Any]] = []
    with running_server(settings.workdir / "server" / "data") as server:
        console.print(f"gateway {server.url} (pid {server.pid}), vaults on the same disk")
        for rep in range(settings.repeat):
            order = MODES if rep % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                with console.status(f"run {rep + 1}/{settings.repeat}: {mode} backup ..."):
                    run = measure(mode, rep, data, dataset.total_bytes, server, settings)
                runs.append(run)
                console.print(
                    f"  run {rep + 1} {mode:<8} {run['seconds']:7.2f} s "
                    f"({run['throughput'] / MIB:6.1f} MiB/s; engine {run['engine_seconds'] or 0:.2f} s)"
                    f"  client cpu {run['client_cpu_seconds']:6.2f} s"
                    + (
                        f"  gateway cpu {run['server_cpu_seconds']:6.2f} s"
                        if mode == "gateway"
                        else ""
                    )
                )
    best = {
        mode: max((r for r in runs if r["mode"] == mode), key=lambda r: r["throughput"])
        for mode in MODES
    }
    ratio = best["gateway"]["throughput"] / best["local"]["throughput"]
    engine_ratio = None
    if best["gateway"]["engine_throughput"] and best["local"]["engine_throughput"]:
        engine_ratio = best["gateway"]["engine_throughput"] / best["local"]["engine_throughput"]
    return {
        "benchmark": "gateway-throughput",
        "started_at": started_at,
        "command": " ".join(["python -m bench.gateway_throughput", *sys.argv[1:]]),
        "machine": host_info(),
        "load_average_before": load_before,
        "parameters": {"size": settings.size, "repeat": settings.repeat, "seed": settings.seed},
        "dataset": dataset.to_dict(),
        "page_cache_dropped": all(r["dropped_cache"] for r in runs),
        "runs": runs,
        "best": {m: {k: v for k, v in r.items() if k != "step"} for m, r in best.items()},
        "ratio": ratio,
        "engine_ratio": engine_ratio,
        "goal": {"ratio_at_least": GOAL_RATIO, "met": ratio >= GOAL_RATIO},
        "ok": True,
    }


# -- reporting -----------------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value / MIB:,.1f} MiB/s"


def render_table(results: dict[str, Any]) -> Table:
    """Best run of each mode and the ratio."""
    table = Table(
        title="Backup throughput: local repository vs. through the gateway (TLS, loopback)"
    )
    for col in (
        "Path",
        "Wall",
        "Throughput",
        "Engine time",
        "Client CPU",
        "Gateway CPU",
        "Peak RSS",
    ):
        table.add_column(col, justify="left" if col == "Path" else "right")
    for mode in MODES:
        r = results["best"][mode]
        table.add_row(
            mode,
            f"{r['seconds']:.2f} s",
            _rate(r["throughput"]),
            f"{r['engine_seconds']:.2f} s" if r["engine_seconds"] else "—",
            f"{r['client_cpu_seconds']:.2f} s",
            f"{r['server_cpu_seconds']:.2f} s" if mode == "gateway" else "—",
            format_size(r["max_rss_bytes"]),
        )
    met = results["goal"]["met"]
    table.caption = (
        f"gateway / local = {results['ratio']:.0%} (goal ≥ {GOAL_RATIO:.0%}: "
        f"{'met' if met else 'NOT met'})"
    )
    return table


def render_markdown(results: dict[str, Any]) -> str:
    """The report written next to the JSON."""
    ds, best = results["dataset"], results["best"]
    met = results["goal"]["met"]
    eng = results["engine_ratio"]
    lines = [
        f"# Gateway throughput — {results['started_at']}",
        "",
        f"`vaultwatch repo backup` of the same {format_size(ds['total_bytes'])} generated data "
        f"set ({ds['files']:,} files) into a fresh local repository and into a fresh tenant "
        "vault through the gateway (`vw+https://` on loopback: TLS, the agent's GatewayStore, "
        "the server's append-only checks and BLAKE3 verification, the vault on the same disk), "
        f"{results['parameters']['repeat']} time(s) each, alternating; the fastest of each counts. "
        f"Page cache dropped before every backup: {'yes' if results['page_cache_dropped'] else 'no'}.",
        "",
        "| Path | Wall | Throughput | Engine time | Client CPU | Gateway CPU | Peak RSS | Vault size |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        r = best[mode]
        lines.append(
            f"| {mode} | {r['seconds']:.2f} s | {_rate(r['throughput'])} | "
            + (f"{r['engine_seconds']:.2f} s" if r["engine_seconds"] else "—")
            + f" | {r['client_cpu_seconds']:.2f} s | "
            + (f"{r['server_cpu_seconds']:.2f} s" if mode == "gateway" else "—")
            + f" | {format_size(r['max_rss_bytes'])} | {format_size(r['repo']['bytes'])} |"
        )
    lines += [
        "",
        f"**Gateway / local throughput: {results['ratio']:.0%}** (goal ≥ {GOAL_RATIO:.0%}: "
        f"{'✅ met' if met else '❌ not met'})"
        + (f"; by the engine's own backup time: {eng:.0%}." if eng else "."),
        "",
        "Throughput is data-set bytes over the backup command's wall time (interpreter start "
        "included, as for restic and borg in the backup benchmark); *engine time* leaves the "
        "start out. *Gateway CPU* is the server process's CPU during the backup: on loopback "
        "it shares the machine's cores with the client.",
        "",
        "## Every run",
        "",
        "| Run | Path | Wall | Throughput | Client CPU | Gateway CPU | Others' CPU |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['rep'] + 1} | {r['mode']} | {r['seconds']:.2f} s | {_rate(r['throughput'])} | "
            f"{r['client_cpu_seconds']:.2f} s | "
            + (f"{r['server_cpu_seconds']:.2f} s" if r["mode"] == "gateway" else "—")
            + f" | {r['other_cpu_seconds']:.2f} s |"
        )
    lines += [
        "",
        *machine_section(
            results,
            "*others' CPU* is what everything but the client used during its backup, "
            "the gateway included",
        ),
    ]
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway_throughput",
        description="Backup throughput through the gateway against a local repository.",
    )
    parser.add_argument(
        "--size", type=parse_size, default=512 * MIB, help="data set size (default 512M)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="backups of each kind (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-drop-caches", dest="drop_caches", action="store_false")
    add_output_options(parser, "gateway-throughput")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be between 1 and 10")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = bench_console()
    settings = Settings(
        workdir=args.workdir,
        size=args.size,
        repeat=args.repeat,
        seed=args.seed,
        drop_caches=args.drop_caches,
    )
    console.print(f"load average before: {load_average()}")
    t0 = time.perf_counter()
    results = run_gateway_throughput(settings, console)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    publish(
        "gateway-throughput",
        results,
        render_markdown(results),
        render_table(results),
        args.results,
        console,
    )
    return 0 if results["goal"]["met"] else 2


if __name__ == "__main__":
    raise SystemExit(main())
