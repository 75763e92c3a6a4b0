"""Event ingestion and the alarm list of the operations center, on SQLite and PostgreSQL.

For each catalog engine a fresh server (``vaultwatch server run``, its own process) gets
an operations center API key, then:

* **unique**: ``--events`` events with distinct identifiers, posted through the batch API
  (``--batch`` events a request) by ``--clients`` concurrent clients; events per second.
* **duplicates**: as many events drawn from ``--distinct`` identifiers (every event is a
  repeat after the first few), the tally of each alarm checked against what was sent.
* **one alarm, many senders**: ``--senders`` concurrent clients send ``--each`` single
  events of the same alarm; the final tally must equal senders x each, with no 5xx.
* **alarm list**: the store filled to ``--alarms`` active alarms, then the list API asked
  ``--queries`` times for each of several views (worst first, a severity filter, a node,
  a text search, a second page by cursor); latency from request to the end of the answer.

Goals: >= 10,000 events/s through the batch API on PostgreSQL, >= 3,000/s on SQLite, no
count lost by concurrent senders, the list's p95 <= 100 ms with 100,000 active alarms.

    python -m bench.soc_events [--events 50000] [--alarms 100000] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table
from sqlalchemy import func, select

from bench.backup_bench import prepare_workdir
from bench.service import (
    ServerProcess,
    add_output_options,
    bench_console,
    connections_per_worker,
    describe_catalog,
    fresh_postgres_database,
    host_info,
    load_average,
    machine_section,
    now_iso,
    percentiles,
    postgres_server_url,
    publish,
    running_server,
)
from vaultwatch.catalog import Role
from vaultwatch.catalog.soc_models import Alarm
from vaultwatch.catalog.users import create_user
from vaultwatch.soc.apikeys import create_api_key

ENGINES = ("sqlite", "postgresql")
GOAL_EVENTS_PER_SECOND = {"postgresql": 10_000, "sqlite": 3_000}
GOAL_LIST_P95_SECONDS = 0.100
SEVERITIES = ("warning", "minor", "major", "critical")
GROUPS = ("agent.heartbeat", "backup.overdue", "node.disk", "probe.tls", "job.failed")


@dataclass
class Settings:
    """One run's parameters (the test uses tiny ones)."""

    events: int = 50_000
    batch: int = 1000
    clients: int = 4
    distinct: int = 200
    senders: int = 100
    each: int = 10
    alarms: int = 100_000
    queries: int = 50


def operator_key(server: ServerProcess) -> str:
    """An operations center user and an API key acting as it."""
    with server.catalog.session() as session:
        user = create_user(
            session,
            email="bench@soc.example",
            display_name="Benchmark",
            role=Role.SOC_OPERATOR,
            password="benchmark password",
            actor="system:bench",
        )
        return create_api_key(
            session, user, "bench", key=server.settings.token_key(), actor="system:bench"
        ).plaintext


def event(node: str, index: int) -> dict[str, Any]:
    """One event; `index` chooses its severity and alert group."""
    return {
        "node": node,
        "alert_group": GROUPS[index % len(GROUPS)],
        "alert_key": f"k{index % 7}",
        "summary": f"benchmark event {index} on {node}",
        "severity": SEVERITIES[index % len(SEVERITIES)],
        "attributes": {"bench": "1"},
    }


async def post_batches(
    server: ServerProcess, key: str, batches: list[list[dict[str, Any]]], clients: int
) -> tuple[float, int, list[float], list[int]]:
    """Post every batch with `clients` concurrent connections.

    Returns (seconds, failures, latencies, the connections each server worker held).
    """
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    failures = 0
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while True:
            try:
                batch = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            answer = await client.post(
                f"{server.url}/api/v1/events/batch", json={"events": batch}, headers=headers
            )
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 202:
                failures += 1

    async with httpx.AsyncClient(verify=server.ssl_context(), timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        seconds = time.perf_counter() - started
        split = connections_per_worker(server.pid, server.port)
        return seconds, failures, latencies, split


def ingest(
    server: ServerProcess, key: str, cfg: Settings, *, distinct: int | None
) -> dict[str, Any]:
    """Events through the batch API: unique identifiers, or drawn from `distinct` of them."""
    rng = random.Random(7)
    events = []
    for i in range(cfg.events):
        node = f"u{i}" if distinct is None else f"d{rng.randrange(distinct)}"
        events.append(event(node, i if distinct is None else 0))
    batches = [events[i : i + cfg.batch] for i in range(0, len(events), cfg.batch)]
    seconds, failures, latencies, split = asyncio.run(
        post_batches(server, key, batches, cfg.clients)
    )
    result: dict[str, Any] = {
        "events": cfg.events,
        "batch": cfg.batch,
        "clients": cfg.clients,
        "seconds": round(seconds, 3),
        "events_per_second": round(cfg.events / seconds, 1),
        "failed_requests": failures,
        "request_latency": percentiles(latencies),
        "connections_per_worker": split,
    }
    if distinct is not None:
        sent: dict[str, int] = {}
        for e in events:
            sent[e["node"]] = sent.get(e["node"], 0) + 1
        with server.catalog.session() as session:
            rows = session.execute(
                select(Alarm.node, Alarm.tally).where(Alarm.node.like("d%"))
            ).all()
        stored = {node: tally for node, tally in rows}
        result["distinct"] = distinct
        result["tallies_match"] = stored == sent
    return result


async def one_alarm(server: ServerProcess, key: str, senders: int, each: int) -> dict[str, Any]:
    """`senders` clients, each with its own connection, send `each` events of one alarm."""
    headers = {"Authorization": f"Bearer {key}"}
    statuses: dict[int, int] = {}
    body = event("contended", 3)

    async def sender() -> None:
        async with httpx.AsyncClient(verify=server.ssl_context(), timeout=120) as client:
            for _ in range(each):
                answer = await client.post(
                    f"{server.url}/api/v1/events", json=body, headers=headers
                )
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    seconds = time.perf_counter() - started
    with server.catalog.session() as session:
        tally = session.scalar(select(Alarm.tally).where(Alarm.node == "contended"))
    return {
        "senders": senders,
        "each": each,
        "sent": senders * each,
        "tally": tally,
        "lost": senders * each - int(tally or 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(seconds, 3),
    }


def fill(server: ServerProcess, key: str, target: int, cfg: Settings) -> float:
    """Top the live alarms up to `target` through the batch API; the seconds it took."""
    with server.catalog.session() as session:
        have = int(session.scalar(select(func.count()).select_from(Alarm)) or 0)
    missing = max(0, target - have)
    events = [event(f"fill{i}", i) for i in range(missing)]
    batches = [events[i : i + cfg.batch] for i in range(0, len(events), cfg.batch)]
    seconds, failures, _, _ = asyncio.run(post_batches(server, key, batches, cfg.clients))
    if failures:
        raise RuntimeError(f"{failures} fill requests failed")
    return seconds


LIST_VIEWS = {
    "worst first": "/api/v1/alarms?limit=100",
    "critical only": "/api/v1/alarms?severity=critical&limit=100",
    "one group, newest": "/api/v1/alarms?alert_group=node.disk&sort=-last_occurrence&limit=100",
    "one node": "/api/v1/alarms?node=fill4242",
    "text search": "/api/v1/alarms?q=event%2099&limit=50",
}


def list_latency(server: ServerProcess, key: str, queries: int) -> dict[str, Any]:
    """Latency of each list view, and of the second page reached by cursor."""
    headers = {"Authorization": f"Bearer {key}"}
    out: dict[str, Any] = {}
    with httpx.Client(verify=server.ssl_context(), timeout=60, headers=headers) as client:
        first = client.get(f"{server.url}{LIST_VIEWS['worst first']}").json()
        views = dict(LIST_VIEWS)
        if first.get("next_cursor"):
            views["second page"] = f"{LIST_VIEWS['worst first']}&cursor={first['next_cursor']}"
        for name, path in views.items():
            latencies = []
            rows = 0
            for _ in range(queries):
                started = time.perf_counter()
                answer = client.get(f"{server.url}{path}")
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise RuntimeError(f"{name}: HTTP {answer.status_code} {answer.text[:200]}")
                rows = len(answer.json()["items"])
            out[name] = {"rows": rows, **percentiles(latencies)}
    return out


def run_engine(engine: str, workdir: Path, cfg: Settings, console: Any) -> dict[str, Any]:
    """Every measurement on one catalog engine, with its own server."""
    data_dir = workdir / engine / "data"
    prepare_workdir(data_dir.parent)

    def measure(catalog_url: str | None) -> dict[str, Any]:
        with running_server(data_dir, catalog_url=catalog_url) as server:
            key = operator_key(server)
            console.print(f"[{engine}] unique events ...")
            unique = ingest(server, key, cfg, distinct=None)
            console.print(f"[{engine}] duplicate-heavy events ...")
            duplicates = ingest(server, key, cfg, distinct=cfg.distinct)
            console.print(f"[{engine}] {cfg.senders} senders of one alarm ...")
            contended = asyncio.run(one_alarm(server, key, cfg.senders, cfg.each))
            console.print(f"[{engine}] filling to {cfg.alarms:,} alarms ...")
            fill_seconds = fill(server, key, cfg.alarms, cfg)
            with server.catalog.session() as session:
                active = int(session.scalar(select(func.count()).select_from(Alarm)) or 0)
            console.print(f"[{engine}] alarm list with {active:,} alarms ...")
            listing = list_latency(server, key, cfg.queries)
            return {
                "catalog": describe_catalog(server.settings.catalog_url),
                "unique": unique,
                "duplicates": duplicates,
                "one_alarm": contended,
                "fill_seconds": round(fill_seconds, 2),
                "active_alarms": active,
                "alarm_list": listing,
            }

    if engine == "sqlite":
        return measure(None)
    with fresh_postgres_database(postgres_server_url()) as url:
        return measure(url)


def goals(engine: str, result: dict[str, Any], cfg: Settings) -> dict[str, bool]:
    """Which goals the engine's figures meet."""
    worst_p95 = max(v["p95"] for v in result["alarm_list"].values())
    return {
        "ingestion": result["unique"]["events_per_second"] >= GOAL_EVENTS_PER_SECOND[engine],
        "no_count_lost": result["one_alarm"]["lost"] == 0
        and set(result["one_alarm"]["statuses"]) == {"202"},
        "tallies_match": bool(result["duplicates"]["tallies_match"]),
        "list_p95": worst_p95 <= GOAL_LIST_P95_SECONDS and result["active_alarms"] >= cfg.alarms,
    }


def report(results: dict[str, Any]) -> tuple[str, Table]:
    """The Markdown report and the console table."""
    table = Table(title="Operations center: event ingestion and the alarm list")
    for column in (
        "engine",
        "unique ev/s",
        "duplicates ev/s",
        "one alarm lost",
        "list p95 (worst view)",
        "goals",
    ):
        table.add_column(column)
    lines = [
        "# Operations center: event ingestion and the alarm list",
        "",
        f"{results['settings']['events']:,} events per run in batches of "
        f"{results['settings']['batch']} from {results['settings']['clients']} clients; "
        f"{results['settings']['senders']} senders x {results['settings']['each']} events of one "
        f"alarm; the list with {results['settings']['alarms']:,} active alarms, "
        f"{results['settings']['queries']} requests per view. A real server process over TLS "
        "on loopback; the clients run in this process.",
        "",
        "| engine | unique events/s | its connections per server worker | duplicate-heavy events/s | tallies match | one alarm: sent / tally / statuses | list p95 (worst view) | goals met |",
        "|---|---:|---|---:|---|---|---:|---|",
    ]
    for engine, result in results["engines"].items():
        met = results["goals"][engine]
        worst = max(result["alarm_list"].items(), key=lambda kv: kv[1]["p95"])
        one = result["one_alarm"]
        lines.append(
            f"| {engine} | {result['unique']['events_per_second']:,.0f} "
            f"(goal {GOAL_EVENTS_PER_SECOND[engine]:,}) | "
            f"{' + '.join(map(str, result['unique'].get('connections_per_worker', []))) or '?'} | "
            f"{result['duplicates']['events_per_second']:,.0f} | "
            f"{'yes' if result['duplicates']['tallies_match'] else 'NO'} | "
            f"{one['sent']} / {one['tally']} / {one['statuses']} | "
            f"{worst[1]['p95'] * 1000:.1f} ms ({worst[0]}) | "
            f"{sum(met.values())} of {len(met)} |"
        )
        table.add_row(
            engine,
            f"{result['unique']['events_per_second']:,.0f}",
            f"{result['duplicates']['events_per_second']:,.0f}",
            str(one["lost"]),
            f"{worst[1]['p95'] * 1000:.1f} ms",
            f"{sum(met.values())}/{len(met)}",
        )
    lines += ["", "## Alarm list latency by view", ""]
    lines += ["| engine | view | rows | p50 | p95 | p99 |", "|---|---|---:|---:|---:|---:|"]
    for engine, result in results["engines"].items():
        for view, stats in result["alarm_list"].items():
            lines.append(
                f"| {engine} | {view} | {stats['rows']} | {stats['p50'] * 1000:.1f} ms | "
                f"{stats['p95'] * 1000:.1f} ms | {stats['p99'] * 1000:.1f} ms |"
            )
    lines.append("")
    lines += machine_section(results, "the server and the clients share its two cores")
    return "\n".join(lines), table


def run(
    cfg: Settings, engines: list[str], workdir: Path, out_dir: Path, console: Any
) -> dict[str, Any]:
    """Run the benchmark and publish its results; returns them."""
    results: dict[str, Any] = {
        "benchmark": "soc-events",
        "started_at": now_iso(),
        "load_average_before": load_average(),
        "settings": cfg.__dict__,
        "engines": {},
        "goals": {},
        "command": " ".join(sys.argv),
    }
    for engine in engines:
        results["engines"][engine] = run_engine(engine, workdir, cfg, console)
        results["goals"][engine] = goals(engine, results["engines"][engine], cfg)
    results["machine"] = {**host_info(), "load_average": load_average()}
    markdown, table = report(results)
    publish("soc-events", results, markdown, table, out_dir, console)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=Settings.events)
    parser.add_argument("--batch", type=int, default=Settings.batch)
    parser.add_argument("--clients", type=int, default=Settings.clients)
    parser.add_argument("--distinct", type=int, default=Settings.distinct)
    parser.add_argument("--senders", type=int, default=Settings.senders)
    parser.add_argument("--each", type=int, default=Settings.each)
    parser.add_argument("--alarms", type=int, default=Settings.alarms)
    parser.add_argument("--queries", type=int, default=Settings.queries)
    parser.add_argument("--engines", default=",".join(ENGINES))
    add_output_options(parser, "soc-events")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)}: choose from {', '.join(ENGINES)}")
    cfg = Settings(
        events=args.events,
        batch=args.batch,
        clients=args.clients,
        distinct=args.distinct,
        senders=args.senders,
        each=args.each,
        alarms=args.alarms,
        queries=args.queries,
    )
    results = run(cfg, engines, args.workdir, args.results, bench_console())
    print(json.dumps(results["goals"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
