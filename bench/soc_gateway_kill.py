"""From killing a gateway process to its alarm in the operations center's API, over many trials.

Two real server processes share one data directory and catalog: ``soc`` (roles web and
worker: the API and the duties, the endpoint probes among them) and ``gw1`` (role
gateway). Each trial waits until the gateway is up and its probe has passed, kills the
gateway with SIGKILL, and polls ``GET /api/v1/alarms?alert_group=gateway.down`` every
50 ms until the open ``gateway.down`` alarm of ``gateway:gw1`` is there; then the gateway
is started again and the alarm must clear before the next trial. Goal: p95 <= 5 s.

    python -m bench.soc_gateway_kill [--trials 10] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from bench.backup_bench import prepare_workdir
from bench.service import (
    ServerProcess,
    add_output_options,
    bench_console,
    describe_catalog,
    free_port,
    fresh_postgres_database,
    host_info,
    load_average,
    machine_section,
    now_iso,
    percentiles,
    postgres_server_url,
    publish,
)
from bench.soc_events import operator_key
from vaultwatch.server import init_server
from vaultwatch.server_config import ServerSettings, load_settings

ENGINES = ("sqlite", "postgresql")
GOAL_P95_SECONDS = 5.0
POLL_SECONDS = 0.05


class RoleProcess(ServerProcess):
    """A server process serving some roles under its own node name."""

    def __init__(
        self, settings: ServerSettings, port: int, log: Path, roles: str, node: str
    ) -> None:
        super().__init__(settings, port, log, "warning")
        self.roles = roles
        self.node = node

    def argv(self) -> list[str]:
        return [
            *super().argv(),
            "--roles",
            self.roles,
            "--node-name",
            self.node,
            "--workers",
            "1",
        ]

    def kill(self) -> None:
        """SIGKILL: the gateway dies as a crashed machine would."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)


def gateway_alarm(client: httpx.Client, url: str, key: str) -> dict[str, Any] | None:
    """The open gateway.down alarm of gw1, if there is one."""
    answer = client.get(
        f"{url}/api/v1/alarms",
        params={"alert_group": "gateway.down"},
        headers={"Authorization": f"Bearer {key}"},
    )
    answer.raise_for_status()
    for alarm in answer.json()["items"]:
        if alarm["entity"] == "gateway:gw1":
            return dict(alarm)
    return None


def wait_for(condition: Any, timeout: float, what: str) -> float:
    """Poll `condition` until true; the seconds it took (RuntimeError after `timeout`)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_SECONDS)
    return time.monotonic() - started


def probe_passed(server: ServerProcess) -> bool:
    """The gateway's endpoint probe has run and passed."""
    from sqlalchemy import select

    from vaultwatch.catalog.soc_models import Probe

    with server.catalog.session() as session:
        ok = session.scalar(select(Probe.last_ok).where(Probe.name == "gateway:gw1"))
    return bool(ok)


def run_engine(engine: str, workdir: Path, trials: int, console: Any) -> dict[str, Any]:
    """Every trial on one catalog engine."""
    data_dir = workdir / engine / "data"
    prepare_workdir(data_dir.parent)

    def measure(catalog_url: str | None) -> dict[str, Any]:
        soc_port, gw_port = free_port(), free_port()
        init_server(data_dir, catalog_url=catalog_url, host="127.0.0.1", port=soc_port)
        settings = load_settings(data_dir)  # the monitors' defaults: probes every 2 s
        soc = RoleProcess(settings, soc_port, data_dir.parent / "soc.log", "web,worker", "soc")
        gateway = RoleProcess(settings, gw_port, data_dir.parent / "gw1.log", "gateway", "gw1")
        detections: list[float] = []
        recoveries: list[float] = []
        soc.start()
        gateway.start()
        try:
            key = operator_key(soc)
            with httpx.Client(verify=soc.ssl_context(), timeout=10) as client:
                wait_for(lambda: probe_passed(soc), 60, "the gateway's first probe")
                for trial in range(trials):
                    killed = time.monotonic()
                    gateway.kill()
                    wait_for(
                        lambda: gateway_alarm(client, soc.url, key) is not None,
                        60,
                        "the gateway.down alarm",
                    )
                    detections.append(time.monotonic() - killed)
                    gateway.start()
                    recoveries.append(
                        wait_for(
                            lambda: gateway_alarm(client, soc.url, key) is None,
                            60,
                            "the gateway.down alarm to clear",
                        )
                    )
                    console.print(
                        f"[{engine}] trial {trial + 1}: alarm after {detections[-1]:.2f} s, "
                        f"cleared {recoveries[-1]:.2f} s after the restart"
                    )
        finally:
            gateway.stop()
            soc.stop()
        return {
            "catalog": describe_catalog(settings.catalog_url),
            "trials": trials,
            "kill_to_alarm": percentiles(detections),
            "restart_to_clear": percentiles(recoveries),
            "samples": [round(d, 3) for d in detections],
        }

    if engine == "sqlite":
        return measure(None)
    with fresh_postgres_database(postgres_server_url()) as url:
        return measure(url)


def report(results: dict[str, Any]) -> tuple[str, Table]:
    """The Markdown report and the console table."""
    table = Table(title="From a killed gateway to its alarm")
    for column in ("engine", "trials", "p50", "p95", "max", "restart to clear p95", "goal"):
        table.add_column(column)
    lines = [
        "# From a killed gateway to its alarm in the API",
        "",
        "A gateway process is killed with SIGKILL; the time until `GET /api/v1/alarms` shows "
        "its open `gateway.down` alarm (polled every 50 ms), then the time from restarting it "
        "until the alarm has cleared. The monitors' default settings: endpoint probes every 2 s.",
        "",
        "| engine | trials | kill to alarm p50 | p95 | max | restart to clear p95 | goal p95 <= 5 s |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for engine, r in results["engines"].items():
        k, c = r["kill_to_alarm"], r["restart_to_clear"]
        met = k["p95"] <= GOAL_P95_SECONDS
        lines.append(
            f"| {engine} | {r['trials']} | {k['p50']:.2f} s | {k['p95']:.2f} s | {k['max']:.2f} s "
            f"| {c['p95']:.2f} s | {'met' if met else 'MISSED'} |"
        )
        table.add_row(
            engine,
            str(r["trials"]),
            f"{k['p50']:.2f} s",
            f"{k['p95']:.2f} s",
            f"{k['max']:.2f} s",
            f"{c['p95']:.2f} s",
            "met" if met else "missed",
        )
    lines.append("")
    lines += machine_section(results, "both server processes share its two cores")
    return "\n".join(lines), table


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--engines", default=",".join(ENGINES))
    add_output_options(parser, "soc-gateway-kill")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or args.trials < 1:
        parser.error("choose engines from sqlite,postgresql and at least one trial")
    console = bench_console()
    results: dict[str, Any] = {
        "benchmark": "soc-gateway-kill",
        "started_at": now_iso(),
        "load_average_before": load_average(),
        "engines": {},
        "command": " ".join(sys.argv),
    }
    for engine in engines:
        results["engines"][engine] = run_engine(engine, args.workdir, args.trials, console)
    results["machine"] = {**host_info(), "load_average": load_average()}
    markdown, table = report(results)
    publish("soc-gateway-kill", results, markdown, table, args.results, console)
    print(json.dumps({e: r["kill_to_alarm"]["p95"] for e, r in results["engines"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
