"""The web console benchmark at a tiny scale: it runs end to end and its figures make sense.

A real server process, Debian's Chromium and a storm sender in its own process, as in the
full benchmark, for seconds instead of minutes: the result has every section, latencies are
positive and ordered, the storm was sent at its rate and the page's counters caught up.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench import web_console
from vaultwatch.web.console import PAGE_SIZE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def ordered(stats: dict[str, Any], upper: float) -> None:
    values = [stats[k] for k in ("min", "p50", "p95", "p99", "max")]
    assert all(v is not None for v in values), stats
    assert values[0] > 0 and values == sorted(values) and values[-1] < upper, stats


def test_the_benchmark_measures_the_console_the_browser_and_a_storm(tmp_path: Path) -> None:
    if not os.path.exists(web_console.CHROMIUM):
        message = "Chromium is not installed (scripts/test-services.sh installs Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    cfg = web_console.Settings(alarms=600, requests=5, live=3, rate=40, seconds=3.0, batch=200)
    out = tmp_path / "results"
    console = Console(file=io.StringIO(), width=160)
    results = web_console.run(cfg, ["sqlite"], tmp_path / "work", out, console)

    result = results["engines"]["sqlite"]
    assert set(result) == {"catalog", "fill_seconds", "first_page", "live", "storm"}
    page = result["first_page"]
    assert page["count"] == 5 and page["rows"] == 200 and page["bytes"] > 10_000
    ordered(page, upper=10)
    live = result["live"]
    assert live["count"] == 3 and abs(live["clock_offset_s"]) < 1
    # The feed polls every second: a row cannot be on screen before its POST, nor take ages.
    ordered(live, upper=10)
    storm = result["storm"]
    assert storm["failed_batches"] == 0
    assert storm["sent"] >= 0.9 * cfg.rate * cfg.seconds
    assert storm["key_press"]["count"] >= 10 and storm["script_round_trip"]["count"] >= 10
    ordered(storm["key_press"], upper=10)
    ordered(storm["script_round_trip"], upper=10)
    assert storm["counts_match"] and storm["page_counts"] == storm["api_counts"]
    assert sum(storm["api_counts"].values()) == cfg.alarms + cfg.live + storm["sent"]
    # The page keeps one page of rows however many alarms the storm adds.
    assert storm["rows_before"] == storm["rows_after"] == PAGE_SIZE

    goals = results["goals"]["sqlite"]
    assert set(goals) == {
        "first_page_p95",
        "live_p95",
        "storm_input_p95",
        "storm_counts_match",
        "storm_rate_sent",
    }
    assert goals["storm_counts_match"] and goals["storm_rate_sent"]
    written = sorted(p.name for p in out.iterdir())
    assert "web-console-latest.md" in written
    doc = json.loads(next(out.glob("web-console-2*.json")).read_text())
    assert doc["benchmark"] == "web-console" and doc["settings"]["alarms"] == cfg.alarms
    markdown = (out / "web-console-latest.md").read_text()
    assert "| sqlite |" in markdown and "goal 200 ms" in markdown
