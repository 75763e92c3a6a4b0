"""The service benchmarks at a tiny scale: each runs end to end and its figures make sense.

Each core runs against a real server process on loopback, as the full benchmarks do, for
seconds instead of minutes; the assertions check the result structure and that every
figure is plausible (latencies positive and ordered, changes committed, both throughputs
measured), so a benchmark that silently measures nothing fails here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from bench.datagen import MIB
from bench.service import percentiles
from bench.tools import write_results
from rich.console import Console
from sqlalchemy.engine import URL

from bench import continuous, gateway_throughput, heartbeats
from tests.catalog.conftest import ENGINES, postgres_server_url

__all__ = ["postgres_server_url"]  # a fixture, shared with the catalog tests

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=160)


def assert_ordered(stats: dict[str, Any], *, upper: float) -> None:
    """min <= p50 <= p95 <= p99 <= max, all positive and below ``upper`` seconds."""
    values = [stats[k] for k in ("min", "p50", "p95", "p99", "max")]
    assert all(v is not None for v in values), stats
    assert values[0] > 0, stats
    assert values == sorted(values), stats
    assert values[-1] < upper, stats
    assert stats["min"] <= stats["mean"] <= stats["max"]


def check_written(name: str, results: dict[str, Any], markdown: str, out: Path) -> None:
    paths = write_results(name, results, markdown, out)
    assert [p.suffix for p in paths] == [".json", ".md"]
    assert all(p.name.startswith(f"{name}-") for p in paths)
    assert json.loads(paths[0].read_text())["benchmark"] == results["benchmark"]
    assert (out / f"{name}-latest.md").read_text() == markdown


def test_percentiles() -> None:
    stats = percentiles([4.0, 1.0, 3.0, 2.0, 5.0])
    assert stats == {
        "count": 5,
        "mean": 3.0,
        "min": 1.0,
        "p50": 3.0,
        "p95": pytest.approx(4.8),
        "p99": pytest.approx(4.96),
        "max": 5.0,
    }
    assert percentiles([])["p99"] is None


def test_ledger_counts_a_change_once_by_the_version_that_covers_it() -> None:
    ledger = continuous.Ledger(2)
    ledger.record(continuous.Change(-1, 0, 0, 100, 10), initial=True)
    for seq, (version, mtime, size) in enumerate([(1, 200, 11), (2, 300, 12), (3, 400, 13)]):
        ledger.record(continuous.Change(seq, 0, version, mtime, size))
    snap = continuous.SnapshotSeen("a" * 64, 0.0, 1.0, 1.0, 0.1, 1, 0)
    # The node's size does not match what was written at that mtime: not our version.
    assert ledger.capture(0, 300, 99, snap) == 0
    # Version 2 is in the snapshot: versions 1 (superseded) and 2 (exact) are committed.
    assert ledger.capture(0, 300, 12, snap) == 2
    assert [(c.version, c.exact, c.snapshot) for c in ledger.changes[:2]] == [
        (1, False, "a" * 64),
        (2, True, "a" * 64),
    ]
    assert ledger.counts() == (3, 2)
    assert ledger.capture(0, 300, 12, snap) == 0  # counted once


def test_continuous(tmp_path: Path) -> None:
    settings = continuous.Settings(
        workdir=tmp_path / "work",
        seconds=3.0,
        rate=10.0,
        files=20,
        poll_interval=0.2,
        drain=40.0,
        start_timeout=90.0,
        backup_set={"quiet": "0.5s", "max_delay": "2s"},
    )
    results = continuous.run_continuous(settings, quiet_console(), show_progress=False)
    assert results["ok"] and not results["errors"]
    changes = results["changes"]
    assert changes["written"] == results["writer"]["written"] > 20
    assert changes["committed"] == changes["written"] > 0
    assert changes["committed_exact"] > 0
    assert changes["committed_exact"] + changes["committed_superseded"] == changes["committed"]
    assert_ordered(results["latency_seconds"], upper=30.0)
    assert results["latency_seconds"]["count"] == changes["committed"]
    snaps = results["snapshots"]
    assert snaps["during_run"] >= 1
    assert len(snaps["list"]) == snaps["during_run"] + 1
    assert 0 < snaps["first_after_agent_start"] < 90
    assert sum(s["captured"] for s in snaps["list"]) == changes["committed"]
    cfg = results["agent_config"]["backup_set"]
    assert (cfg["mode"], cfg["quiet_seconds"], cfg["max_delay_seconds"]) == ("continuous", 0.5, 2.0)
    assert results["server_knows_backup_set"]
    assert results["goal"]["met"] is True
    markdown = continuous.render_markdown(results)
    assert "Latency p95" in markdown and "quiet 0.5 s" in markdown
    quiet_console().print(continuous.render_table(results))
    check_written("continuous", results, markdown, tmp_path / "results")


@pytest.mark.parametrize("engine", ENGINES)
def test_heartbeats(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pg: str | None = None
    if engine == "postgresql":
        url: URL = request.getfixturevalue("postgres_server_url")
        pg = url.render_as_string(hide_password=False)
    settings = heartbeats.Settings(
        workdir=tmp_path / "work",
        agents=12,
        agents_per_tenant=4,
        interval=1.0,
        seconds=2.0,
        stress=2.0,
        uploads=2,
        upload_size=1 * MIB,
        engines=[engine],
        connections=8,
        postgres_url=pg,
    )
    results = heartbeats.run_heartbeats(settings, quiet_console(), show_progress=False)
    assert results["ok"], results["engines"]
    doc = results["engines"][engine]
    assert doc["error"] is None
    assert doc["enroll"]["agents"] == 12 and doc["enroll"]["tenants"] == 3
    assert doc["enroll"]["first_heartbeats"]["ok"] == 12
    assert list(doc["phases"]) == ["baseline", "steady", "stress"]
    assert doc["phases"]["baseline"]["uploads"] is None
    for name, planned in (("baseline", 24), ("steady", 24), ("stress", 48)):
        phase = doc["phases"][name]
        assert phase["planned"] == planned
        assert phase["ok"] == planned and phase["failed"] == 0 and phase["not_answered"] == 0
        assert_ordered(phase["latency_seconds"], upper=30.0)
        assert phase["latency_seconds"]["count"] == planned
        assert phase["send_lag_seconds"]["count"] == planned
        assert phase["server_cpu_seconds"] > 0
        assert 0 < phase["machine_busy_share"] <= 1.0
        assert phase["generator_cpu_share"] > 0
        if name == "baseline":
            continue
        assert phase["uploader_cpu_share"] > 0
        up = phase["uploads"]
        assert up["completed"] > 0 and up["failed"] == 0
        assert up["bytes"] == up["completed"] * MIB
        assert up["throughput_bytes_per_second"] > 0
    assert [(g["engine"], g["phase"]) for g in results["goals"]] == [
        (engine, "baseline"),
        (engine, "steady"),
        (engine, "stress"),
    ]
    assert all(isinstance(g["met"], bool) for g in results["goals"])
    # Stored packs were cleared from the scratch vaults as they landed.
    vaults = tmp_path / "work" / engine / "server" / "data" / "vaults"
    assert not [p for p in vaults.glob("*/data/*/*") if p.is_file()]
    markdown = heartbeats.render_markdown(results)
    assert f"| {engine} | steady |" in markdown
    assert "could not keep to its timetable" not in markdown  # 6 heartbeats/s: easy
    doc["phases"]["stress"]["send_lag_seconds"]["p99"] = 2.0
    assert "**The generator could not keep to its timetable** (lag p99 2,000" in (
        heartbeats.render_markdown(results)
    )
    doc["phases"]["stress"]["send_lag_seconds"]["p99"] = 0.001
    quiet_console().print(heartbeats.render_table(results))
    check_written("heartbeats", results, markdown, tmp_path / "results")


def test_gateway_throughput(tmp_path: Path) -> None:
    settings = gateway_throughput.Settings(
        workdir=tmp_path / "work", size=4 * MIB, repeat=1, drop_caches=False
    )
    results = gateway_throughput.run_gateway_throughput(settings, quiet_console())
    assert [r["mode"] for r in results["runs"]] == ["local", "gateway"]
    for mode in gateway_throughput.MODES:
        best = results["best"][mode]
        assert best["seconds"] > 0 and best["throughput"] > 0
        assert 0 < best["engine_seconds"] < best["seconds"]
        assert best["client_cpu_seconds"] > 0 and best["max_rss_bytes"] > 0
        assert best["repo"]["bytes"] > 0 and best["bytes_added"] > 0
    assert results["best"]["gateway"]["server_cpu_seconds"] > 0
    # The same data makes the same amount of new content on both paths.
    local, gw = results["best"]["local"], results["best"]["gateway"]
    assert abs(local["bytes_added"] - gw["bytes_added"]) < 0.05 * local["bytes_added"]
    assert 0 < results["ratio"] < 2
    assert results["goal"]["met"] == (results["ratio"] >= 0.8)
    markdown = gateway_throughput.render_markdown(results)
    assert "Gateway / local throughput" in markdown
    quiet_console().print(gateway_throughput.render_table(results))
    check_written("gateway-throughput", results, markdown, tmp_path / "results")
