"""Node health history for the console's charts, and the probe list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import NodeHealthSample, Probe, ServerNode
from vaultwatch.soc.infrastructure import list_probes, lowest_free_disk, node_history

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _metrics(data: float | None, spool: float, db: float | None, store_ok: bool) -> dict[str, Any]:
    disks: list[dict[str, Any]] = [{"role": "spool", "free_percent": spool}]
    disks.append(
        {"role": "data", "free_percent": data}
        if data is not None
        else {"role": "data", "error": "gone"}
    )
    return {
        "disks": disks,
        "database": {"ok": db is not None, "latency_ms": db},
        "store": {
            "ok": store_ok,
            "latency_ms": 12.5 if store_ok else None,
            "error": "" if store_ok else "timeout",
        },
    }


def test_history_gives_one_series_per_metric_oldest_first_within_the_window(
    catalog: Catalog,
) -> None:
    with catalog.session() as session:
        node = ServerNode(name="gw1", site="fra", roles=["gateway"], health={})
        other = ServerNode(name="gw2", site="fra", roles=["gateway"], health={})
        session.add_all([node, other])
        session.flush()
        samples = [
            (NOW - timedelta(hours=7), _metrics(50.0, 60.0, 1.0, True)),  # outside 6 h
            (NOW - timedelta(hours=2), _metrics(40.0, 30.0, 2.0, True)),
            (NOW - timedelta(hours=1), _metrics(None, 35.0, None, False)),
            (NOW - timedelta(minutes=1), _metrics(20.0, 25.0, 4.0, True)),
        ]
        for at, metrics in samples:
            session.add(NodeHealthSample(node_id=node.id, at=at, metrics=metrics))
        session.add(
            NodeHealthSample(node_id=other.id, at=NOW, metrics=_metrics(1.0, 1.0, 99.0, True))
        )
        node_id = node.id
    with catalog.session() as session:
        history = node_history(session, node_id, window=timedelta(hours=6), now=NOW)
    assert history.samples == 3
    assert [v for _, v in history.free_disk_percent] == [30.0, 35.0, 20.0]  # the fullest volume
    assert [v for _, v in history.db_latency_ms] == [2.0, 4.0]  # a failed round trip is a gap
    assert [v for _, v in history.store_latency_ms] == [12.5, 12.5]
    times = [at for at, _ in history.free_disk_percent]
    assert times == sorted(times) and times[0] >= NOW - timedelta(hours=6)
    assert history.since == NOW - timedelta(hours=6) and history.until == NOW


def test_a_window_out_of_range_is_refused(catalog: Catalog) -> None:
    import uuid

    with catalog.session() as session, pytest.raises(ValidationError, match="window"):
        node_history(session, uuid.uuid4(), window=timedelta(days=30), now=NOW)


def test_lowest_free_disk_ignores_volumes_without_a_number() -> None:
    assert (
        lowest_free_disk({"disks": [{"error": "x"}, {"free_percent": 7.5}, {"free_percent": True}]})
        == 7.5
    )
    assert lowest_free_disk({}) is None


def test_probes_are_listed_failing_first(catalog: Catalog) -> None:
    with catalog.session() as session:
        session.add_all(
            [
                Probe(
                    name="a-ok",
                    kind="http",
                    target="https://gw1:8443/healthz",
                    entity="gateway:gw1",
                    last_ok=True,
                    last_latency_ms=3.0,
                ),
                Probe(name="b-never", kind="tcp", target="gw2:8443", entity="gateway:gw2"),
                Probe(
                    name="c-down",
                    kind="tcp",
                    target="gw3:8443",
                    entity="gateway:gw3",
                    last_ok=False,
                    last_error="connection refused",
                ),
            ]
        )
    with catalog.session() as session:
        probes = list_probes(session)
    assert [p.name for p in probes] == ["c-down", "a-ok", "b-never"]
    assert probes[0].last_error == "connection refused" and probes[1].last_latency_ms == 3.0
