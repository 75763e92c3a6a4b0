"""The daemon on a local vault while no gateway answers its control API.

Backups still run (the vault store is local here), and everything meant for
the server waits in the journal until a gateway answers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from tests.agent.conftest import FakeClock, base_doc, config_from
from tests.agent.test_jobs import FAST_KDF, PASSPHRASE, make_tree
from tests.engine.treecompare import describe
from vaultwatch.agent import jobs as jobs_module
from vaultwatch.agent.config import DEFAULT_BACKOFF_MAX, AgentConfig, NetworkConfig
from vaultwatch.agent.daemon import Agent, schedule_text
from vaultwatch.agent.journal import Journal
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import restore
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.store.base import Store
from vaultwatch.store.local import LocalStore


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(tmp_path: Path) -> tuple[AgentConfig, LocalStore, Path]:
    data = tmp_path / "data"
    make_tree(data, files=5, size=4096)
    doc = base_doc(
        tmp_path,
        a={"name": "www", "paths": [str(data)], "mode": "continuous"},
        b={
            "name": "db",
            "paths": [str(data / "d0")],
            "mode": "scheduled",
            "at": ["02:30"],
            "weekdays": ["sat"],
        },
    )
    doc["server"]["urls"] = [f"https://127.0.0.1:{closed_port()}"]
    doc["server"]["timeout"] = "2s"
    doc["network"] = {"backoff_initial": "10ms", "backoff_max": "20ms"}
    config = config_from(doc, tmp_path)
    (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
    store = LocalStore(tmp_path / "vault")
    store.create_if_missing()
    Repository.init(store, PASSPHRASE, kdf=FAST_KDF)
    return config, store, data


def test_backups_run_and_reports_wait_for_the_network(tmp_path: Path) -> None:
    config, store, _ = setup(tmp_path)

    def factory(on_state: object) -> Store:
        return store

    agent = Agent(config, clock=FakeClock(), store_factory=factory)
    try:
        assert agent.heartbeat_once() is False
        assert agent.gateways == {config.server.urls[0]: False}
        assert "no gateway reachable" in (agent.last_heartbeat_error or "")

        ran = []
        while agent.run_once():
            ran.append(agent.journal.recent_jobs(1)[0].backup_set)
        assert ran == ["db", "www"]  # each once: a missed schedule and the start-up pass
        assert agent.send_reports_once() is False
        pending = agent.journal.pending_reports()
        assert {p.body["state"] for p in pending} == {"succeeded"}
        assert {p.body["backup_set"] for p in pending} == {"db", "www"}

        doc = agent.status_document()
        assert doc["state"] == "idle" and doc["pending_reports"] == 2
        assert doc["backup_sets"]["www"]["last_state"] == "succeeded"
        assert doc["backup_sets"]["www"]["next_due"] is not None
        payload = agent.heartbeat_payload()
        assert payload["backup_sets"][1]["schedule"] == "sat daily 02:30"
        assert payload["free_disk_bytes"] > 0

        agent.write_status()
        metrics = generate_latest(agent.metrics.registry).decode()
        assert 'vaultwatch_agent_last_backup_success{backup_set="www"} 1.0' in metrics
        assert 'vaultwatch_agent_jobs_total{backup_set="db",result="succeeded"} 1.0' in metrics
        assert 'vaultwatch_agent_gateway_up{url="' in metrics
        # db ran first (both never ran: by name), then www: a data and a tree pack each.
        assert "vaultwatch_agent_uploaded_packs_total 4.0" in metrics
    finally:
        agent.shutdown()
        agent.journal.close()


def test_open_job_is_resumed_at_start_with_its_uid(tmp_path: Path) -> None:
    config, store, _ = setup(tmp_path)
    journal = Journal(config.state_dir / "journal.sqlite")
    job = journal.create_job("www", "changes")
    journal.set_state(job.job_uid, "running", attempt=True)
    journal.close()

    agent = Agent(config, clock=FakeClock(), store_factory=lambda on_state: store)
    try:
        agent.resume_open_jobs()
        done = agent.journal.job(job.job_uid)
        assert done is not None and done.state == "succeeded" and done.attempts == 2
        assert agent.journal.open_jobs() == []
        assert [p.job_uid for p in agent.journal.pending_reports()] == [job.job_uid]
    finally:
        agent.shutdown()
        agent.journal.close()


def test_schedule_text() -> None:
    from vaultwatch.agent.config import BackupSetConfig

    assert schedule_text(BackupSetConfig("a", ["/"], "continuous")) is None
    assert schedule_text(BackupSetConfig("a", ["/"], "scheduled", interval=3600)) == "every 3600s"


def test_reconnect_waits_are_capped_at_seconds(tmp_path: Path) -> None:
    """After a long outage the agent still tries every few seconds (jittered), not once a minute."""
    config, store, _ = setup(tmp_path)
    config = dataclasses.replace(config, network=NetworkConfig())  # the defaults
    assert config.network.backoff_max == DEFAULT_BACKOFF_MAX == 5.0
    agent = Agent(config, clock=FakeClock(), store_factory=lambda on_state: store)
    try:
        backoff = agent.reconnect_backoff()
        delays = [backoff.next_delay() for _ in range(500)]
    finally:
        agent.shutdown()
        agent.journal.close()
    assert max(delays) <= 5.0
    late = delays[10:]  # long into the outage: drawn over the whole window, not stuck at the top
    assert max(late) > 4.0 and min(late) < 1.0


def test_a_passphrase_that_does_not_open_the_vault_stops_jobs_until_the_file_changes(
    tmp_path: Path,
) -> None:
    config, store, _ = setup(tmp_path)
    (tmp_path / "passphrase").write_text("not the vault's passphrase\n")

    def factory(on_state: object) -> Store:
        return store

    clock = FakeClock()
    agent = Agent(config, clock=clock, store_factory=factory)
    try:
        assert agent.run_once() is True  # the first due set tries, and fails for good
        job = agent.journal.recent_jobs(1)[0]
        assert job.state == "failed"
        assert "does not open with this agent's passphrase file" in (job.error or "")
        report = agent.journal.pending_reports()[-1].body
        assert report["state"] == "failed"  # what the service is told
        assert "vaultwatch agent join" in report["errors"][0]["message"]

        clock.advance(3 * 86400)  # every set due, retries too: still nothing runs
        assert agent.run_once() is False
        assert len(agent.journal.recent_jobs(10)) == 1
        doc = agent.status_document()
        assert doc["state"] == "blocked"
        assert "does not open" in doc["blocked"]
        agent.write_status()
        assert b'vaultwatch_agent_state{vaultwatch_agent_state="blocked"} 1.0' in generate_latest(
            agent.metrics.registry
        )

        (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")  # fixed: backups run again
        assert agent.run_once() is True
        assert agent.journal.recent_jobs(1)[0].state == "succeeded"
        assert agent.status_document()["state"] == "idle"
    finally:
        agent.shutdown()
        agent.journal.close()


# -- change-driven backups with the real watcher ----------------------------------------------


class _ChangeDriven:
    """An agent on a local vault with its real inotify watcher and a clock the test moves."""

    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        for d in ("a/b/c/d/e", "a/x", "m/n", "cache"):
            (self.data / d).mkdir(parents=True)
            for i in range(3):
                (self.data / d / f"f{i}.txt").write_text(f"{d} {i}\n")
        doc = base_doc(
            tmp_path,
            a={
                "name": "www",
                "paths": [str(self.data)],
                "mode": "continuous",
                "excludes": ["cache"],
            },
        )
        doc["server"]["urls"] = [f"https://127.0.0.1:{closed_port()}"]
        doc["server"]["timeout"] = "2s"
        config = config_from(doc, tmp_path)
        (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
        self.store = LocalStore(tmp_path / "vault")
        self.store.create_if_missing()
        Repository.init(self.store, PASSPHRASE, kdf=FAST_KDF)
        self.clock = FakeClock()
        self.agent = Agent(config, clock=self.clock, store_factory=lambda on_state: self.store)
        self.trigger = self.agent.scheduler.triggers["www"]
        self.tmp = tmp_path
        self.restores = 0

    def wait_dirs(self, *dirs: Path) -> None:
        """Until the watcher reported these directories as changed."""
        wanted = {str(d) for d in dirs}
        deadline = time.monotonic() + 10
        while not wanted <= self.trigger.changes.dirs():
            assert time.monotonic() < deadline, (wanted, self.trigger.changes.dirs())
            time.sleep(0.05)
        time.sleep(0.2)  # the rest of the burst

    def run(self, reason: str) -> Snapshot:
        self.clock.advance(self.trigger.cfg.max_delay + 1)
        due = self.agent.scheduler.next_due()
        assert due is not None and due.reason == reason
        assert self.agent.run_once()
        record = self.agent.journal.set_record("www")
        assert record is not None and record.last_snapshot is not None
        repo = Repository.open(self.store, PASSPHRASE)
        snap = repo.find_snapshot(record.last_snapshot)
        self.compare(repo, snap)
        return snap

    def compare(self, repo: Repository, snap: Snapshot) -> None:
        """Restore the snapshot; it must hold exactly the tree as it is now (less the excluded)."""
        self.restores += 1
        target = self.tmp / f"restore-{self.restores}"
        res = restore(repo, snap, target)
        assert not res.errors
        expected = {k: v for k, v in describe(self.data).items() if not k.startswith(b"cache")}
        assert describe(target / str(self.data).lstrip("/")) == expected


def test_change_driven_backups_rescan_only_what_changed(tmp_path: Path) -> None:
    env = _ChangeDriven(tmp_path)
    data = env.data
    env.agent.watcher.start()
    try:
        first = env.run("rescan")  # the start-up pass walks everything
        assert first.summary["scan"] == "full"
        # a change deep down
        deep = data / "a/b/c/d/e"
        (deep / "f1.txt").write_text("changed deep down\n")
        env.wait_dirs(deep)
        snap = env.run("changes")
        assert snap.summary["scan"] == "incremental"
        assert (snap.summary["files_changed"], snap.summary["files_new"]) == (1, 0)
        # a rename across directories, a deleted directory, a change in an excluded one
        os.rename(data / "a/x/f0.txt", data / "m/n/moved.txt")
        shutil.rmtree(data / "a/b/c/d")
        (data / "cache" / "junk.bin").write_bytes(b"junk")
        env.wait_dirs(data / "a/x", data / "m/n", data / "a/b/c/d", data / "a/b/c")
        assert not any("cache" in d for d in env.trigger.changes.dirs())
        snap = env.run("changes")
        assert snap.summary["scan"] == "incremental"
        # an event lost: the overflow warning makes the next run a full walk
        (data / "m/f-lost.txt").write_text("its event is lost\n")
        env.wait_dirs(data / "m")
        env.trigger.changes.take()
        env.trigger.changes.committed()  # as if the kernel had dropped the event
        logging.getLogger("watchdog.observers.inotify_c").warning("inotify queue overflow")
        snap = env.run("rescan")
        assert snap.summary["scan"] == "full"
    finally:
        env.agent.shutdown()
        env.agent.journal.close()


def test_a_change_during_the_backup_and_a_failed_backup_stay_dirty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _ChangeDriven(tmp_path)
    data = env.data
    env.agent.watcher.start()
    real_backup = jobs_module.backup
    try:
        env.run("rescan")
        (data / "a/x/f1.txt").write_text("before the backup\n")
        env.wait_dirs(data / "a/x")

        def failing(*args: object, **kwargs: object) -> object:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(jobs_module, "backup", failing)
        env.clock.advance(env.trigger.cfg.max_delay + 1)
        assert env.agent.run_once()
        assert env.agent.journal.recent_jobs(1)[0].state == "failed"
        assert str(data / "a/x") in env.trigger.changes.dirs()  # given back

        def changing_meanwhile(*args: Any, **kwargs: Any) -> Any:
            (data / "m/n/f2.txt").write_text("written while the backup runs\n")
            time.sleep(0.5)  # its event arrives during the backup
            return real_backup(*args, **kwargs)

        monkeypatch.setattr(jobs_module, "backup", changing_meanwhile)
        env.clock.advance(env.trigger.cfg.retry_after + 1)
        assert env.agent.run_once()
        assert env.agent.journal.recent_jobs(1)[0].state == "succeeded"
        assert env.trigger.changes.dirs() == {str(data / "m/n")}  # kept for the next run
        monkeypatch.setattr(jobs_module, "backup", real_backup)
        snap = env.run("changes")
        assert snap.summary["scan"] == "incremental"
    finally:
        env.agent.shutdown()
        env.agent.journal.close()
