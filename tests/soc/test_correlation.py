"""Correlation: roots suppress the alarms below them, symptoms are counted, released, moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.soc_models import Alarm, EventType, Severity
from vaultwatch.soc import alarms, correlation, topology
from vaultwatch.soc.correlation import correlate, symptom_count, symptoms_of
from vaultwatch.soc.events import Event
from vaultwatch.soc.pipeline import process_events

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _heartbeat(agent: str, **changes: object) -> Event:
    fields: dict[str, object] = {
        "node": f"host-{agent}",
        "alert_group": "agent.heartbeat",
        "summary": f"agent {agent} missed its heartbeats",
        "severity": Severity.MAJOR,
        "entity": f"agent:{agent}",
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def _down(kind: str, name: str, **changes: object) -> Event:
    fields: dict[str, object] = {
        "node": name,
        "alert_group": f"{kind}.down",
        "summary": f"{kind} {name} is down",
        "severity": Severity.CRITICAL,
        "entity": f"{kind}:{name}",
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def _topology(catalog: Catalog) -> None:
    with catalog.session() as session:
        for agent in ("a1", "a2", "a3"):
            topology.link(session, f"agent:{agent}", "gateway:gw1")
        topology.link(session, "agent:b1", "gateway:gw2")
        topology.link(session, "gateway:gw1", "site:dc1")
        topology.link(session, "gateway:gw2", "site:dc1")


def _suppressed(catalog: Catalog) -> dict[str, int | None]:
    with catalog.session() as session:
        rows = session.execute(select(Alarm.entity, Alarm.alert_group, Alarm.suppressed_by))
        return {f"{entity}|{group}": by for entity, group, by in rows}


def _raise(catalog: Catalog, events: list[Event], at: datetime) -> list[int]:
    with catalog.session() as session:
        return [r.id for r in process_events(session, events, now=at)]


def test_a_root_suppresses_and_counts_its_symptoms_and_new_ones_at_once(catalog: Catalog) -> None:
    _topology(catalog)
    _raise(catalog, [_heartbeat("a1"), _heartbeat("a2"), _heartbeat("b1")], T0)
    (root,) = _raise(catalog, [_down("gateway", "gw1")], T0 + timedelta(minutes=1))
    state = _suppressed(catalog)
    assert state["agent:a1|agent.heartbeat"] == root
    assert state["agent:a2|agent.heartbeat"] == root
    assert state["agent:b1|agent.heartbeat"] is None  # behind another gateway
    assert state["gateway:gw1|gateway.down"] is None
    (late,) = _raise(catalog, [_heartbeat("a3")], T0 + timedelta(minutes=2))
    with catalog.session() as session:
        assert session.get(Alarm, late).suppressed_by == root  # type: ignore[union-attr]
        assert symptom_count(session, root) == 3
        assert len(symptoms_of(session, root)) == 3
        journal = alarms.journal_of(session, late)
    assert [(e.action, e.actor) for e in journal] == [("suppress", "system:correlation")]
    assert journal[0].details["root"] == root


def test_when_the_root_clears_its_symptoms_are_released(catalog: Catalog) -> None:
    _topology(catalog)
    (root,) = _raise(catalog, [_down("gateway", "gw1")], T0)
    ids = _raise(catalog, [_heartbeat("a1"), _heartbeat("a2")], T0 + timedelta(minutes=1))
    with catalog.session() as session:
        assert symptom_count(session, root) == 2
    _raise(
        catalog,
        [_down("gateway", "gw1", type=EventType.RESOLUTION, summary="gw1 is back")],
        T0 + timedelta(minutes=5),
    )
    with catalog.session() as session:
        assert symptom_count(session, root) == 0
        for alarm_id in ids:
            assert session.get(Alarm, alarm_id).suppressed_by is None  # type: ignore[union-attr]
            actions = [e.action for e in alarms.journal_of(session, alarm_id)]
            assert actions == ["suppress", "unsuppress"]


def test_the_highest_open_root_wins_and_symptoms_move_when_it_clears(catalog: Catalog) -> None:
    _topology(catalog)
    (gateway_root,) = _raise(catalog, [_down("gateway", "gw1")], T0)
    (agent,) = _raise(catalog, [_heartbeat("a1")], T0 + timedelta(seconds=10))
    (site_root,) = _raise(catalog, [_down("site", "dc1")], T0 + timedelta(seconds=20))
    with catalog.session() as session:
        assert session.get(Alarm, agent).suppressed_by == site_root  # type: ignore[union-attr]
        assert session.get(Alarm, gateway_root).suppressed_by == site_root  # type: ignore[union-attr]
        assert symptom_count(session, site_root) == 2
        assert symptom_count(session, gateway_root) == 0
    _raise(
        catalog,
        [_down("site", "dc1", type=EventType.RESOLUTION, summary="dc1 is back")],
        T0 + timedelta(minutes=1),
    )
    with catalog.session() as session:
        assert session.get(Alarm, agent).suppressed_by == gateway_root  # type: ignore[union-attr]
        assert session.get(Alarm, gateway_root).suppressed_by is None  # type: ignore[union-attr]
        assert symptom_count(session, gateway_root) == 1


def test_only_major_down_alarms_are_roots_and_nothing_happens_without_one(
    catalog: Catalog,
) -> None:
    _topology(catalog)
    _raise(catalog, [_down("gateway", "gw1", severity=Severity.MINOR)], T0)
    _raise(
        catalog,
        [_heartbeat("a1"), _down("gateway", "gw1", alert_group="gateway.cert", severity=5)],
        T0 + timedelta(seconds=5),
    )
    assert set(_suppressed(catalog).values()) == {None}
    with catalog.session() as session:
        raised = alarms.raise_events(session, [_heartbeat("a2")], now=T0)
        assert correlate(session, raised, T0) == {}
    # the minor alarm becoming critical makes it a root: its symptoms follow at once
    (root,) = _raise(catalog, [_down("gateway", "gw1")], T0 + timedelta(minutes=1))
    with catalog.session() as session:
        assert symptom_count(session, root) == 2


def _plan(catalog: Catalog, statement: object) -> str:
    """The plan either engine chooses for `statement`, as one text."""
    with catalog.engine.connect() as connection:
        sql = str(
            statement.compile(  # type: ignore[attr-defined]
                connection.engine, compile_kwargs={"literal_binds": True}
            )
        )
        if catalog.dialect == "postgresql":
            rows = connection.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF) " + sql).all()
            return "\n".join(row[0] for row in rows)
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
        return "\n".join(str(row[-1]) for row in rows)


def test_every_batch_check_reads_only_the_roots_and_symptoms_indexes(catalog: Catalog) -> None:
    # A storm just stored: 3,000 open alarms, none a root or a symptom, and statistics
    # that have not seen them. The per-batch check must not read those alarms.
    storm = [
        Event(
            node=f"host-{i}",
            alert_group="agent.heartbeat",
            summary=f"agent {i} missed its heartbeats",
            severity=Severity.CRITICAL,
        )
        for i in range(3000)
    ]
    for start in range(0, len(storm), 1000):
        _raise(catalog, storm[start : start + 1000], T0)
    plan = _plan(catalog, correlation.state_query())
    assert "ix_alarms_suppressed" in plan, plan
    if catalog.dialect == "postgresql":
        assert "ix_alarms_open_roots" in plan, plan
        assert "Seq Scan" not in plan and "Rows Removed" not in plan, plan
    else:
        assert "SCAN alarms" not in plan, plan
    with catalog.session() as session:
        assert correlation._state(session) == (False, False)
    # One root and its symptom: both halves now find them.
    _topology(catalog)
    _raise(catalog, [_down("gateway", "gw1"), _heartbeat("a1")], T0 + timedelta(minutes=1))
    with catalog.session() as session:
        assert correlation._state(session) == (True, True)
