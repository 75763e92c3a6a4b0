"""The daemon on a local vault while no gateway answers its control API.

Backups still run (the vault store is local here), and everything meant for
the server waits in the journal until a gateway answers.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

from prometheus_client import generate_latest

from tests.agent.conftest import FakeClock, base_doc, config_from
from tests.agent.test_jobs import FAST_KDF, PASSPHRASE, make_tree
from vaultwatch.agent.config import DEFAULT_BACKOFF_MAX, AgentConfig, NetworkConfig
from vaultwatch.agent.daemon import Agent, schedule_text
from vaultwatch.agent.journal import Journal
from vaultwatch.engine.repository import Repository
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
