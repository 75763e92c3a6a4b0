"""The SOC console in a browser: first page with 100,000 alarms, live latency, an alarm storm.

A fresh server (``vaultwatch server run``, its own process) per catalog engine is filled
to ``--alarms`` active alarms through the batch API, then:

* **first page**: an operator signs in through the login form (with its CSRF token) and
  ``GET /console`` is asked ``--requests`` times with the session cookie; latency from
  request to the end of the answer. Goal: p95 <= 200 ms.
* **live**: Debian's Chromium (Playwright) has ``/console`` open; ``--live`` alarms are
  posted one at a time through the API, and each is timed from just before its POST to
  the moment its row is in the DOM (a MutationObserver notes the page's clock when the row
  is inserted; the page's clock is calibrated against ours first). Goal: p95 <= 1 s.
* **storm**: a sender in another process posts ``--rate`` new alarms a second (a batch
  every 200 ms) for ``--seconds`` seconds while the page stays open; every 200 ms a real
  key press (``j``/``k``, through the browser's input pipeline) is timed until the page
  handled it, and a trivial script's round trip too. Goal: key press p95 <= 100 ms. At the
  end the page's severity counters must equal the API's counts.

    python -m bench.web_console [--alarms 100000] [--seconds 60] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from bench import soc_events
from bench.backup_bench import prepare_workdir
from bench.service import (
    ServerProcess,
    add_output_options,
    bench_console,
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
from bench.soc_events import SEVERITIES, event, operator_key

ENGINES = ("sqlite", "postgresql")
CHROMIUM = "/usr/bin/chromium"
EMAIL = "bench@soc.example"
PASSWORD = "benchmark password"  # what bench.soc_events.operator_key gives its user
LABELS = ("critical", "major", "minor", "warning", "indeterminate", "clear")
GOAL_PAGE_P95 = 0.200
GOAL_LIVE_P95 = 1.0
GOAL_INPUT_P95 = 0.100
TICK = 0.2
#: Batches of the storm in flight at once at most.
SENDER_CONNECTIONS = 4
#: How long the page may take after the storm to show the final counts.
SETTLE_SECONDS = 30.0


@dataclass
class Settings:
    """One run's parameters (the test uses tiny ones)."""

    alarms: int = 100_000
    requests: int = 50
    live: int = 20
    rate: int = 500
    seconds: float = 60.0
    batch: int = 1000
    clients: int = 4


# -- first page ----------------------------------------------------------------------------------


def sign_in(client: httpx.Client, base: str) -> None:
    """Log in through the form as a browser does: its CSRF token, then the session cookie."""
    form = client.get(f"{base}/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if form.status_code != 200 or not match:
        raise RuntimeError(f"no login form: HTTP {form.status_code}")
    answer = client.post(
        f"{base}/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": match.group(1)},
        follow_redirects=False,
    )
    if answer.status_code != 303 or "vw_session" not in client.cookies:
        raise RuntimeError(f"login refused: HTTP {answer.status_code} {answer.text[:200]}")


def first_page(server: ServerProcess, requests: int) -> dict[str, Any]:
    """Latency of the console's first page with a session cookie."""
    with httpx.Client(verify=server.ssl_context(), timeout=60) as client:
        sign_in(client, server.url)
        latencies = []
        rows = 0
        size = 0
        for i in range(requests + 1):
            started = time.perf_counter()
            answer = client.get(f"{server.url}/console")
            elapsed = time.perf_counter() - started
            if answer.status_code != 200:
                raise RuntimeError(f"/console: HTTP {answer.status_code} {answer.text[:200]}")
            if i:  # the first request warms the server's caches
                latencies.append(elapsed)
            rows = answer.text.count('<tr id="alarm-')
            size = len(answer.content)
    return {"requests": requests, "rows": rows, "bytes": size, **percentiles(latencies)}


# -- the browser -----------------------------------------------------------------------------------

#: Notes the page's clock (ms since the epoch) when each alarm row is inserted.
OBSERVER = """() => {
  window.__rowSeen = {};
  new MutationObserver((records) => {
    const at = performance.timeOrigin + performance.now();
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeType === 1 && n.dataset && n.dataset.id && !(n.dataset.id in window.__rowSeen)) {
          window.__rowSeen[n.dataset.id] = at;
        }
      }
    }
  }).observe(document.getElementById("alarms"), { childList: true });
}"""


@contextmanager
def console_page(server: ServerProcess) -> Iterator[Any]:
    """Chromium signed in through the form with /console open and its live feed up."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(
                ignore_https_errors=True, viewport={"width": 1400, "height": 900}
            )
            page = context.new_page()
            page.goto(f"{server.url}/login")
            page.get_by_label("Email").fill(EMAIL)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{server.url}/console")
            page.wait_for_function(
                "() => document.getElementById('live-text').textContent === 'Live'",
                timeout=30_000,
            )
            page.evaluate(OBSERVER)
            yield page
        finally:
            browser.close()


def clock_offset(page: Any, rounds: int = 15) -> float:
    """The page's clock minus ours, in seconds (the round trip with the least delay)."""
    best: tuple[float, float] | None = None
    for _ in range(rounds):
        before = time.time()
        theirs = float(page.evaluate("() => performance.timeOrigin + performance.now()")) / 1000
        after = time.time()
        if best is None or after - before < best[0]:
            best = (after - before, theirs - (before + after) / 2)
    assert best is not None
    return best[1]


def post_one(client: httpx.Client, server: ServerProcess, key: str, body: dict[str, Any]) -> int:
    answer = client.post(
        f"{server.url}/api/v1/events", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    if answer.status_code != 202:
        raise RuntimeError(f"event refused: HTTP {answer.status_code} {answer.text[:200]}")
    return int(answer.json()["alarms"][0]["id"])


def live_latency(server: ServerProcess, key: str, page: Any, count: int) -> dict[str, Any]:
    """From just before each POST to its row in the DOM, `count` alarms one at a time."""
    offset = clock_offset(page)
    rng = random.Random(7)
    latencies = []
    posts = []
    with httpx.Client(verify=server.ssl_context(), timeout=30) as client:
        for i in range(count):
            body = {**event(f"live{i}", 3), "summary": f"live alarm {i}"}  # critical: first page
            sent = time.time()
            alarm_id = post_one(client, server, key, body)
            posts.append(time.time() - sent)
            page.wait_for_function(
                f"() => '{alarm_id}' in window.__rowSeen", timeout=30_000, polling=20
            )
            seen = float(page.evaluate(f"() => window.__rowSeen['{alarm_id}']")) / 1000
            latencies.append(seen - offset - sent)
            time.sleep(rng.uniform(0.2, 1.2))  # at every phase of the feed's polling
    return {
        "alarms": count,
        "clock_offset_s": round(offset, 4),
        **percentiles(latencies),
        "post": percentiles(posts),
    }


# -- the storm ---------------------------------------------------------------------------------------


def storm_sender(
    url: str, ca: str, key: str, rate: int, seconds: float, out: Any
) -> None:  # pragma: no cover - runs in its own process
    """Post `rate` new alarms a second, a batch every TICK, for `seconds`; report to `out`.

    Batches go out on schedule even when the server is slow to answer one (up to
    SENDER_CONNECTIONS at once), so a slow answer does not lower the rate by itself.
    """
    import ssl
    import threading
    from concurrent.futures import ThreadPoolExecutor

    per_tick = max(1, round(rate * TICK))
    lock = threading.Lock()
    totals = {"sent": 0, "failures": 0}
    latencies: list[float] = []
    local = threading.local()
    ctx = ssl.create_default_context(cafile=ca)
    headers = {"Authorization": f"Bearer {key}"}
    clients: list[httpx.Client] = []

    def send(first: int) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(verify=ctx, timeout=60, headers=headers)
            with lock:
                clients.append(local.client)
        batch = [
            {**event(f"storm{i}", i), "summary": f"storm alarm {i}"}
            for i in range(first, first + per_tick)
        ]
        t0 = time.perf_counter()
        try:
            status = local.client.post(f"{url}/api/v1/events/batch", json={"events": batch})
        except httpx.HTTPError:
            status = None
        with lock:
            latencies.append(time.perf_counter() - t0)
            if status is not None and status.status_code == 202:
                totals["sent"] += len(batch)
            else:
                totals["failures"] += 1

    slots = threading.Semaphore(SENDER_CONNECTIONS)

    def release(_: Any) -> None:
        slots.release()

    with ThreadPoolExecutor(SENDER_CONNECTIONS) as pool:
        started = time.monotonic()
        tick = 0
        while time.monotonic() - started < seconds:
            slots.acquire()
            pool.submit(send, tick * per_tick).add_done_callback(release)
            tick += 1
            pause = started + tick * TICK - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    elapsed = time.monotonic() - started
    for client in clients:
        client.close()
    out.put({**totals, "seconds": elapsed, "latencies": latencies})


def api_counts(client: httpx.Client, server: ServerProcess, key: str) -> dict[str, int]:
    """Active alarms by severity, as the API counts them."""
    counts = {}
    for label in LABELS:
        answer = client.get(
            f"{server.url}/api/v1/alarms",
            params={"severity": label, "limit": 1, "total": "true"},
            headers={"Authorization": f"Bearer {key}"},
        )
        answer.raise_for_status()
        counts[label] = int(answer.json()["total"])
    return counts


PAGE_COUNTS = """() => Object.fromEntries(Array.from(document.querySelectorAll('[data-count]'))
  .map((e) => [e.dataset.count, parseInt(e.textContent, 10)]))"""


def probe(page: Any, press: list[float], script: list[float], step: int) -> None:
    """One key press (j, then k: the selection moves and comes back) and one script round trip."""
    key = "j" if step % 2 == 0 else "k"
    started = time.perf_counter()
    page.keyboard.press(key)  # returns once the page has handled the key event
    press.append(time.perf_counter() - started)
    started = time.perf_counter()
    page.evaluate("() => document.querySelectorAll('tr.alarm.selected').length")
    script.append(time.perf_counter() - started)


def storm(server: ServerProcess, key: str, page: Any, cfg: Settings) -> dict[str, Any]:
    """A storm of new alarms from another process while the page is probed for responsiveness."""
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    sender = spawn.Process(
        target=storm_sender,
        args=(server.url, str(server.ca_cert), key, cfg.rate, cfg.seconds, out),
        daemon=True,
    )
    rows_before = int(page.evaluate("() => document.querySelectorAll('tr.alarm').length"))
    press: list[float] = []
    script: list[float] = []
    sender.start()
    started = time.monotonic()
    step = 0
    try:
        while sender.is_alive() and time.monotonic() - started < cfg.seconds + 60:
            probe(page, press, script, step)
            step += 1
            pause = started + step * TICK - time.monotonic()
            if pause > 0:
                page.wait_for_timeout(pause * 1000)
        sender.join(timeout=60)
        sent = out.get(timeout=10)
    finally:
        if sender.is_alive():
            sender.kill()
    # The page catches up with the last changes; its counters must end equal to the API's.
    with httpx.Client(verify=server.ssl_context(), timeout=60) as client:
        expected = api_counts(client, server, key)
        settle_started = time.monotonic()
        shown: dict[str, int] = {}
        while time.monotonic() - settle_started < SETTLE_SECONDS:
            shown = page.evaluate(PAGE_COUNTS)
            if shown == expected:
                break
            page.wait_for_timeout(200)
        settled = time.monotonic() - settle_started
    return {
        "rate": cfg.rate,
        "seconds": cfg.seconds,
        "sent": sent["sent"],
        "failed_batches": sent["failures"],
        "sent_per_second": round(sent["sent"] / sent["seconds"], 1) if sent["seconds"] else 0,
        "batch_latency": percentiles(sent["latencies"]),
        "key_press": percentiles(press),
        "script_round_trip": percentiles(script),
        "rows_before": rows_before,
        "rows_after": int(page.evaluate("() => document.querySelectorAll('tr.alarm').length")),
        "api_counts": expected,
        "page_counts": shown,
        "counts_match": shown == expected,
        "settle_seconds": round(settled, 2),
    }


# -- a run ------------------------------------------------------------------------------------------


def run_engine(engine: str, workdir: Path, cfg: Settings, console: Any) -> dict[str, Any]:
    """Every measurement on one catalog engine, with its own server."""
    data_dir = workdir / engine / "data"
    prepare_workdir(data_dir.parent)

    def measure(catalog_url: str | None) -> dict[str, Any]:
        with running_server(data_dir, catalog_url=catalog_url) as server:
            key = operator_key(server)
            console.print(f"[{engine}] filling to {cfg.alarms:,} alarms ...")
            fill_cfg = soc_events.Settings(batch=cfg.batch, clients=cfg.clients)
            fill_seconds = soc_events.fill(server, key, cfg.alarms, fill_cfg)
            console.print(f"[{engine}] the console's first page x {cfg.requests} ...")
            page_stats = first_page(server, cfg.requests)
            with console_page(server) as page:
                console.print(f"[{engine}] {cfg.live} alarms to an open browser ...")
                live = live_latency(server, key, page, cfg.live)
                console.print(f"[{engine}] storm of {cfg.rate}/s for {cfg.seconds:.0f} s ...")
                storm_stats = storm(server, key, page, cfg)
            return {
                "catalog": describe_catalog(server.settings.catalog_url),
                "fill_seconds": round(fill_seconds, 2),
                "first_page": page_stats,
                "live": live,
                "storm": storm_stats,
            }

    if engine == "sqlite":
        return measure(None)
    with fresh_postgres_database(postgres_server_url()) as url:
        return measure(url)


def goals(result: dict[str, Any], cfg: Settings) -> dict[str, bool]:
    """Which goals one engine's figures meet."""
    storm_stats = result["storm"]
    return {
        "first_page_p95": result["first_page"]["p95"] <= GOAL_PAGE_P95,
        "live_p95": result["live"]["p95"] <= GOAL_LIVE_P95,
        "storm_input_p95": storm_stats["key_press"]["p95"] <= GOAL_INPUT_P95,
        "storm_counts_match": bool(storm_stats["counts_match"]),
        "storm_rate_sent": storm_stats["sent"] >= 0.95 * cfg.rate * cfg.seconds,
    }


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:,.1f} ms"


def report(results: dict[str, Any]) -> tuple[str, Table]:
    """The Markdown report and the console table."""
    s = results["settings"]
    table = Table(title="SOC console in a browser")
    for column in ("engine", "first page p95", "live p95", "storm key p95", "counts", "goals"):
        table.add_column(column)
    lines = [
        "# SOC console in a browser: first page, live alarms, an alarm storm",
        "",
        f"{s['alarms']:,} active alarms (filled through the batch API); the console's first "
        f"page asked {s['requests']} times with a session cookie; {s['live']} alarms posted "
        f"one at a time to an open Chromium page; a storm of {s['rate']} new alarms/s for "
        f"{s['seconds']:.0f} s from another process while a key press is timed every "
        f"{TICK * 1000:.0f} ms. A real server process over TLS on loopback; Chromium and the "
        "clients on the same machine.",
        "",
        "| engine | first page p50 / p95 (goal 200 ms) | live p50 / p95 / max (goal 1 s) | "
        "storm: sent/s | storm: key press p50 / p95 / max (goal 100 ms) | script round trip "
        "p95 | rows on the page after | counters = API | goals met |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for engine, r in results["engines"].items():
        met = results["goals"][engine]
        fp, live, st = r["first_page"], r["live"], r["storm"]
        lines.append(
            f"| {engine} | {_ms(fp['p50'])} / {_ms(fp['p95'])} | {_ms(live['p50'])} / "
            f"{_ms(live['p95'])} / {_ms(live['max'])} | {st['sent_per_second']:,.0f} | "
            f"{_ms(st['key_press']['p50'])} / {_ms(st['key_press']['p95'])} / "
            f"{_ms(st['key_press']['max'])} | {_ms(st['script_round_trip']['p95'])} | "
            f"{st['rows_after']:,} | {'yes' if st['counts_match'] else 'NO'} "
            f"(after {st['settle_seconds']} s) | {sum(met.values())} of {len(met)} |"
        )
        table.add_row(
            engine,
            _ms(fp["p95"]),
            _ms(live["p95"]),
            _ms(st["key_press"]["p95"]),
            "match" if st["counts_match"] else "DIFFER",
            f"{sum(met.values())}/{len(met)}",
        )
    lines += ["", "## Details", ""]
    for engine, r in results["engines"].items():
        st = r["storm"]
        lines += [
            f"- **{engine}**: filled in {r['fill_seconds']} s; first page {r['first_page']['rows']}"
            f" rows, {r['first_page']['bytes']:,} bytes; storm sent {st['sent']:,} alarms "
            f"({st['failed_batches']} failed batches, batch p95 "
            f"{_ms(st['batch_latency']['p95'])}); API counts {st['api_counts']}, page "
            f"{st['page_counts']}.",
        ]
    lines.append("")
    lines += machine_section(
        results, "the server, Chromium, the storm sender and the probes share its two cores"
    )
    return "\n".join(lines), table


def run(
    cfg: Settings, engines: list[str], workdir: Path, out_dir: Path, console: Any
) -> dict[str, Any]:
    """Run the benchmark and publish its results; returns them."""
    results: dict[str, Any] = {
        "benchmark": "web-console",
        "started_at": now_iso(),
        "load_average_before": load_average(),
        "settings": {**cfg.__dict__, "severities": list(SEVERITIES)},
        "engines": {},
        "goals": {},
        "command": " ".join(sys.argv),
    }
    for engine in engines:
        results["engines"][engine] = run_engine(engine, workdir, cfg, console)
        results["goals"][engine] = goals(results["engines"][engine], cfg)
    results["machine"] = {**host_info(), "load_average": load_average()}
    markdown, table = report(results)
    publish("web-console", results, markdown, table, out_dir, console)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alarms", type=int, default=Settings.alarms)
    parser.add_argument("--requests", type=int, default=Settings.requests)
    parser.add_argument("--live", type=int, default=Settings.live)
    parser.add_argument("--rate", type=int, default=Settings.rate)
    parser.add_argument("--seconds", type=float, default=Settings.seconds)
    parser.add_argument("--batch", type=int, default=Settings.batch)
    parser.add_argument("--clients", type=int, default=Settings.clients)
    parser.add_argument("--engines", default=",".join(ENGINES))
    add_output_options(parser, "web-console")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)}: choose from {', '.join(ENGINES)}")
    for name in ("alarms", "requests", "live", "rate", "batch", "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    cfg = Settings(
        alarms=args.alarms,
        requests=args.requests,
        live=args.live,
        rate=args.rate,
        seconds=args.seconds,
        batch=args.batch,
        clients=args.clients,
    )
    results = run(cfg, engines, args.workdir, args.results, bench_console())
    print(json.dumps(results["goals"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
