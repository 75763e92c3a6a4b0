"""The chunk-size sweep on a tiny data set: complete results, and figures that make sense.

The default chunk sizes are chosen from this sweep, so its figures must move the way
content-defined chunking says they do: smaller chunks mean more blobs and never a
larger cost for the same small change.
"""

from __future__ import annotations

from typing import Any

import pytest
from bench.chunk_sizes import (
    ENTRY_BYTES,
    PROJECTED_BYTES,
    chunker_for,
    parse_sizes,
    recommend,
    render_markdown,
    sweep,
)
from bench.datagen import KIB, MIB

SMALL, LARGE = 16 * KIB, 256 * KIB


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("sweep")
    return sweep(work, [SMALL, LARGE], size=3 * MIB, seed=5, repeat=2, drop_caches=False)


def test_rule_and_size_parsing() -> None:
    p = chunker_for(64 * KIB)
    assert (p.min_size, p.avg_size, p.max_size) == (16 * KIB, 64 * KIB, 512 * KIB)
    assert parse_sizes("64K,16K,64K") == [16 * KIB, 64 * KIB]
    with pytest.raises(ValueError):
        parse_sizes("4M")  # max would be 32 MiB, beyond pyfastcdc's limit


def test_result_structure(results: dict[str, Any]) -> None:
    assert [r["chunker"]["avg_size"] for r in results["runs"]] == [SMALL, LARGE]
    assert results["mutation"]["changed_bytes"] > 0
    assert results["dataset"]["total_bytes"] == 3 * MIB
    assert not results["page_cache_dropped"]
    for run in results["runs"]:
        assert set(run["steps"]) == set(run["backups"]) == {"first-1", "first-2", "change"}
        for key, step in run["steps"].items():
            assert step["ok"] and step["seconds"] > 0 and step["max_rss_bytes"] > 0
            assert not run["backups"][key]["errors"]
        m = run["metrics"]
        assert m["first_backup_seconds"] == min(m["first_backup_runs"])
        assert m["first_backup_throughput"] == 3 * MIB / m["first_backup_seconds"]
        assert m["repo_bytes_first"] > 0 and m["change_growth_bytes"] > 0
        assert m["blobs"] == run["index"]["after_first"]["blobs"] > 0
        assert m["index_bytes_1tb"] == pytest.approx(
            m["blobs"] / (3 * MIB) * PROJECTED_BYTES * ENTRY_BYTES
        )
        # Nothing in the data set is lost: the first backup stores each unique byte once.
        assert 1.0 < m["dedup_ratio"] < 2.0
        assert m["min_size"] <= m["mean_chunk_bytes"] <= m["max_size"]
    rec = results["recommendation"]
    assert rec["default"] == {"min_size": 8 * KIB, "avg_size": 32 * KIB, "max_size": 256 * KIB}
    assert rec["default_supported"] is None  # 32 KiB was not measured here
    assert "# Chunk-size sweep" in render_markdown(results)


def test_smaller_chunks_more_blobs_and_no_larger_growth(results: dict[str, Any]) -> None:
    small, large = (r["metrics"] for r in results["runs"])
    assert small["blobs"] > large["blobs"]
    assert small["mean_chunk_bytes"] < large["mean_chunk_bytes"]
    assert small["index_bytes_1tb"] > large["index_bytes_1tb"]
    assert small["change_bytes_added"] <= large["change_bytes_added"]
    assert small["change_growth_bytes"] <= large["change_growth_bytes"]
    assert small["dedup_ratio"] >= large["dedup_ratio"]


def test_recommendation_picks_the_smallest_fast_size_that_fits() -> None:
    def m(avg: int, speed: float, index: float) -> dict[str, Any]:
        return {
            "avg_size": avg,
            "first_backup_throughput": speed,
            "first_backup_cpu_seconds": 100 / speed,
            "index_bytes_1tb": index,
            "change_bytes_added": avg,
        }

    rec = recommend(
        [
            m(16 * KIB, 100.0, 2.0 * 2**30),  # fast but its index is too large
            m(32 * KIB, 80.0, 0.9 * 2**30),  # fits but 20 % slower
            m(64 * KIB, 95.0, 0.5 * 2**30),  # the one
            m(128 * KIB, 96.0, 0.3 * 2**30),
        ]
    )
    assert rec["recommended"]["avg_size"] == 64 * KIB
    assert rec["qualifying"] == [64 * KIB, 128 * KIB]
    assert set(rec["rejected"]) == {str(16 * KIB), str(32 * KIB)}
    assert rec["within_speed_by_cpu"] == [16 * KIB, 64 * KIB, 128 * KIB]
    assert rec["default_supported"] is False  # the default (32 KiB) is the slow one here


def test_recommendation_when_no_size_fits_the_index() -> None:
    rec = recommend(
        [
            {
                "avg_size": a,
                "first_backup_throughput": v,
                "first_backup_cpu_seconds": 1.0,
                "index_bytes_1tb": i * 2**30,
            }
            for a, v, i in ((32 * KIB, 100.0, 2.0), (64 * KIB, 98.0, 1.6), (128 * KIB, 80.0, 1.4))
        ]
    )
    assert rec["recommended"] is None
    assert rec["speed_only"] == 32 * KIB
    assert rec["smallest_index"]["avg_size"] == 128 * KIB
    assert rec["default_supported"] is False
    assert "1 TB index" in rec["default_verdict"]
    assert "the smallest size within 10% of the fastest" in rec["default_verdict"]  # 32 KiB
    assert rec["within_speed_by_cpu"] == [32 * KIB, 64 * KIB, 128 * KIB]
