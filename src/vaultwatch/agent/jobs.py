"""Running one backup job of a set: resumable, patient with the network, reported as it goes.

A job keeps its uid from its first try to its end, across network outages
and agent restarts. Each try runs the engine's backup with the job's
FileCache from the journal (files finished by an earlier try are not read
again) on a vault whose index is reloaded after a failed try, so the engine
finds and adopts the packs that try already stored (they are not sent
again). While no gateway answers, the job is ``waiting_for_network``, never
``failed``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from vaultwatch.agent.client import Backoff, NetworkDown
from vaultwatch.agent.config import AgentConfig, BackupSetConfig
from vaultwatch.agent.journal import JobFileCache, JobRecord, Journal
from vaultwatch.agent.snapshots import set_tag
from vaultwatch.agent.vault import AgentRepository, is_unchanged
from vaultwatch.engine.backup import BackupOptions, BackupResult, backup
from vaultwatch.engine.errors import SnapshotNotFoundError, WrongPassphraseError
from vaultwatch.engine.lock import list_locks
from vaultwatch.engine.progress import Progress
from vaultwatch.errors import VaultwatchError
from vaultwatch.job_states import FINAL_JOB_STATES, JobState
from vaultwatch.passphrases import PassphraseFileError
from vaultwatch.store.errors import ObjectNotFoundError, StoreError, StoreUnavailableError

log = logging.getLogger("vaultwatch.agent.jobs")

RUNNING = JobState.RUNNING
WAITING = JobState.WAITING_FOR_NETWORK
MAX_REPORTED_ERRORS = 50


def is_network_error(exc: BaseException) -> bool:
    """Whether a failure means 'the gateway cannot be reached now' (wait and retry)."""
    return isinstance(
        exc,
        StoreUnavailableError | NetworkDown | httpx.TransportError | ConnectionError | TimeoutError,
    )


def is_permanent_error(exc: BaseException) -> bool:
    """Whether a failure will recur on every try until someone acts (the key does not open the vault).

    Retrying such a job every ``retry_after`` only repeats the error: the
    agent stops running jobs and says why instead.
    """
    return isinstance(exc, WrongPassphraseError | PassphraseFileError)


@dataclass
class LiveJob:
    """The job running now, as status, metrics and reports see it."""

    job_uid: str
    backup_set: str
    reason: str
    state: JobState = JobState.QUEUED
    attempts: int = 0
    started: float = field(default_factory=time.time)
    progress: Progress | None = None
    last_error: str | None = None
    packs_uploaded: int = 0
    bytes_uploaded: int = 0
    file_cache: JobFileCache | None = None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def report_body(
    live: LiveJob,
    *,
    state: JobState | None = None,
    result: BackupResult | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The PUT /jobs/{uid} body for the job as it is now."""
    progress = live.progress
    body: dict[str, Any] = {
        "backup_set": live.backup_set,
        "kind": "backup",
        "state": state or live.state,
        "bytes_done": progress.bytes_done if progress else 0,
        "bytes_total": progress.bytes_total if progress else None,
        "files_done": progress.files_done if progress else 0,
        "files_total": progress.files_total if progress else None,
        "rate": round(progress.rate, 1) if progress else None,
        "eta_seconds": (
            int(progress.eta) if progress is not None and progress.eta is not None else None
        ),
        "errors": [],
        "snapshot": None,
        "phase": progress.phase if progress else None,
        "current_file": (progress.current or None) if progress else None,
        "resumed_bytes": live.file_cache.hit_bytes if live.file_cache is not None else None,
    }
    if error:
        body["errors"] = [{"path": "", "message": error[:4000]}]
    if result is not None:
        summary = result.to_dict()
        errors = [{"path": e.path[:4000], "message": e.message[:4000]} for e in result.errors]
        body["errors"] = errors[:MAX_REPORTED_ERRORS]
        body["error_count"] = summary["errors"]
        body["bytes_done"] = summary["total_bytes"]
        body["bytes_total"] = summary["total_bytes"]
        # The snapshot holds the files read; those that could not be read were part of the
        # job but are not in it.
        body["files_done"] = summary["files_total"]
        body["files_total"] = summary["files_total"] + summary["files_unreadable"]
        body["eta_seconds"] = 0
        snap = result.snapshot
        if is_unchanged(snap):
            return body  # nothing was written: the parent snapshot still describes the set
        body["snapshot"] = {
            "id": snap.id,
            "hostname": snap.hostname,
            "paths": list(snap.paths),
            "tags": list(snap.tags),
            "started_at": _iso(live.started),
            "finished_at": snap.time.isoformat(timespec="seconds"),
            "files_total": summary["files_total"],
            "bytes_total": summary["total_bytes"],
            "files_new": summary["files_new"],
            "files_changed": summary["files_changed"],
            "bytes_added": summary["bytes_added"],
            "bytes_stored": summary["bytes_stored"],
        }
    return body


class JobRunner:
    """Runs jobs one at a time; the daemon's loop calls :meth:`run`."""

    def __init__(
        self,
        config: AgentConfig,
        journal: Journal,
        vault: Callable[[], AgentRepository],
        *,
        stop: threading.Event,
        on_report: Callable[[str, dict[str, Any]], None],
        on_finish: Callable[[BackupSetConfig, str, BackupResult | None], None] | None = None,
        on_upload: Callable[[int], None] | None = None,
        on_reports_queued: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self._vault = vault
        self.stop = stop
        self._on_report = on_report
        self._on_finish = on_finish
        self._on_upload = on_upload
        self._on_reports_queued = on_reports_queued
        self.live: LiveJob | None = None
        self._lock = threading.Lock()
        self._reload_index = False
        self.hostname = config.hostname or socket.gethostname()
        self.permanent_failure: str | None = None
        """Set when the last job failed in a way no retry can fix (see is_permanent_error)."""

    # -- state shown to the outside ---------------------------------------------------------

    def report(self, **kwargs: Any) -> None:
        """Queue a report of the current job (sent when a gateway answers)."""
        live = self.live
        if live is not None:
            self._on_report(live.job_uid, report_body(live, **kwargs))

    def _reports_queued(self) -> None:
        if self._on_reports_queued is not None:
            self._on_reports_queued()

    def set_state(self, state: JobState) -> None:
        """Move the current job to ``state`` (running / waiting_for_network) and report it."""
        with self._lock:
            live = self.live
            if live is None or live.state == state or live.state in FINAL_JOB_STATES:
                return
            live.state = state
        self.journal.set_state(live.job_uid, state)
        log.info("job %s of %s: %s", live.job_uid, live.backup_set, state)
        self.report()

    def cancel(self) -> None:
        """Ask the running backup to stop soon (the agent is stopping); the job stays open."""
        live = self.live
        if live is not None and live.progress is not None:
            live.progress.cancel()

    def on_store_state(self, state: str) -> None:
        """The gateway store's view: it is waiting for the network, or running again."""
        if state in (RUNNING, WAITING):
            self.set_state(JobState(state))

    def on_pack_uploaded(self, pack_id: bytes, size: int) -> None:
        """Count what the current job sent."""
        live = self.live
        if live is not None:
            with self._lock:
                live.packs_uploaded += 1
                live.bytes_uploaded += size
        if self._on_upload is not None:
            self._on_upload(size)

    # -- running --------------------------------------------------------------------------------

    def run(
        self,
        cfg: BackupSetConfig,
        reason: str,
        resume: JobRecord | None = None,
        *,
        dirty_paths: set[bytes] | None = None,
    ) -> tuple[str, BackupResult | None]:
        """Run (or resume) the set's job to its end; returns (final state, result).

        ``dirty_paths`` are the directories with changes since the set's last
        snapshot (the backup lists only them); None walks everything.

        Returns ("stopped", None) when the agent is stopping: the job stays
        open in the journal and resumes at the next start.
        """
        job = resume or self.journal.open_job(cfg.name) or self.journal.create_job(cfg.name, reason)
        live = LiveJob(job.job_uid, cfg.name, job.reason or reason, attempts=job.attempts)
        with self._lock:
            self.live = live
        self.permanent_failure = None
        if job.attempts:
            log.info("resuming job %s of %s (try %d)", job.job_uid, cfg.name, job.attempts + 1)
        backoff = Backoff(self.config.network.backoff_initial, self.config.network.backoff_max)
        try:
            while True:
                if self.stop.is_set():
                    return "stopped", None
                live.attempts += 1
                live.progress = Progress()
                with self._lock:
                    live.state = RUNNING
                self.journal.set_state(job.job_uid, RUNNING, attempt=True)
                self.report()
                try:
                    result = self._attempt(cfg, job.job_uid, live.progress, dirty_paths)
                except Exception as exc:
                    if self.stop.is_set():
                        return "stopped", None
                    if not is_network_error(exc):
                        state = self._fail(cfg, live, exc)
                        if is_permanent_error(exc):
                            self.permanent_failure = live.last_error
                        return state, None
                    self._reload_index = True
                    live.last_error = str(exc)
                    self.set_state(WAITING)
                    delay = backoff.next_delay()
                    log.warning(
                        "job %s of %s: gateway unreachable (%s); retrying in %.1fs",
                        job.job_uid,
                        cfg.name,
                        exc,
                        delay,
                    )
                    self.stop.wait(delay)
                    continue
                if result.errors:
                    state = JobState.PARTIAL  # still partial, if nothing changed: the alarm stays
                elif is_unchanged(result.snapshot):
                    state = JobState.UNCHANGED
                else:
                    state = JobState.SUCCEEDED
                with self._lock:
                    live.state = state
                self.journal.finish_job(
                    job.job_uid,
                    state,
                    paths=list(result.snapshot.paths),
                    snapshot_id=result.snapshot.id,
                    error=f"{len(result.errors)} files could not be read"
                    if result.errors
                    else None,
                    report=report_body(live, state=state, result=result),
                )
                self._reports_queued()
                log.info(
                    "job %s of %s %s: snapshot %s, %d new, %d changed, %d bytes added, "
                    "%d packs sent, %d errors",
                    job.job_uid,
                    cfg.name,
                    state,
                    (result.snapshot.id or "")[:8],
                    result.files_new,
                    result.files_changed,
                    result.bytes_added,
                    live.packs_uploaded,
                    len(result.errors),
                )
                if self._on_finish is not None:
                    self._on_finish(cfg, state, result)
                return state, result
        finally:
            with self._lock:
                self.live = None

    def _fail(self, cfg: BackupSetConfig, live: LiveJob, exc: BaseException) -> str:
        message = str(exc) if isinstance(exc, VaultwatchError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, VaultwatchError):
            log.error("job %s of %s failed: %s", live.job_uid, cfg.name, message)
        else:
            log.exception("job %s of %s failed unexpectedly", live.job_uid, cfg.name)
        self._reload_index = True
        with self._lock:
            live.state = JobState.FAILED
            live.last_error = message
        self.journal.finish_job(
            live.job_uid,
            JobState.FAILED,
            paths=cfg.paths,
            error=message,
            report=report_body(live, state=JobState.FAILED, error=message),
        )
        self._reports_queued()
        if self._on_finish is not None:
            self._on_finish(cfg, JobState.FAILED, None)
        return JobState.FAILED

    def _parent(self, cfg: BackupSetConfig) -> str:
        record = self.journal.set_record(cfg.name)
        if record is None or record.last_snapshot is None:
            return "auto"
        if sorted(record.paths) != sorted(os.path.abspath(p) for p in cfg.paths):
            return "auto"
        return record.last_snapshot

    def _attempt(
        self,
        cfg: BackupSetConfig,
        job_uid: str,
        progress: Progress,
        dirty_paths: set[bytes] | None = None,
    ) -> BackupResult:
        repo = self._vault()
        if self._reload_index:
            # A failed try may have indexed packs in memory that no index file lists:
            # reload, so the engine sees them as unindexed and adopts them.
            repo.load_index(reload=True)
            self._reload_index = False
            self._remove_own_locks(repo)
        repo.on_pack_uploaded = self.on_pack_uploaded
        excludes = list(cfg.excludes)
        excludes.append(str(self.config.state_dir))
        cache = self.journal.file_cache(job_uid)
        options = BackupOptions(
            excludes=excludes,
            tags=[set_tag(cfg.name)],
            hostname=self.hostname,
            parent=self._parent(cfg),
            file_cache=cache,
            dirty_paths=dirty_paths,
        )
        if self.live is not None:
            self.live.file_cache = cache
        try:
            try:
                return backup(repo, cfg.paths, options, progress)
            except SnapshotNotFoundError:
                if options.parent == "auto":
                    raise
                options.parent = "auto"  # the parent was forgotten meanwhile
                return backup(repo, cfg.paths, options, progress)
        finally:
            self.journal.flush()

    def _remove_own_locks(self, repo: AgentRepository) -> None:
        """Locks this very process left when a try died mid-way (it holds none between tries)."""
        try:
            for lock in list_locks(repo.store):
                if lock.hostname == socket.gethostname() and lock.pid == os.getpid():
                    with contextlib.suppress(ObjectNotFoundError):
                        repo.store.delete(lock.name)
        except StoreError as exc:
            log.debug("could not clean up our own locks: %s", exc)
