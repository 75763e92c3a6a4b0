"""The reference manifest format: what parses, what is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.manifest import Manifest, Received, manifest_name

SID = "ab" * 32


def _manifest() -> Manifest:
    return Manifest(
        snapshot=SID,
        time=datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        hostname="db1",
        paths=["/srv"],
        tags=["set:db"],
        packs=["02" * 32, "01" * 32],
        backup_set="db",
        parent="cd" * 32,
        received=Received("agent-1", "db1", datetime(2026, 12, 1, 10, 0, 2, tzinfo=UTC)),
    )


def test_round_trip_with_sorted_packs() -> None:
    m = _manifest()
    data = m.to_json()
    back = Manifest.from_json(data, manifest_name(SID))
    assert back == Manifest(**{**m.__dict__, "packs": sorted(m.packs)})
    assert json.loads(data)["packs"] == sorted(m.packs)
    assert m.to_json() == back.to_json()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"version": 2}, "newer than this program"),
        ({"time": "2026-12-01T10:00:00"}, "UTC offset"),
        ({"packs": "01" * 32}, "packs must be a list"),
        ({"snapshot": "XY"}, "snapshot must be"),
        ({"paths": ["x" * 5000]}, "at most 4096"),
        ({"received": {"agent": "a"}}, "hostname"),
    ],
)
def test_malformed_manifests_are_refused(change: dict[str, object], why: str) -> None:
    doc = {**_manifest().to_dict(), **change}
    with pytest.raises(IntegrityError, match=why):
        Manifest.from_json(json.dumps(doc).encode())


def test_a_manifest_stored_under_another_snapshot_is_refused() -> None:
    with pytest.raises(IntegrityError, match="not its own"):
        Manifest.from_json(_manifest().to_json(), manifest_name("ef" * 32))
