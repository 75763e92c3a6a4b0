"""Job monitors: stalls, failures, partial backups and restores from start to end."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from tests.soc.monitors.conftest import T0, Fleet
from vaultwatch.catalog import JobKind, JobState
from vaultwatch.catalog.soc_models import Severity
from vaultwatch.soc.monitors import MonitorSettings
from vaultwatch.soc.monitors.jobs import run_job_monitors

CONFIG = MonitorSettings()  # stalled after 15 min, major after an hour


def _run(fleet: Fleet, at: datetime) -> int:
    with fleet.catalog.session() as session:
        return run_job_monitors(session, at, CONFIG)


def _set_alarm(fleet: Fleet, group: str) -> object:
    with fleet.catalog.session() as session:
        from vaultwatch.catalog import BackupSet

        bs = session.query(BackupSet).filter_by(agent_id=fleet.agent_id).one()
    return fleet.alarm(f"backup_set:{bs.id}|{group}")


def test_a_running_job_without_progress_stalls_and_clears_when_it_moves(fleet: Fleet) -> None:
    job = fleet.job(JobState.RUNNING, T0, bytes_done=10)
    identifier = f"job:{job}|job.stalled"
    _run(fleet, T0 + timedelta(minutes=14))
    assert fleet.alarm(identifier) is None
    _run(fleet, T0 + timedelta(minutes=16))
    alarm = fleet.alarm(identifier)
    assert alarm is not None and alarm.severity == Severity.MINOR
    assert alarm.entity == f"agent:{fleet.agent_id}" and "16m" in alarm.summary
    _run(fleet, T0 + timedelta(minutes=61))
    worse = fleet.alarm(identifier)
    assert worse is not None and worse.severity == Severity.MAJOR
    assert worse.tally == 2  # becoming major is one more occurrence, repeats are none
    _run(fleet, T0 + timedelta(minutes=62))
    assert fleet.alarm(identifier).tally == 2  # type: ignore[union-attr]
    fleet.job(JobState.RUNNING, T0 + timedelta(minutes=62, seconds=30), job_id=job, bytes_done=20)
    _run(fleet, T0 + timedelta(minutes=63))
    cleared = fleet.alarm(identifier)
    assert cleared is not None and cleared.cleared_at is not None


def test_a_stalled_job_that_ends_clears_its_stall(fleet: Fleet) -> None:
    job = fleet.job(JobState.RUNNING, T0)
    _run(fleet, T0 + timedelta(minutes=20))
    fleet.job(JobState.SUCCEEDED, T0 + timedelta(minutes=21), job_id=job, snapshot=True)
    _run(fleet, T0 + timedelta(minutes=22))
    alarm = fleet.alarm(f"job:{job}|job.stalled")
    assert alarm is not None and alarm.cleared_at is not None


def test_failed_backups_count_once_each_and_a_snapshot_clears_them(fleet: Fleet) -> None:
    fleet.job(JobState.FAILED, T0, errors=["gateway unreachable"])
    _run(fleet, T0 + timedelta(minutes=1))
    _run(fleet, T0 + timedelta(minutes=2))
    alarm = _set_alarm(fleet, "job.failed")
    assert alarm is not None and alarm.cleared_at is None  # type: ignore[attr-defined]
    assert alarm.tally == 1 and alarm.severity == Severity.MAJOR  # type: ignore[attr-defined]
    assert alarm.alert_key == "docs" and "gateway unreachable" in alarm.summary  # type: ignore[attr-defined]
    fleet.job(JobState.FAILED, T0 + timedelta(minutes=3), errors=["disk full"])
    _run(fleet, T0 + timedelta(minutes=4))
    second = _set_alarm(fleet, "job.failed")
    assert second.tally == 2 and "disk full" in second.summary  # type: ignore[attr-defined]
    fleet.job(JobState.SUCCEEDED, T0 + timedelta(minutes=5), snapshot=True)
    _run(fleet, T0 + timedelta(minutes=6))
    assert _set_alarm(fleet, "job.failed").cleared_at is not None  # type: ignore[attr-defined]


def test_a_job_that_found_nothing_changed_clears_a_failure(fleet: Fleet) -> None:
    fleet.job(JobState.SUCCEEDED, T0, snapshot=True)
    fleet.job(JobState.FAILED, T0 + timedelta(minutes=1), errors=["disk full"])
    _run(fleet, T0 + timedelta(minutes=2))
    assert _set_alarm(fleet, "job.failed").cleared_at is None  # type: ignore[attr-defined]
    fleet.job(JobState.UNCHANGED, T0 + timedelta(minutes=3))  # the set is as backed up at T0
    _run(fleet, T0 + timedelta(minutes=4))
    assert _set_alarm(fleet, "job.failed").cleared_at is not None  # type: ignore[attr-defined]


def test_a_partial_backup_raises_minor_with_its_error_count(fleet: Fleet) -> None:
    fleet.job(
        JobState.PARTIAL,
        T0,
        errors=["/srv/docs/a: permission denied"],
        error_count=3,
        snapshot=True,
    )
    _run(fleet, T0 + timedelta(minutes=1))
    alarm = _set_alarm(fleet, "backup.partial")
    assert alarm is not None and alarm.severity == Severity.MINOR  # type: ignore[attr-defined]
    assert "3 files could not be read" in alarm.summary  # type: ignore[attr-defined]
    assert _set_alarm(fleet, "job.failed") is None
    fleet.job(JobState.SUCCEEDED, T0 + timedelta(minutes=2), snapshot=True)
    _run(fleet, T0 + timedelta(minutes=3))
    assert _set_alarm(fleet, "backup.partial").cleared_at is not None  # type: ignore[attr-defined]


def test_a_restore_is_followed_from_start_to_finish(fleet: Fleet) -> None:
    restore = fleet.job(JobState.RUNNING, T0, kind=JobKind.RESTORE, bytes_done=5)
    identifier = f"job:{restore}|restore"
    _run(fleet, T0 + timedelta(seconds=30))
    started = fleet.alarm(identifier)
    assert started is not None and started.cleared_at is None
    assert started.alert_group == "restore.started"
    assert started.severity == Severity.INDETERMINATE
    fleet.job(JobState.SUCCEEDED, T0 + timedelta(minutes=2), job_id=restore, kind=JobKind.RESTORE)
    _run(fleet, T0 + timedelta(minutes=3))
    finished = fleet.alarm(identifier)
    assert finished is not None and finished.cleared_at is not None
    assert "finished" in finished.summary and finished.tally == 1
    assert _run(fleet, T0 + timedelta(minutes=4)) == 0  # nothing new to say
    assert fleet.alarm(identifier).tally == 1  # type: ignore[union-attr]
    assert fleet.alarm(f"job:{restore}|restore.failed") is None


def test_a_failed_restore_raises_major_once(fleet: Fleet) -> None:
    restore = uuid.uuid4()
    fleet.job(JobState.RUNNING, T0, job_id=restore, kind=JobKind.RESTORE)
    fleet.job(
        JobState.FAILED,
        T0 + timedelta(seconds=5),
        job_id=restore,
        kind=JobKind.RESTORE,
        errors=["target disk full"],
    )
    _run(fleet, T0 + timedelta(seconds=10))  # it started and failed between two runs
    record = fleet.alarm(f"job:{restore}|restore")
    assert record is not None and record.cleared_at is not None
    failed = fleet.alarm(f"job:{restore}|restore.failed")
    assert failed is not None and failed.severity == Severity.MAJOR
    assert "target disk full" in failed.summary
    _run(fleet, T0 + timedelta(seconds=70))
    assert fleet.alarm(f"job:{restore}|restore.failed").tally == 1  # type: ignore[union-attr]


def test_a_restore_stalls_as_restore_stalled(fleet: Fleet) -> None:
    restore = fleet.job(JobState.RUNNING, T0, kind=JobKind.RESTORE)
    _run(fleet, T0 + timedelta(minutes=20))
    stalled = fleet.alarm(f"job:{restore}|restore.stalled")
    assert stalled is not None and stalled.severity == Severity.MINOR
    assert fleet.alarm(f"job:{restore}|job.stalled") is None
