"""Job reports from the agent daemon to a real gateway: a partial backup's, and one it refuses."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.conftest import FakeClock, base_doc, config_from
from tests.agent.test_jobs import FAST_KDF, PASSPHRASE, make_tree
from tests.gateway.harness import GatewayServer, running_gateway
from vaultwatch.agent.daemon import Agent
from vaultwatch.catalog import Job, JobState
from vaultwatch.engine.repository import Repository


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gateway") / "data", None, "sqlite") as gw:
        yield gw


def _agent(tmp_path: Path, gateway: GatewayServer, paths: list[str]) -> Agent:
    enrolled = gateway.enroll()
    doc = base_doc(tmp_path, a={"name": "www", "paths": paths, "mode": "continuous"})
    doc["agent"]["id"] = str(enrolled.agent_id)
    doc["server"] = {
        "urls": [gateway.url],
        "credential": enrolled.credential,
        "ca_cert": str(gateway.ca_cert),
        "timeout": "10s",
    }
    config = config_from(doc, tmp_path)
    (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
    store = gateway.store(enrolled.credential)
    try:
        Repository.init(store, PASSPHRASE, kdf=FAST_KDF)
    finally:
        store.close()
    return Agent(config, clock=FakeClock())  # the vault through the gateway


def _job_state(gateway: GatewayServer, job_uid: str) -> JobState:
    with gateway.catalog.session() as session:
        job = session.get(Job, uuid.UUID(job_uid))
        assert job is not None
        return job.state


def test_a_partial_backup_is_reported_and_a_refused_report_is_kept(
    tmp_path: Path,
    gateway: GatewayServer,
    unreadable_file: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = tmp_path / "data"
    make_tree(data, files=6, size=4096)
    agent = _agent(tmp_path, gateway, [str(data), unreadable_file])
    try:
        assert agent.heartbeat_once() is True
        assert agent.run_once()
        (pending,) = agent.journal.pending_reports()
        assert pending.body["state"] == "partial"
        assert (pending.body["files_done"], pending.body["files_total"]) == (7, 8)
        assert pending.body["snapshot"]["files_total"] == 7
        assert agent.send_reports_once() is True
        assert _job_state(gateway, pending.job_uid) == JobState.PARTIAL  # not running forever
        assert agent.status_document()["refused_reports"] == []

        # A report the gateway refuses for good: a warning with the problem, kept in the status.
        job = agent.journal.create_job("www", "changes")
        agent.journal.put_report(job.job_uid, {**pending.body, "files_done": -1})
        with caplog.at_level(logging.WARNING, logger="vaultwatch"):
            assert agent.send_reports_once() is True
        assert agent.journal.pending_reports() == []  # later reports are not held up
        warning = next(r for r in caplog.records if job.job_uid in r.getMessage())
        assert warning.levelno == logging.WARNING
        assert "HTTP 422" in warning.getMessage() and "files_done" in warning.getMessage()
        (refused,) = agent.status_document()["refused_reports"]
        assert refused["job_uid"] == job.job_uid and refused["http_status"] == 422
        assert refused["state"] == "partial" and "files_done" in refused["problem"]
        agent.write_status()
    finally:
        agent.shutdown()
        agent.journal.close()

    restarted = _agent(tmp_path, gateway, [str(data)])
    try:  # still shown after a restart
        assert [r["job_uid"] for r in restarted.status_document()["refused_reports"]] == [
            job.job_uid
        ]
    finally:
        restarted.shutdown()
        restarted.journal.close()
