"""Many servers of one tenant: enrolled with the CLI, backing up as agent processes into one vault.

Each server joins the tenant's vault with a key slot of its own, backs up,
and is restored with `vaultwatch agent restore` from its own configuration,
byte for byte. A server whose passphrase does not open the vault stops
trying and says so, to its status and to the service.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import VW, Agent, Service, make_data, start_service, tree_digest, vw
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.models import Heartbeat, Job, JobState
from vaultwatch.engine import keys
from vaultwatch.server_config import load_settings
from vaultwatch.store.local import LocalStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = start_service(tmp_path)
    yield svc
    svc.server.kill()


def protected_set(root: Path, seed: int) -> list[dict[str, object]]:
    make_data(root, 2_000_000, seed=seed)
    (root / "shared.txt").write_text("the same on every server\n")
    # A failed job would be tried again after a second: a retry would show at once.
    return [
        {
            "name": "files",
            "paths": [str(root)],
            "mode": "continuous",
            "quiet": "1s",
            "retry_after": "1s",
        }
    ]


def last_snapshot(agent: Agent) -> str | None:
    snap = agent.status().get("backup_sets", {}).get("files", {}).get("last_snapshot")
    return str(snap) if snap else None


def test_three_servers_share_the_vault_and_each_restores_its_own_files(
    service: Service, tmp_path: Path
) -> None:
    agents: list[Agent] = []
    data: list[Path] = []
    for i, name in enumerate(("web-1", "web-2", "db-1")):
        protected = tmp_path / f"{name}-data"
        extra = () if not agents else ("--passphrase-file", str(agents[0].passphrase_path))
        agents.append(
            Agent(
                tmp_path / name,
                service,
                service.server.url,
                protected_set(protected, seed=i + 1),
                agent={"heartbeat": "2s"},
                hostname=name,
                enroll_args=extra,
            )
        )
        data.append(protected)
    for agent in agents:
        agent.start()
    try:
        for agent in agents:
            agent.wait("the first snapshot", lambda a=agent: last_snapshot(a), 120)
    finally:
        for agent in agents:
            agent.kill()

    slots = keys.load_slots(LocalStore(service.vault_dir))
    assert len(slots) == 3
    assert len({a.passphrase for a in agents}) == 3

    for agent, protected in zip(agents, data, strict=True):
        target = tmp_path / f"restore-{agent.root.name}"
        doc = json.loads(
            vw("agent", "restore", "--target", str(target), "--config", str(agent.config), "--json")
        )
        assert doc["errors"] == []
        assert tree_digest(target / protected.relative_to("/")) == tree_digest(protected)
        listed = json.loads(vw("agent", "snapshots", "--config", str(agent.config), "--json"))
        assert {s["hostname"] for s in listed} == {agent.root.name}

    for agent in agents:
        log = agent.tail(100_000)
        assert "Traceback" not in log and " ERROR " not in log, log


def test_a_server_whose_passphrase_does_not_open_the_vault_stops_and_says_why(
    service: Service, tmp_path: Path
) -> None:
    first = Agent(tmp_path / "one", service, service.server.url, [], hostname="one")
    second = Agent(
        tmp_path / "two",
        service,
        service.server.url,
        protected_set(tmp_path / "two-data", seed=7),
        agent={"heartbeat": "1s"},
        hostname="two",
        enroll_args=("--passphrase-file", str(first.passphrase_path)),
    )
    second.passphrase_path.write_text("a passphrase with no key slot\n")
    second.start()
    try:
        status = second.wait(
            "the agent to stop trying",
            lambda: second.status().get("blocked") and second.status(),
            60,
        )
        assert status["state"] == "blocked"
        assert "does not open with this agent's passphrase file" in status["blocked"]
        shown = subprocess.run(
            [*VW, "agent", "status", "--config", str(second.config)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert "no backups run" in shown.stderr and "vaultwatch agent join" in shown.stderr

        settings = load_settings(service.data_dir)
        catalog = Catalog(settings.catalog_url)

        def failed_jobs() -> list[Job]:
            with catalog.session() as session:
                return [j for j in session.query(Job).all() if j.state == JobState.FAILED]

        try:
            jobs = second.wait("the failed job reported", failed_jobs, 30)
            assert len(jobs) == 1 and "does not open" in jobs[0].errors[0]

            # It does not retry: still one job after several more heartbeats reached the service.
            def heartbeats() -> int:
                with catalog.session() as session:
                    return session.query(Heartbeat).count()

            seen = heartbeats()
            second.wait("a few seconds of heartbeats", lambda: heartbeats() >= seen + 4, 30)
            assert len(failed_jobs()) == 1
            with catalog.session() as session:
                assert session.query(Job).count() == 1
        finally:
            catalog.dispose()
    finally:
        second.kill()
