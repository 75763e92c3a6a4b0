"""Continuous protection end to end: a real server over TLS, an enrolled agent process, a folder.

A file written, changed or deleted is in a snapshot within seconds; the
server's catalog gets the heartbeats, backup sets and job reports; the
agent's status and /metrics say the same.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Agent, Service, free_port, start_service
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.models import Agent as AgentRow
from vaultwatch.catalog.models import BackupSet, Job, JobState
from vaultwatch.engine.errors import EngineError, SnapshotNotFoundError
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import dump
from vaultwatch.server_config import load_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = start_service(tmp_path)
    yield svc
    svc.server.kill()


def latest_content(repo: Repository, path: Path) -> bytes | None:
    """The file's content in the newest snapshot (None when absent or no snapshot yet)."""
    repo.load_index(reload=True)
    try:
        snap = repo.find_snapshot("latest")
    except SnapshotNotFoundError:
        return None
    out = io.BytesIO()
    try:
        dump(repo, snap, str(path), out)
    except EngineError as exc:
        if "is not in snapshot" in str(exc):
            return None
        raise
    return out.getvalue()


def test_changes_reach_a_snapshot_within_seconds(service: Service, tmp_path: Path) -> None:
    protected = tmp_path / "protected"
    (protected / "docs").mkdir(parents=True)
    (protected / "docs" / "existing.txt").write_text("from before the agent started\n")
    metrics_port = free_port()
    agent = Agent(
        tmp_path / "agent",
        service,
        service.server.url,
        [
            {
                "name": "docs",
                "paths": [str(protected)],
                "mode": "continuous",
                "quiet": "1s",
                "max_delay": "5s",
                "excludes": ["*.swp"],
            }
        ],
        agent={"heartbeat": "2s"},
        metrics_port=metrics_port,
    )
    agent.start()
    try:
        # The first pass at start-up backs up what is there.
        agent.wait(
            "the first snapshot",
            lambda: agent.status().get("backup_sets", {}).get("docs", {}).get("last_snapshot"),
            60,
        )
        repo = service.open_vault(agent.passphrase)
        assert latest_content(repo, protected / "docs" / "existing.txt") == (
            b"from before the agent started\n"
        )

        latencies = {}
        new = protected / "docs" / "new.txt"
        started = time.monotonic()
        new.write_text("written while protected\n")
        agent.wait(
            "the new file in a snapshot",
            lambda: latest_content(repo, new) == b"written while protected\n",
            20,
        )
        latencies["create"] = time.monotonic() - started

        started = time.monotonic()
        with open(new, "a") as f:
            f.write("and changed\n")
        agent.wait(
            "the change in a snapshot",
            lambda: latest_content(repo, new) == b"written while protected\nand changed\n",
            20,
        )
        latencies["modify"] = time.monotonic() - started

        started = time.monotonic()
        (protected / "docs" / "existing.txt").unlink()
        agent.wait(
            "the deletion in a snapshot",
            lambda: latest_content(repo, protected / "docs" / "existing.txt") is None,
            20,
        )
        latencies["delete"] = time.monotonic() - started
        print(f"change-to-snapshot latency: {latencies}")
        for what, seconds in latencies.items():
            assert seconds < 10, f"{what} took {seconds:.1f}s"

        # An excluded file is no change: no new snapshot for it.
        count = len(repo.snapshot_ids())
        (protected / "docs" / ".new.txt.swp").write_text("editor junk")
        time.sleep(2.5)
        assert len(repo.snapshot_ids()) == count

        status = agent.status_cli()
        assert status["running"] and status["state"] == "idle"
        assert status["backup_sets"]["docs"]["last_state"] == "succeeded"
        assert status["gateways"] == {service.server.url: True}
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'vaultwatch_agent_last_backup_success{backup_set="docs"} 1.0' in metrics
        assert 'vaultwatch_agent_state{vaultwatch_agent_state="idle"} 1.0' in metrics
        assert "vaultwatch_agent_uploaded_bytes_total" in metrics

        # The server knows the agent, its backup set and every job with its snapshot.
        agent.wait("every report delivered", lambda: agent.status().get("pending_reports") == 0, 10)
        settings = load_settings(service.data_dir)
        catalog = Catalog(settings.catalog_url)
        try:
            with catalog.session(tenant_id=uuid.UUID(service.tenant_id)) as session:
                row = session.query(AgentRow).one()
                assert row.hostname == "e2e-host"
                sets = session.query(BackupSet).all()
                assert [(s.name, s.paths, s.enabled) for s in sets] == [
                    ("docs", [str(protected)], True)
                ]
                jobs = session.query(Job).all()
                assert len(jobs) >= 4
                assert all(j.state == JobState.SUCCEEDED for j in jobs)
                assert all(j.snapshot_id is not None for j in jobs)
                assert all(j.backup_set_id == sets[0].id for j in jobs)
        finally:
            catalog.dispose()
    finally:
        agent.kill()
    log = agent.tail(100_000)
    assert "Traceback" not in log
    assert " WARNING " not in log and " ERROR " not in log, log  # every report and heartbeat taken


def test_a_dead_gateway_in_the_list_is_skipped(service: Service, tmp_path: Path) -> None:
    protected = tmp_path / "protected"
    protected.mkdir()
    (protected / "a.txt").write_text("a\n")
    dead = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    agent = Agent(
        tmp_path / "agent",
        service,
        service.server.url,
        [{"name": "docs", "paths": [str(protected)], "mode": "continuous", "quiet": "1s"}],
        agent={"heartbeat": "2s"},
        network={"backoff_initial": "100ms", "backoff_max": "500ms"},
    )
    text = agent.config.read_text()
    agent.config.write_text(
        text.replace(f'"{service.server.url}"', f'"{dead}", "{service.server.url}"')
    )
    agent.start()
    try:
        agent.wait(
            "a snapshot through the second gateway",
            lambda: agent.status().get("backup_sets", {}).get("docs", {}).get("last_snapshot"),
            60,
        )
        status = agent.wait(
            "both gateways probed",
            lambda: len(agent.status().get("gateways", {})) == 2 and agent.status(),
            10,
        )
        assert status["gateways"] == {dead: False, service.server.url: True}
        agent.wait(
            "the heartbeat through the second gateway",
            lambda: agent.status().get("last_heartbeat"),
            10,
        )
    finally:
        agent.kill()
    repo = service.open_vault(agent.passphrase)
    assert latest_content(repo, protected / "a.txt") == b"a\n"
