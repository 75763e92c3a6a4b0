"""Job monitors: stalled and failed jobs, partial backups, and every restore to its end.

- A running job whose progress (`updated_at`) stopped is stalled: MINOR,
  MAJOR once stalled for much longer; cleared when progress resumes or the
  job ends. Restores stall as ``restore.stalled``, other jobs ``job.stalled``.
- A backup set's latest finished backup decides its ``job.failed`` (MAJOR)
  and ``backup.partial`` (MINOR) alarms: a failed job raises the first, a
  partial one the second, and a job that wrote a snapshot clears
  ``job.failed``; only a fully successful one clears ``backup.partial``.
- Each restore is one alarm from start (``restore.started``, indeterminate:
  the SOC follows it) to end: ``restore.finished`` clears it, and a failed
  restore also raises ``restore.failed`` (MAJOR) for someone to follow up.

Occurrences are named by job (and, for stalls, by the progress time judged
and the severity reached), so running a monitor twice adds nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vaultwatch.catalog.models import Agent, BackupSet, Job, JobKind, JobState
from vaultwatch.catalog.soc_models import Alarm, EventSource, EventType, Severity
from vaultwatch.soc.duties import DutyContext
from vaultwatch.soc.events import Event
from vaultwatch.soc.monitors import MonitorSettings, emit
from vaultwatch.soc.monitors.agents import describe_age

JOB_STALLED = "job.stalled"
RESTORE_STALLED = "restore.stalled"
JOB_FAILED = "job.failed"
BACKUP_PARTIAL = "backup.partial"
RESTORE_STARTED = "restore.started"
RESTORE_FINISHED = "restore.finished"
RESTORE_FAILED = "restore.failed"

#: Backup outcomes that decide a set's alarms (a cancelled job decides nothing; an
#: unchanged one found the set as its last snapshot has it, read without errors).
_OUTCOMES = (JobState.SUCCEEDED, JobState.PARTIAL, JobState.UNCHANGED, JobState.FAILED)


def _job_event(job: Job, hostname: str, group: str, identifier: str, **fields: object) -> Event:
    attributes = {"job_id": str(job.id), "kind": job.kind.value, "state": job.state.value}
    extra = fields.pop("attributes", None)
    if isinstance(extra, dict):
        attributes.update(extra)
    return Event(
        node=hostname,
        alert_group=group,
        entity=f"agent:{job.agent_id}",
        identifier=identifier,
        tenant_id=job.tenant_id,
        agent_id=job.agent_id,
        source=EventSource.MONITOR,
        attributes=attributes,
        **fields,  # type: ignore[arg-type]
    )


def _stall_group(job: Job) -> str:
    return RESTORE_STALLED if job.kind == JobKind.RESTORE else JOB_STALLED


def check_stalled(
    session: Session, now: datetime, after: timedelta, major_after: timedelta
) -> list[Event]:
    """Problems for running jobs without progress for `after`; resolutions for open stalls."""
    events: list[Event] = []
    running = session.execute(
        select(Job, Agent.hostname)
        .join(Agent, Agent.id == Job.agent_id)
        .where(Job.state == JobState.RUNNING, Job.updated_at < now - after)
        .order_by(Job.updated_at)
    )
    stalled_ids: set[uuid.UUID] = set()
    for job, hostname in running:
        stalled_ids.add(job.id)
        quiet = (now - job.updated_at).total_seconds()
        severity = Severity.MAJOR if quiet > major_after.total_seconds() else Severity.MINOR
        group = _stall_group(job)
        events.append(
            _job_event(
                job,
                hostname,
                group,
                f"job:{job.id}|{group}",
                summary=f"{job.kind.value} job on {hostname} has made no progress for "
                f"{describe_age(quiet)}",
                severity=severity,
                alert_key=str(job.id),
                occurrence_key=f"updated:{job.updated_at.isoformat()}|{severity.label}",
                occurred_at=now,
            )
        )
    open_ids = _open_job_ids(session, (JOB_STALLED, RESTORE_STALLED))
    for job, hostname in _jobs(session, open_ids - stalled_ids):
        group = _stall_group(job)
        verb = "progresses again" if job.state == JobState.RUNNING else f"is {job.state.value}"
        events.append(
            _job_event(
                job,
                hostname,
                group,
                f"job:{job.id}|{group}",
                summary=f"{job.kind.value} job on {hostname} {verb}",
                alert_key=str(job.id),
                type=EventType.RESOLUTION,
                severity=Severity.CLEAR,
            )
        )
    return events


def _open_job_ids(session: Session, groups: tuple[str, ...]) -> set[uuid.UUID]:
    ids: set[uuid.UUID] = set()
    rows = session.execute(
        select(Alarm.attributes).where(Alarm.alert_group.in_(groups), Alarm.cleared_at.is_(None))
    )
    for (attributes,) in rows:
        try:
            ids.add(uuid.UUID(str(attributes.get("job_id", ""))))
        except ValueError:
            continue
    return ids


def _jobs(session: Session, ids: set[uuid.UUID]) -> list[tuple[Job, str]]:
    if not ids:
        return []
    rows = session.execute(
        select(Job, Agent.hostname).join(Agent, Agent.id == Job.agent_id).where(Job.id.in_(ids))
    )
    return [(job, hostname) for job, hostname in rows]


def check_backup_outcomes(session: Session, now: datetime, lookback: timedelta) -> list[Event]:
    """`job.failed` and `backup.partial` per backup set, from its latest finished backup."""
    ranked = (
        select(
            Job.id,
            func.row_number()
            .over(partition_by=Job.backup_set_id, order_by=(Job.finished_at.desc(), Job.id))
            .label("rank"),
        )
        .where(
            Job.kind == JobKind.BACKUP,
            Job.state.in_(_OUTCOMES),
            Job.backup_set_id.is_not(None),
            Job.finished_at >= now - lookback,
        )
        .subquery()
    )
    rows = session.execute(
        select(Job, Agent.hostname, BackupSet.name)
        .join(ranked, ranked.c.id == Job.id)
        .join(Agent, Agent.id == Job.agent_id)
        .join(BackupSet, BackupSet.id == Job.backup_set_id)
        .where(ranked.c.rank == 1)
        .order_by(Job.backup_set_id)
    )
    events: list[Event] = []
    for job, hostname, set_name in rows:
        failed_id = f"backup_set:{job.backup_set_id}|{JOB_FAILED}"
        partial_id = f"backup_set:{job.backup_set_id}|{BACKUP_PARTIAL}"
        where = f"backup set {set_name} on {hostname}"
        common = {"alert_key": set_name, "attributes": {"backup_set_id": str(job.backup_set_id)}}
        if job.state == JobState.FAILED:
            reason = job.errors[-1] if job.errors else "no error was reported"
            events.append(
                _job_event(
                    job,
                    hostname,
                    JOB_FAILED,
                    failed_id,
                    summary=f"backup of {where} failed: {reason}",
                    severity=Severity.MAJOR,
                    occurrence_key=f"job:{job.id}",
                    occurred_at=job.finished_at,
                    **common,
                )
            )
            continue
        events.append(
            _job_event(
                job,
                hostname,
                JOB_FAILED,
                failed_id,
                summary=f"backup of {where} wrote a snapshot again",
                type=EventType.RESOLUTION,
                severity=Severity.CLEAR,
                **common,
            )
        )
        if job.state == JobState.PARTIAL:
            events.append(
                _job_event(
                    job,
                    hostname,
                    BACKUP_PARTIAL,
                    partial_id,
                    summary=f"backup of {where} is partial: {job.error_count} "
                    f"file{'s' if job.error_count != 1 else ''} could not be read",
                    severity=Severity.MINOR,
                    occurrence_key=f"job:{job.id}",
                    occurred_at=job.finished_at,
                    **common,
                )
            )
        else:
            events.append(
                _job_event(
                    job,
                    hostname,
                    BACKUP_PARTIAL,
                    partial_id,
                    summary=f"backup of {where} is complete again",
                    type=EventType.RESOLUTION,
                    severity=Severity.CLEAR,
                    **common,
                )
            )
    return events


def _restore_progress(job: Job) -> str:
    if job.bytes_total:
        return f"{job.bytes_done * 100 // job.bytes_total}% of {job.bytes_total} bytes"
    return f"{job.bytes_done} bytes so far"


def check_restores(session: Session, now: datetime, lookback: timedelta) -> list[Event]:
    """Events following each restore from start to finish (see the module docstring)."""
    rows = session.execute(
        select(Job, Agent.hostname)
        .join(Agent, Agent.id == Job.agent_id)
        .where(Job.kind == JobKind.RESTORE)
        .where(Job.finished_at.is_(None) | (Job.finished_at >= now - lookback))
        .order_by(Job.created_at, Job.id)
    )
    events: list[Event] = []
    for job, hostname in rows:
        identifier = f"job:{job.id}|restore"
        key = f"job:{job.id}"
        common = {"alert_key": str(job.id), "occurrence_key": key}
        events.append(
            _job_event(
                job,
                hostname,
                RESTORE_STARTED,
                identifier,
                summary=f"restore on {hostname} started ({_restore_progress(job)})",
                severity=Severity.INDETERMINATE,
                occurred_at=job.started_at or job.created_at,
                **common,
            )
        )
        if not job.state.is_final:
            continue
        outcome = {
            JobState.SUCCEEDED: "finished",
            JobState.PARTIAL: f"finished with {job.error_count} unreadable file(s)",
            JobState.FAILED: "failed",
            JobState.CANCELLED: "was cancelled",
        }[job.state]
        events.append(
            _job_event(
                job,
                hostname,
                RESTORE_FINISHED,
                identifier,
                summary=f"restore on {hostname} {outcome}",
                type=EventType.RESOLUTION,
                severity=Severity.CLEAR,
                **common,
            )
        )
        if job.state == JobState.FAILED:
            reason = job.errors[-1] if job.errors else "no error was reported"
            events.append(
                _job_event(
                    job,
                    hostname,
                    RESTORE_FAILED,
                    f"job:{job.id}|{RESTORE_FAILED}",
                    summary=f"restore on {hostname} failed: {reason}",
                    severity=Severity.MAJOR,
                    occurred_at=job.finished_at,
                    **common,
                )
            )
    return events


def run_job_monitors(session: Session, now: datetime, config: MonitorSettings) -> int:
    """Run every job monitor in the caller's transaction; returns how many alarms changed."""
    events = [
        *check_stalled(
            session,
            now,
            timedelta(seconds=config.job_stalled_after),
            timedelta(seconds=config.job_stalled_major_after),
        ),
        *check_backup_outcomes(session, now, timedelta(seconds=config.job_lookback)),
        *check_restores(session, now, timedelta(seconds=config.restore_lookback)),
    ]
    return len(emit(session, events, now=now))


def job_duty(config: MonitorSettings) -> Callable[[DutyContext], object]:
    """The leased duty running the job monitors in one fenced transaction."""

    def run(context: DutyContext) -> object:
        with context.session() as session:
            return run_job_monitors(session, context.now(session), config)

    return run
