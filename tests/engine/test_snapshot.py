"""A snapshot's totals, read from the summary its backup wrote."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vaultwatch.engine.snapshot import Snapshot


def _with(summary: dict[str, Any]) -> Snapshot:
    return Snapshot(datetime.now(UTC), b"\x00" * 32, ["/data"], "host", summary=summary)


def test_totals_add_up_new_changed_and_unmodified_files() -> None:
    summary = {"files_new": 3, "files_changed": 2, "files_unmodified": 5, "total_bytes": 700}
    assert _with(summary).totals() == (10, 700)


@pytest.mark.parametrize(
    "summary",
    [{}, {"files_new": 1, "files_changed": 0, "files_unmodified": 0}, {"files_new": "x"}],
    ids=["none", "no-bytes", "not-a-number"],
)
def test_a_summary_without_usable_totals_has_none(summary: dict[str, Any]) -> None:
    assert _with(summary).totals() is None
