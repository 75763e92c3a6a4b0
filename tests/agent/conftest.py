"""Helpers for the agent's unit tests: a clock the test moves, and config documents."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vaultwatch.agent.config import AgentConfig, dump_config, parse_config


class FakeClock:
    """Monotonic and wall time that only move when the test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.mono = 1000.0
        self.wall = start or datetime(2025, 3, 10, 12, 0, 0).astimezone()

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def base_doc(tmp_path: Path, **sets: Any) -> dict[str, Any]:
    """A valid configuration document with the given backup sets."""
    return {
        "agent": {
            "id": "3f1c2d4e-0000-4000-8000-000000000001",
            "tenant": "acme",
            "state_dir": str(tmp_path / "state"),
            "passphrase_file": str(tmp_path / "passphrase"),
        },
        "server": {"urls": ["https://gw1.example:8443"], "credential": "vwa_secret-credential"},
        "backup_set": list(sets.values()),
    }


def config_from(doc: dict[str, Any], tmp_path: Path) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_bytes(dump_config(doc))
    return parse_config(doc, path)
