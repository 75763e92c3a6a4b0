"""The housekeeping duties as the duty runner calls them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tests.catalog.conftest import add_tenant, enroll
from vaultwatch.catalog import Catalog, Heartbeat
from vaultwatch.catalog.agents import HEARTBEATS_KEPT, record_heartbeat
from vaultwatch.soc.duties import DutyContext
from vaultwatch.soc.housekeeping import housekeeping_duties

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_the_heartbeat_duty_keeps_a_week(catalog: Catalog, key: bytes) -> None:
    agent = enroll(catalog, add_tenant(catalog, "Acme"), key).agent
    with catalog.session() as session:
        for age in (timedelta(days=30), HEARTBEATS_KEPT + timedelta(minutes=1), timedelta(days=6)):
            record_heartbeat(
                session,
                agent.id,
                version="1.0",
                host_facts={},
                free_disk_bytes=None,
                gateway_reachable=True,
                now=NOW - age,
            )
    (duty,) = [d for d in housekeeping_duties() if d.name == "heartbeats.housekeeping"]
    assert duty.leased
    context = DutyContext(catalog, "node1", "node1:1", "soc-duties", epoch=None, clock_now=NOW)
    assert duty.run(context) == 2
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Heartbeat)) == 1


def test_the_alarm_statistics_are_refreshed_after_a_storm_on_postgresql(catalog: Catalog) -> None:
    from sqlalchemy import text

    from vaultwatch.catalog.soc_models import Severity
    from vaultwatch.soc.alarms import raise_events
    from vaultwatch.soc.events import Event

    (duty,) = [d for d in housekeeping_duties() if d.name == "alarms.statistics"]
    context = DutyContext(catalog, "node1", "node1:1", "soc-duties", epoch=None, clock_now=NOW)
    first = duty.run(context)
    with catalog.session() as session:
        raise_events(
            session,
            [Event(node=f"n{i}", alert_group="node.disk", summary="full", severity=Severity.MAJOR)
             for i in range(1500)],
        )  # fmt: skip
    second = duty.run(context)
    third = duty.run(context)
    if catalog.dialect != "postgresql":
        assert first is None and second is None  # nothing to do on SQLite
        return
    assert first == 0 and second == 1500 and third == 1500
    with catalog.engine.connect() as connection:
        analyzed = connection.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = 'alarms'")
        ).scalar_one()
    assert analyzed == 1500  # the planner now knows how many alarms there are
