"""Agent monitors: missed heartbeats and backups overdue against the RPO."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from tests.soc.monitors.conftest import T0, Fleet
from vaultwatch.catalog import Agent, BackupSet, JobState
from vaultwatch.catalog.agents import record_heartbeat
from vaultwatch.catalog.soc_models import Severity
from vaultwatch.soc import alarms
from vaultwatch.soc.monitors import MonitorSettings
from vaultwatch.soc.monitors.agents import (
    RpoState,
    heartbeat_identifier,
    overdue_identifier,
    rpo_state,
    run_agent_monitors,
)

CONFIG = MonitorSettings()  # heartbeats missed after 180 s (three of the agent's 60 s)


def _run(fleet: Fleet, at: object) -> int:
    with fleet.catalog.session() as session:
        return run_agent_monitors(session, at, CONFIG)  # type: ignore[arg-type]


def _set_id(fleet: Fleet) -> object:
    with fleet.catalog.session() as session:
        bs = session.query(BackupSet).filter_by(agent_id=fleet.agent_id).one()
        return bs.id


def test_missed_heartbeats_raise_once_and_clear_when_they_resume(fleet: Fleet) -> None:
    fleet.heartbeat(T0)
    fleet.job(JobState.SUCCEEDED, T0, snapshot=True)
    identifier = heartbeat_identifier(fleet.agent_id)
    _run(fleet, T0 + timedelta(seconds=170))
    assert fleet.alarm(identifier) is None
    _run(fleet, T0 + timedelta(seconds=200))
    alarm = fleet.alarm(identifier)
    assert alarm is not None and alarm.cleared_at is None
    assert alarm.severity == Severity.MAJOR and alarm.alert_group == "agent.heartbeat"
    assert alarm.entity == f"agent:{fleet.agent_id}"
    assert alarm.tenant_id == fleet.tenant_id and alarm.agent_id == fleet.agent_id
    assert "srv1" in alarm.summary and "3m 20s" in alarm.summary
    assert _run(fleet, T0 + timedelta(seconds=260)) >= 1
    again = fleet.alarm(identifier)
    assert again is not None and again.tally == 1  # judged on the same heartbeat: no new count
    fleet.heartbeat(T0 + timedelta(seconds=300))
    _run(fleet, T0 + timedelta(seconds=301))
    cleared = fleet.alarm(identifier)
    assert cleared is not None and cleared.cleared_at is not None
    assert _run(fleet, T0 + timedelta(seconds=302)) == 0  # nothing left to say


def test_an_agent_never_heard_from_is_judged_from_its_enrollment(fleet: Fleet) -> None:
    with fleet.catalog.session() as session:
        enrolled = fleet.agent(session).enrolled_at
    _run(fleet, enrolled + timedelta(seconds=100))
    assert fleet.alarm(heartbeat_identifier(fleet.agent_id)) is None
    _run(fleet, enrolled + timedelta(seconds=181))
    alarm = fleet.alarm(heartbeat_identifier(fleet.agent_id))
    assert alarm is not None and "never sent a heartbeat" in alarm.summary


def test_retired_agents_are_not_expected_and_their_alarms_clear(fleet: Fleet) -> None:
    fleet.heartbeat(T0)
    fleet.job(JobState.SUCCEEDED, T0, snapshot=True)
    _run(fleet, T0 + timedelta(hours=3))
    assert fleet.alarm(heartbeat_identifier(fleet.agent_id)) is not None
    assert fleet.alarm(overdue_identifier(_set_id(fleet))) is not None  # type: ignore[arg-type]
    with fleet.catalog.session() as session:
        session.execute(update(Agent).values(retired_at=T0 + timedelta(hours=3)))
    _run(fleet, T0 + timedelta(hours=4))
    assert all(a.cleared_at is not None for a in fleet.alarms())


def test_rpo_states() -> None:
    assert rpo_state(T0, 3600, T0 + timedelta(minutes=30)) == RpoState.OK
    assert rpo_state(T0, 3600, T0 + timedelta(minutes=31)) == RpoState.AT_RISK
    assert rpo_state(T0, 3600, T0 + timedelta(minutes=61)) == RpoState.OVERDUE


def test_a_backup_past_its_rpo_raises_overdue_until_a_new_snapshot(fleet: Fleet) -> None:
    fleet.job(JobState.SUCCEEDED, T0, snapshot=True)
    set_id = _set_id(fleet)
    identifier = overdue_identifier(set_id)  # type: ignore[arg-type]
    for minutes in (31, 59):  # at risk is a status, not an alarm
        fleet.heartbeat(T0 + timedelta(minutes=minutes))
        _run(fleet, T0 + timedelta(minutes=minutes))
        assert fleet.alarm(identifier) is None
    fleet.heartbeat(T0 + timedelta(minutes=61))
    _run(fleet, T0 + timedelta(minutes=61))
    _run(fleet, T0 + timedelta(minutes=62))
    alarm = fleet.alarm(identifier)
    assert alarm is not None and alarm.cleared_at is None and alarm.tally == 1
    assert alarm.alert_group == "backup.overdue" and alarm.alert_key == "docs"
    assert alarm.severity == Severity.MAJOR and "RPO 1h 0m" in alarm.summary
    assert alarm.attributes["backup_set_id"] == str(set_id)
    fleet.job(JobState.SUCCEEDED, T0 + timedelta(minutes=63), snapshot=True)
    _run(fleet, T0 + timedelta(minutes=63))
    cleared = fleet.alarm(identifier)
    assert cleared is not None and cleared.cleared_at is not None


def test_a_job_that_found_nothing_changed_keeps_the_set_within_its_rpo(fleet: Fleet) -> None:
    fleet.job(JobState.SUCCEEDED, T0, snapshot=True)
    identifier = overdue_identifier(_set_id(fleet))  # type: ignore[arg-type]
    # No new snapshot for two hours (RPO 1 h), but the agent checked: nothing had changed.
    fleet.job(JobState.UNCHANGED, T0 + timedelta(minutes=50))
    fleet.job(JobState.UNCHANGED, T0 + timedelta(minutes=100))
    fleet.heartbeat(T0 + timedelta(minutes=120))
    _run(fleet, T0 + timedelta(minutes=120))
    assert fleet.alarm(identifier) is None
    _run(fleet, T0 + timedelta(minutes=161))  # an hour after the last check: overdue
    alarm = fleet.alarm(identifier)
    assert alarm is not None and alarm.cleared_at is None


def test_an_occurrence_cleared_by_hand_stays_cleared_until_a_new_one(fleet: Fleet) -> None:
    fleet.heartbeat(T0)
    identifier = heartbeat_identifier(fleet.agent_id)
    _run(fleet, T0 + timedelta(minutes=5))
    alarm = fleet.alarm(identifier)
    assert alarm is not None
    with fleet.catalog.session() as session:
        alarms.clear(session, alarm.id, "user:operator", "known outage")
    _run(fleet, T0 + timedelta(minutes=6))
    still = fleet.alarm(identifier)
    assert still is not None and still.cleared_at is not None and still.tally == 1
    fleet.heartbeat(T0 + timedelta(minutes=7))  # back, then silent again: a new occurrence
    _run(fleet, T0 + timedelta(minutes=7))
    _run(fleet, T0 + timedelta(minutes=11))
    reopened = fleet.alarm(identifier)
    assert reopened is not None and reopened.cleared_at is None and reopened.tally == 2


def test_disabled_sets_are_not_expected(fleet: Fleet) -> None:
    fleet.heartbeat(T0 + timedelta(hours=2))
    with fleet.catalog.session() as session:
        session.execute(update(BackupSet).values(enabled=False))
    _run(fleet, T0 + timedelta(hours=2))
    assert fleet.alarms("backup.") == []


def test_a_gateway_the_agent_cannot_reach_raises_a_path_alarm_until_it_can(fleet: Fleet) -> None:
    def report(gateways: dict[str, bool], at: object) -> None:
        with fleet.catalog.session() as session:
            record_heartbeat(
                session,
                fleet.agent_id,
                version="1.0",
                host_facts={"gateways": gateways},
                free_disk_bytes=10**9,
                gateway_reachable=any(gateways.values()),
                now=at,  # type: ignore[arg-type]
            )

    gw_a, gw_b = "https://gw-a.example:8443", "https://gw-b.example:8443"
    identifier = f"agent:{fleet.agent_id}|agent.gateway.unreachable|{gw_b}"
    report({gw_a: True, gw_b: False}, T0)
    _run(fleet, T0 + timedelta(seconds=1))
    _run(fleet, T0 + timedelta(seconds=2))
    alarm = fleet.alarm(identifier)
    assert alarm is not None and alarm.cleared_at is None and alarm.tally == 1
    assert alarm.alarm_class == "network" and alarm.alert_key == gw_b
    assert alarm.severity == Severity.MINOR and "cannot reach gateway" in alarm.summary
    assert fleet.alarm(f"agent:{fleet.agent_id}|agent.gateway.unreachable|{gw_a}") is None
    report({gw_a: True, gw_b: True}, T0 + timedelta(seconds=3))
    _run(fleet, T0 + timedelta(seconds=4))
    cleared = fleet.alarm(identifier)
    assert cleared is not None and cleared.cleared_at is not None


def test_a_deleted_tenants_agents_stop_alarming_and_return_when_undeleted(fleet: Fleet) -> None:
    from vaultwatch.catalog.tenant_lifecycle import delete_tenant, undelete_tenant

    fleet.heartbeat(T0)
    _run(fleet, T0 + timedelta(hours=3))
    identifier = heartbeat_identifier(fleet.agent_id)
    assert fleet.alarm(identifier) is not None
    with fleet.catalog.session() as session:
        delete_tenant(session, fleet.tenant_id, actor="system:test", now=T0 + timedelta(hours=3))
    _run(fleet, T0 + timedelta(hours=4))
    cleared = fleet.alarm(identifier)
    assert cleared is not None and cleared.cleared_at is not None
    with fleet.catalog.session() as session:
        undelete_tenant(session, fleet.tenant_id, actor="system:test")
    _run(fleet, T0 + timedelta(hours=5))
    again = fleet.alarm(identifier)
    assert again is not None and again.cleared_at is None  # silent again, and expected again
