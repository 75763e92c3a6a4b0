"""The operations center's benchmarks at a tiny scale: each runs end to end and measures something.

Real server processes on loopback, as the full runs use, for seconds instead
of minutes; the assertions check the result structure and that every figure
is plausible, so a benchmark that silently measures nothing fails here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from bench import soc_events, soc_gateway_kill
from tests.bench.test_service_bench import assert_ordered

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _console() -> Console:
    return Console(file=io.StringIO(), width=160)


def test_event_ingestion_and_alarm_list(tmp_path: Path) -> None:
    cfg = soc_events.Settings(
        events=600, batch=200, clients=2, distinct=20, senders=8, each=3, alarms=1500, queries=3
    )
    results = soc_events.run(cfg, ["sqlite"], tmp_path / "work", tmp_path / "out", _console())
    sqlite = results["engines"]["sqlite"]
    assert sqlite["unique"]["events"] == 600 and sqlite["unique"]["failed_requests"] == 0
    assert sqlite["unique"]["events_per_second"] > 0
    # Both clients' connections, as the server's two workers held them.
    split = sqlite["unique"]["connections_per_worker"]
    assert len(split) == 2 and sum(split) == 2, split
    assert sqlite["duplicates"]["tallies_match"] is True
    assert sqlite["one_alarm"]["sent"] == 24 and sqlite["one_alarm"]["lost"] == 0
    assert sqlite["one_alarm"]["statuses"] == {"202": 24}
    assert sqlite["active_alarms"] >= 1500
    for view, stats in sqlite["alarm_list"].items():
        assert_ordered(stats, upper=30.0)
        assert stats["rows"] >= 0, view
    assert sqlite["alarm_list"]["worst first"]["rows"] == 100
    assert set(results["goals"]["sqlite"]) == {
        "ingestion",
        "no_count_lost",
        "tallies_match",
        "list_p95",
    }
    written = sorted((tmp_path / "out").glob("soc-events-*.json"))
    assert json.loads(written[0].read_text())["benchmark"] == "soc-events"


def test_gateway_kill_to_alarm(tmp_path: Path) -> None:
    result = soc_gateway_kill.run_engine("sqlite", tmp_path / "work", 2, _console())
    assert result["trials"] == 2 and len(result["samples"]) == 2
    assert_ordered(result["kill_to_alarm"], upper=60.0)
    assert_ordered(result["restart_to_clear"], upper=60.0)
