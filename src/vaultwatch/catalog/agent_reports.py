"""What agents report besides heartbeats: the backup sets they protect and their jobs.

The agent is the source of truth for its own configuration and job progress;
the catalog keeps the latest of both so the portal and the SOC can query
them. Every function here works inside the caller's (tenant-scoped)
transaction and takes the agent from the credential, never from the report.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.models import (
    SNAPSHOT_JOB_STATES,
    Agent,
    BackupMode,
    BackupSet,
    Job,
    JobKind,
    JobState,
    Snapshot,
)

MAX_BACKUP_SETS = 200
MAX_PATHS = 1000
MAX_KEPT_ERRORS = 50
MAX_ERROR_LENGTH = 1000


class JobConflictError(CatalogError):
    """The job id belongs to another agent, or the report would reopen a finished job."""


@dataclass(frozen=True)
class ReportedBackupSet:
    """One backup set as the agent's configuration defines it."""

    name: str
    paths: list[str]
    mode: BackupMode
    rpo_seconds: int
    schedule: str | None = None
    excludes: list[str] = field(default_factory=list)
    retention: dict[str, Any] | None = None
    """The retention the agent's configuration asks for (a policy document), if any."""


@dataclass(frozen=True)
class ReportedSnapshot:
    """The summary of a snapshot a backup job committed to the vault."""

    vault_snapshot_id: str
    hostname: str
    paths: list[str]
    started_at: datetime
    finished_at: datetime
    tags: list[str] = field(default_factory=list)
    files_total: int = 0
    bytes_total: int = 0
    files_new: int = 0
    files_changed: int = 0
    bytes_added: int = 0
    bytes_stored: int | None = None


@dataclass(frozen=True)
class JobReport:
    """A job's state and progress as the agent sees it now."""

    kind: JobKind
    state: JobState
    backup_set: str | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    files_done: int = 0
    files_total: int | None = None
    rate: float | None = None
    eta_seconds: int | None = None
    errors: list[str] = field(default_factory=list)
    error_count: int | None = None
    snapshot: ReportedSnapshot | None = None
    phase: str | None = None
    current_file: str | None = None
    resumed_bytes: int | None = None


def _check_set(item: ReportedBackupSet) -> None:
    if not item.name or len(item.name) > 200 or not item.name.isprintable():
        raise ValidationError("backup set name must be 1 to 200 printable characters")
    if not item.paths or len(item.paths) > MAX_PATHS:
        raise ValidationError(f"backup set {item.name!r} needs 1 to {MAX_PATHS} paths")
    if item.rpo_seconds <= 0:
        raise ValidationError(f"backup set {item.name!r}: the RPO must be positive")
    if item.mode == BackupMode.SCHEDULED and not item.schedule:
        raise ValidationError(f"backup set {item.name!r} is scheduled but has no schedule")
    if item.schedule is not None and len(item.schedule) > 100:
        raise ValidationError(f"backup set {item.name!r}: schedule too long")


def sync_backup_sets(
    session: Session,
    agent: Agent,
    repository_id: uuid.UUID,
    reported: list[ReportedBackupSet],
) -> list[BackupSet]:
    """Make the agent's backup sets match its report; sets it no longer reports are disabled.

    Disabled rather than deleted: their snapshots and jobs keep pointing at
    them, and the SOC stops expecting backups for them.
    """
    if len(reported) > MAX_BACKUP_SETS:
        raise ValidationError(f"an agent may report at most {MAX_BACKUP_SETS} backup sets")
    names = [item.name for item in reported]
    if len(set(names)) != len(names):
        raise ValidationError("backup set names must be unique per agent")
    for item in reported:
        _check_set(item)
    existing = {
        bs.name: bs
        for bs in session.execute(select(BackupSet).where(BackupSet.agent_id == agent.id)).scalars()
    }
    out: list[BackupSet] = []
    for item in reported:
        bs = existing.pop(item.name, None)
        if bs is None:
            bs = BackupSet(
                id=uuid.uuid4(),
                tenant_id=agent.tenant_id,
                agent_id=agent.id,
                repository_id=repository_id,
                name=item.name,
            )
            session.add(bs)
        changed = (
            bs.paths != item.paths
            or bs.excludes != item.excludes
            or bs.mode != item.mode
            or bs.schedule != item.schedule
            or bs.rpo_target_seconds != item.rpo_seconds
            or bs.retention != (item.retention or {})
            or not bs.enabled
        )
        if changed or bs in session.new:
            bs.paths = list(item.paths)
            bs.excludes = list(item.excludes)
            bs.mode = item.mode
            bs.schedule = item.schedule
            bs.rpo_target_seconds = item.rpo_seconds
            bs.retention = dict(item.retention or {})
            bs.enabled = True
        out.append(bs)
    for gone in existing.values():
        if gone.enabled:
            gone.enabled = False
    session.flush()
    return out


def _clean_errors(errors: list[str]) -> list[str]:
    kept = errors[-MAX_KEPT_ERRORS:]
    return [e[:MAX_ERROR_LENGTH] for e in kept]


def _record_snapshot(
    session: Session, agent: Agent, job: Job, repository_id: uuid.UUID, snap: ReportedSnapshot
) -> Snapshot:
    row = session.execute(
        select(Snapshot).where(
            Snapshot.repository_id == repository_id,
            Snapshot.vault_snapshot_id == snap.vault_snapshot_id,
        )
    ).scalar_one_or_none()
    if row is None:
        row = Snapshot(
            id=uuid.uuid4(),
            tenant_id=agent.tenant_id,
            repository_id=repository_id,
            vault_snapshot_id=snap.vault_snapshot_id,
        )
        session.add(row)
    row.backup_set_id = job.backup_set_id
    row.agent_id = agent.id
    row.hostname = snap.hostname[:255]
    row.paths = list(snap.paths)
    row.tags = list(snap.tags)
    row.started_at = snap.started_at
    row.finished_at = snap.finished_at
    row.files_total = snap.files_total
    row.bytes_total = snap.bytes_total
    row.files_new = snap.files_new
    row.files_changed = snap.files_changed
    row.bytes_added = snap.bytes_added
    row.bytes_stored = snap.bytes_stored
    session.flush()
    return row


def report_job(
    session: Session,
    agent: Agent,
    job_id: uuid.UUID,
    report: JobReport,
    *,
    repository_id: uuid.UUID,
    now: datetime | None = None,
) -> tuple[Job, bool]:
    """Create or update the agent's job ``job_id``; returns (job, created).

    Idempotent: the same report twice leaves the same row. A finished job
    only accepts the same final state again (a late duplicate), never a
    move back to running. A job id of another agent or tenant is a conflict.
    """
    now = now or database_now(session)
    job = session.get(Job, job_id)
    created = False
    if job is None:
        job = Job(id=job_id, tenant_id=agent.tenant_id, agent_id=agent.id, kind=report.kind)
        job.created_at = now
        job.state = report.state
        try:
            with session.begin_nested():
                session.add(job)
                session.flush()
        except IntegrityError:
            raise JobConflictError(f"job id {job_id} is already in use") from None
        created = True
    elif job.agent_id != agent.id:
        raise JobConflictError(f"job id {job_id} belongs to another agent")
    elif job.kind != report.kind:
        raise JobConflictError(f"job {job_id} is a {job.kind.value} job, not {report.kind.value}")
    elif job.state.is_final and report.state != job.state:
        raise JobConflictError(
            f"job {job_id} finished as {job.state.value} and cannot become {report.state.value}"
        )
    if report.backup_set is not None:
        job.backup_set_id = session.execute(
            select(BackupSet.id).where(
                BackupSet.agent_id == agent.id, BackupSet.name == report.backup_set
            )
        ).scalar_one_or_none()
    job.state = report.state
    job.updated_at = now
    if report.state not in (JobState.QUEUED,) and job.started_at is None:
        job.started_at = now
    if report.state.is_final and job.finished_at is None:
        job.finished_at = now
    job.bytes_done = report.bytes_done
    job.bytes_total = report.bytes_total
    job.files_done = report.files_done
    job.files_total = report.files_total
    job.rate_bytes_per_second = report.rate
    job.eta_seconds = report.eta_seconds
    job.phase = report.phase[:50] if report.phase else None
    job.current_file = (
        report.current_file[-1024:] if report.current_file and not report.state.is_final else None
    )
    job.resumed_bytes = report.resumed_bytes
    job.errors = _clean_errors(report.errors)
    job.error_count = max(report.error_count or 0, len(report.errors))
    if report.snapshot is not None and report.state in SNAPSHOT_JOB_STATES:
        job.snapshot_id = _record_snapshot(session, agent, job, repository_id, report.snapshot).id
    session.flush()
    return job, created
