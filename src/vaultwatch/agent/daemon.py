"""The agent daemon: watches, schedules and runs backups, heartbeats and reports.

Threads:
- the main loop picks the next due backup set and runs its job (one at a
  time per agent, so the CPU and the uplink load stay predictable);
- watchdog's observer feeds change events into the scheduler;
- the heartbeat thread tells the server every ``heartbeat`` seconds that the
  agent lives, with its facts, its backup sets and which gateways answer;
- the report thread sends queued job reports (from the journal's outbox)
  whenever a gateway answers: reports made during an outage arrive after it;
- the status thread rewrites ``status.json`` every second and refreshes the
  progress report of the running job.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from vaultwatch import __version__
from vaultwatch.agent.client import ApiError, Backoff, GatewayClient, NetworkDown
from vaultwatch.agent.config import AgentConfig, BackupSetConfig
from vaultwatch.agent.jobs import JobRunner
from vaultwatch.agent.journal import GOOD_STATES, Journal
from vaultwatch.agent.metrics import AgentMetrics
from vaultwatch.agent.schedule import Clock, Scheduler, SetTrigger, SystemClock
from vaultwatch.agent.status import (
    MAX_REFUSED_REPORTS,
    kept_refused_reports,
    read_status,
    refused_report,
    status_path,
    write_status,
)
from vaultwatch.agent.vault import AgentRepository, open_vault
from vaultwatch.agent.watcher import Watcher
from vaultwatch.engine.backup import BackupResult
from vaultwatch.job_states import JobState
from vaultwatch.passphrases import read_passphrase_file
from vaultwatch.store.base import Store

log = logging.getLogger("vaultwatch.agent")

StoreFactory = Callable[[Callable[[str], None]], Store]
"""Builds the vault Store; the argument is the store's network-state callback."""

JOURNAL_FILE = "journal.sqlite"
PROGRESS_REPORT_EVERY = 2.0
STOP_GRACE = 10.0
# The main loop's longest sleep: wall-clock schedules are re-read at least this often
# (a clock step or a suspend moves them); events and stops wake it sooner.
MAX_IDLE_SLEEP = 60.0
# How often an idle agent rewrites status.json without anything happening.
IDLE_STATUS_EVERY = 30.0
BLOCKED_POLL = 2.0
"""How often a blocked agent looks whether its passphrase file was fixed."""


def platform_name() -> str:
    """``Linux 6.1.0-18-amd64 x86_64`` and the like."""
    return f"{platform.system()} {platform.release()} {platform.machine()}".strip()


def schedule_text(cfg: BackupSetConfig) -> str | None:
    """A short description of a scheduled set's timing, for the server."""
    if cfg.mode != "scheduled":
        return None
    if cfg.interval is not None:
        return f"every {int(cfg.interval)}s"
    days = ",".join(("mon", "tue", "wed", "thu", "fri", "sat", "sun")[d] for d in cfg.weekdays)
    times = ",".join(t.strftime("%H:%M") for t in cfg.at)
    return f"{days + ' ' if days else ''}daily {times}"


def gateway_store_factory(config: AgentConfig) -> StoreFactory:
    """The vault over HTTPS through the gateways (retrying with backoff, every URL in turn)."""

    def make(on_state: Callable[[str], None]) -> Store:
        from vaultwatch.store.http import GatewayStore, RetryPolicy

        # Retry for ever: during an outage the job waits (and says so through on_state)
        # with its packs in memory, so after the cut only the pack in flight is sent again.
        policy = RetryPolicy(
            max_attempts=None,
            base_delay=config.network.backoff_initial,
            max_delay=config.network.backoff_max,
            gateways=config.server.urls[1:],
            on_state=on_state,
        )
        return GatewayStore(
            config.server.urls[0],
            config.server.credential,
            config.server.ca_cert,
            timeout=config.server.timeout,
            retry=policy,
        )

    return make


class Agent:
    """One agent process."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock | None = None,
        store_factory: StoreFactory | None = None,
        client: GatewayClient | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.stop_event = threading.Event()
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.journal = Journal(config.state_dir / JOURNAL_FILE)
        self.client = client or GatewayClient(
            config.server.urls,
            config.server.credential,
            config.server.ca_cert,
            timeout=config.server.timeout,
        )
        self.store_factory = store_factory or gateway_store_factory(config)
        self.metrics = AgentMetrics()
        self.hostname = config.hostname or socket.gethostname()
        triggers = []
        for s in config.backup_sets:
            record = self.journal.set_record(s.name)
            last = (
                datetime.fromtimestamp(record.last_run).astimezone()
                if record is not None and record.last_run is not None
                else None
            )
            triggers.append(SetTrigger(s, self.clock, last))
            if record is not None:
                self._metrics_from_record(
                    s.name, record.last_run, record.last_success, record.last_state
                )
        self.scheduler = Scheduler(triggers)
        self._report_wake = threading.Event()
        self._status_wake = threading.Event()  # something the status shows changed
        self._online = threading.Event()  # set by each delivered heartbeat
        self.runner = JobRunner(
            config,
            self.journal,
            self.vault,
            stop=self.stop_event,
            on_report=self._queue_report,
            on_finish=self._job_finished,
            on_upload=self._uploaded,
            on_reports_queued=self._report_wake.set,
        )
        self._repo: AgentRepository | None = None
        self._repo_lock = threading.Lock()
        self.gateways: dict[str, bool] = {}
        self.last_heartbeat: float | None = None
        self.last_heartbeat_error: str | None = None
        self.refused_reports = kept_refused_reports(read_status(status_path(config.state_dir)))
        self.started = time.time()
        self.watcher = Watcher(
            config.backup_sets,
            self._changed,
            self._overflow,
            ignored=[str(config.state_dir)],
        )
        self._threads: list[threading.Thread] = []
        self.blocked: str | None = None
        """Why the agent runs no jobs: a failure no retry can fix, until its key file changes."""
        self._blocked_key: tuple[int, int, int] | None = None

    # -- the vault ------------------------------------------------------------------------

    def vault(self) -> AgentRepository:
        """The tenant vault, opened (or created) on first use and kept open."""
        with self._repo_lock:
            if self._repo is None:
                passphrase = read_passphrase_file(self.config.passphrase_file)
                store = self.store_factory(self.runner.on_store_state)
                try:
                    self._repo = open_vault(
                        store,
                        passphrase,
                        upload_workers=self.config.upload_workers,
                        slot_id=self.config.key_slot,
                        passphrase_file=self.config.passphrase_file,
                    )
                except BaseException:
                    store.close()
                    raise
                log.info("vault %s open", self._repo.config.repo_id[:8])
            return self._repo

    # -- callbacks --------------------------------------------------------------------------

    def _changed(self, name: str, dirs: list[str]) -> None:
        self.scheduler.notify_change(name, dirs)
        self._status_wake.set()

    def _overflow(self) -> None:
        log.warning("file-system events were lost (queue overflow): rescanning every set")
        self.scheduler.request_rescan_all()

    def _queue_report(self, job_uid: str, body: dict[str, Any]) -> None:
        self.journal.put_report(job_uid, body)
        self._report_wake.set()

    def _metrics_from_record(
        self, name: str, last_run: float | None, last_success: float | None, state: str | None
    ) -> None:
        if last_run is not None:
            self.metrics.last_backup.labels(name).set(last_run)
            self.metrics.last_ok.labels(name).set(1 if state in GOOD_STATES else 0)
        if last_success is not None:
            self.metrics.last_success.labels(name).set(last_success)

    def _job_finished(self, cfg: BackupSetConfig, state: str, result: BackupResult | None) -> None:
        now = time.time()
        self.metrics.jobs.labels(cfg.name, state).inc()
        self.metrics.last_backup.labels(cfg.name).set(now)
        ok = state in GOOD_STATES
        self.metrics.last_ok.labels(cfg.name).set(1 if ok else 0)
        if ok:
            self.metrics.last_success.labels(cfg.name).set(now)

    def _uploaded(self, size: int) -> None:
        self.metrics.uploaded_bytes.inc(size)
        self.metrics.uploaded_packs.inc()

    # -- threads ------------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def heartbeat_payload(self) -> dict[str, Any]:
        """What a heartbeat tells the server."""
        try:
            free = shutil.disk_usage(self.config.state_dir).free
        except OSError:
            free = None
        sets = []
        for s in self.config.backup_sets:
            item: dict[str, Any] = {
                "name": s.name,
                "paths": s.paths,
                "mode": s.mode,
                "rpo_seconds": int(s.rpo),
                "excludes": s.excludes,
            }
            sched = schedule_text(s)
            if sched is not None:
                item["schedule"] = sched
            if s.retention is not None:
                item["retention"] = s.retention
            sets.append(item)
        return {
            "agent_version": __version__,
            "hostname": self.hostname,
            "platform": platform_name(),
            "free_disk_bytes": free,
            "gateways": dict(self.gateways),
            "backup_sets": sets,
        }

    def heartbeat_once(self) -> bool:
        """Probe the gateways and send one heartbeat; True when the server took it."""
        for url in self.config.server.urls:
            up = self.client.probe(url)
            self.gateways[url] = up
            self.metrics.gateway_up.labels(url).set(1 if up else 0)
        try:
            answer = self.client.heartbeat(self.heartbeat_payload())
        except (NetworkDown, ApiError) as exc:
            self.last_heartbeat_error = str(exc)
            log.warning("heartbeat not delivered: %s", exc)
            return False
        self.last_heartbeat = time.time()
        self.last_heartbeat_error = None
        self._online.set()
        self.metrics.last_heartbeat.set(self.last_heartbeat)
        if isinstance(answer, dict) and isinstance(answer.get("server_time"), str):
            self._check_skew(answer["server_time"])
        return True

    def _check_skew(self, server_time: str) -> None:
        try:
            skew = abs(datetime.fromisoformat(server_time).timestamp() - time.time())
        except ValueError:
            return
        if skew > 300:
            log.warning("this server's clock is %.0f s away from the service's: fix NTP", skew)

    def reconnect_backoff(self) -> Backoff:
        """The waits between tries while no gateway answers: at most ``network.backoff_max``.

        The cap is short (seconds) so the agent is back soon after its
        gateway; full jitter keeps a fleet from returning all at once.
        """
        network = self.config.network
        return Backoff(network.backoff_initial, min(self.config.heartbeat, network.backoff_max))

    def _heartbeat_loop(self) -> None:
        backoff = self.reconnect_backoff()
        while not self.stop_event.is_set():
            ok = self.heartbeat_once()
            if ok:
                backoff.reset()
                wait = self.config.heartbeat
            else:
                wait = min(self.config.heartbeat, backoff.next_delay())
            self.stop_event.wait(wait)

    def send_reports_once(self) -> bool:
        """Send every pending job report; False when the network is down.

        Not before this process's first heartbeat went through: the heartbeat
        tells the server the backup sets that job reports refer to by name.
        """
        if self.last_heartbeat is None:
            return False
        for report in self.journal.pending_reports():
            try:
                self.client.report_job(report.job_uid, report.body)
            except NetworkDown:
                return False
            except ApiError as exc:
                if exc.status in (401, 403) or exc.status >= 500:
                    log.error("job report for %s refused: %s", report.job_uid, exc)
                    return False
                # Refused for good (e.g. a finished job cannot change): keeping it would block
                # every later report, so it is not sent again but stays in the status.
                log.warning(
                    "job report for %s refused by the service (HTTP %d): %s",
                    report.job_uid,
                    exc.status,
                    exc.detail,
                )
                entry = refused_report(
                    report.job_uid, report.body, exc.status, exc.detail, time.time()
                )
                self.refused_reports = [*self.refused_reports, entry][-MAX_REFUSED_REPORTS:]
            self.journal.mark_sent(report.job_uid, report.version)
        return True

    def _report_loop(self) -> None:
        backoff = self.reconnect_backoff()
        while not self.stop_event.is_set():
            self._report_wake.clear()
            self._online.clear()
            if self.send_reports_once():
                backoff.reset()
                self._report_wake.wait(30)
            else:
                # Back off, but go at once when a heartbeat gets through again.
                self._online.wait(backoff.next_delay())

    def status_document(self) -> dict[str, Any]:
        """What ``vaultwatch agent status`` shows."""
        live = self.runner.live
        job: dict[str, Any] | None = None
        if live is not None:
            p = live.progress
            job = {
                "job_uid": live.job_uid,
                "backup_set": live.backup_set,
                "reason": live.reason,
                "state": live.state,
                "attempts": live.attempts,
                "started": live.started,
                "bytes_done": p.bytes_done if p else 0,
                "bytes_total": p.bytes_total if p else None,
                "files_done": p.files_done if p else 0,
                "files_total": p.files_total if p else None,
                "rate": p.rate if p else 0.0,
                "eta_seconds": p.eta if p else None,
                "phase": p.phase if p else "",
                "packs_uploaded": live.packs_uploaded,
                "last_error": live.last_error,
            }
        sets = {}
        for s in self.config.backup_sets:
            rec = self.journal.set_record(s.name)
            trigger = self.scheduler.triggers[s.name]
            next_due = trigger.next_due_wall()
            sets[s.name] = {
                "mode": s.mode,
                "paths": s.paths,
                "last_run": rec.last_run if rec else None,
                "last_success": rec.last_success if rec else None,
                "last_state": rec.last_state if rec else None,
                "last_error": rec.last_error if rec else None,
                "last_snapshot": rec.last_snapshot if rec else None,
                "pending_changes": trigger.debouncer.pending,
                "changed_dirs": trigger.changes.pending,
                "next_due": next_due.timestamp() if next_due else None,
            }
        state = "idle" if live is None else live.state
        if live is None and self.blocked is not None:
            state = "blocked"
        return {
            "pid": os.getpid(),
            "version": __version__,
            "agent_id": self.config.agent_id,
            "hostname": self.hostname,
            "started": self.started,
            "updated": time.time(),
            "state": state,
            "blocked": self.blocked,
            "job": job,
            "backup_sets": sets,
            "gateways": dict(self.gateways),
            "last_heartbeat": self.last_heartbeat,
            "last_heartbeat_error": self.last_heartbeat_error,
            "pending_reports": len(self.journal.pending_reports()),
            "refused_reports": list(self.refused_reports),
        }

    def write_status(self) -> None:
        """Rewrite status.json and the state metrics now."""
        doc = self.status_document()
        active = (JobState.RUNNING, JobState.WAITING_FOR_NETWORK, "blocked")
        state = doc["state"] if doc["state"] in active else "idle"
        self.metrics.state.state(state)
        job = doc["job"]
        self.metrics.job_bytes_done.set(job["bytes_done"] if job else 0)
        self.metrics.job_bytes_total.set((job["bytes_total"] or 0) if job else 0)
        write_status(status_path(self.config.state_dir), doc)

    def _status_loop(self) -> None:
        last_report = 0.0
        while not self.stop_event.is_set():
            try:
                self.write_status()
            except Exception:  # status must never take the agent down
                log.exception("cannot write the status file")
            live = self.runner.live
            now = time.monotonic()
            if (
                live is not None
                and live.state == JobState.RUNNING
                and now - last_report >= PROGRESS_REPORT_EVERY
            ):
                last_report = now
                self.runner.report()
            if self.stop_event.wait(1.0):
                break
            if self.runner.live is None:
                # Idle: nothing in the status moves but on an event or a job start.
                self._status_wake.wait(IDLE_STATUS_EVERY)
            self._status_wake.clear()

    # -- main loop ----------------------------------------------------------------------------

    def start_background(self) -> None:
        """Start watching, heartbeats, reports, status and metrics."""
        if self.config.metrics.enabled:
            self.metrics.serve(self.config.metrics.address, self.config.metrics.port)
            log.info(
                "metrics on http://%s:%d/metrics",
                self.config.metrics.address,
                self.config.metrics.port,
            )
        self.watcher.start()
        self._spawn("heartbeat", self._heartbeat_loop)
        self._spawn("reports", self._report_loop)
        self._spawn("status", self._status_loop)

    def resume_open_jobs(self) -> None:
        """Finish the jobs an earlier run of the agent left open, under their own uids."""
        sets = {s.name: s for s in self.config.backup_sets}
        for job in self.journal.open_jobs():
            if self.stop_event.is_set() or self.blocked is not None:
                return
            cfg = sets.get(job.backup_set)
            if cfg is None:
                self.journal.finish_job(
                    job.job_uid,
                    JobState.FAILED,
                    paths=[],
                    error="the backup set was removed from the configuration",
                )
                continue
            log.info("resuming interrupted job %s of %s", job.job_uid, cfg.name)
            self._run(cfg, job.reason or "resume", job)

    def _run(self, cfg: BackupSetConfig, reason: str, job: Any = None) -> None:
        trigger = self.scheduler.triggers[cfg.name]
        # Change-driven runs list only the directories with events; a periodic rescan, a
        # resumed job and a scheduled set walk everything.
        full = cfg.mode != "continuous" or reason == "rescan" or job is not None
        dirty = trigger.changes.take(full=full)
        trigger.started()
        self._status_wake.set()
        state, result = self.runner.run(cfg, reason, job, dirty_paths=dirty)
        if result is not None:
            # Unreadable files are not in the snapshot: list their directories again next time.
            retry = {p for e in result.errors for p in (e.path, os.path.dirname(e.path))}
            trigger.changes.committed(retry)
        else:
            trigger.changes.failed()
        if state == JobState.FAILED:
            trigger.failed()
        if self.runner.permanent_failure is not None:
            self._block(self.runner.permanent_failure)

    # -- a failure no retry can fix ----------------------------------------------------------

    def _key_fingerprint(self) -> tuple[int, int, int]:
        """What changes when someone fixes the passphrase file (replaced, rewritten, created)."""
        try:
            st = os.stat(self.config.passphrase_file)
        except OSError:
            return (0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _block(self, reason: str) -> None:
        self.blocked = reason
        self._blocked_key = self._key_fingerprint()
        with self._repo_lock:
            self._repo = None
        log.error(
            "no more backups until this is fixed (the agent tries again when %s changes, or "
            "when it restarts): %s",
            self.config.passphrase_file,
            reason,
        )

    def still_blocked(self) -> bool:
        """Whether the agent stays blocked; a changed passphrase file lets it try again."""
        if self.blocked is None:
            return False
        if self._key_fingerprint() == self._blocked_key:
            return True
        log.info("%s changed: trying the vault again", self.config.passphrase_file)
        self.blocked = None
        for trigger in self.scheduler.triggers.values():
            trigger.retry_now()
        return False

    def run_once(self) -> bool:
        """Run the next due set, if any; True when one ran."""
        if self.still_blocked():
            return False
        due = self.scheduler.next_due()
        if due is None:
            return False
        cfg = next(s for s in self.config.backup_sets if s.name == due.name)
        log.info("backup of %s starts (%s)", cfg.name, due.reason)
        self._run(cfg, due.reason)
        return True

    def loop(self) -> None:
        """Run due sets until stopped."""
        self.resume_open_jobs()
        while not self.stop_event.is_set():
            if self.still_blocked():
                self.stop_event.wait(BLOCKED_POLL)
                continue
            if self.run_once():
                self.journal.prune()
                continue
            # Sleeps until the next set is due; a change event or a stop wakes it at once.
            wait = min(self.scheduler.seconds_until_next(), MAX_IDLE_SLEEP)
            self.scheduler.wake.wait(max(wait, 0.05))
            self.scheduler.wake.clear()

    def shutdown(self) -> None:
        """Stop threads and close what is open (the running job stays resumable)."""
        self.stop_event.set()
        self._report_wake.set()
        self._status_wake.set()
        self._online.set()
        self.scheduler.wake.set()
        try:
            self.watcher.stop()
        except Exception:
            log.debug("watcher stop failed", exc_info=True)
        try:
            self.write_status()
        except Exception:
            log.debug("final status not written", exc_info=True)
        self.metrics.close()
        self.journal.flush()


def run_agent(config: AgentConfig, *, store_factory: StoreFactory | None = None) -> None:
    """Run the agent until SIGTERM or SIGINT.

    A stop during a job does not wait for it: the backup is cancelled (its
    lock released, nothing half-written referenced), or, if it cannot stop
    within STOP_GRACE seconds (waiting for the network), the journal is
    flushed and the process exits; either way the job resumes under its uid
    at the next start.
    """
    agent = Agent(config, store_factory=store_factory)
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        agent.stop_event.set()
        agent.scheduler.wake.set()
        agent.runner.cancel()

    def reaper() -> None:
        agent.stop_event.wait()
        if done.wait(STOP_GRACE):
            return
        log.info("stopping mid-job: the job resumes at the next start")
        try:
            agent.journal.flush()
            agent.write_status()
        finally:
            os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=reaper, name="reaper", daemon=True).start()
    log.info(
        "agent %s %s starting: %d backup set(s), gateways %s",
        config.agent_id,
        __version__,
        len(config.backup_sets),
        ", ".join(config.server.urls),
    )
    agent.start_background()
    try:
        agent.loop()
    finally:
        agent.shutdown()
        done.set()
        agent.journal.close()
    log.info("agent stopped")
