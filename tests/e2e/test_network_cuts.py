"""A large backup through a faulty network: connections cut mid-upload, the agent killed, the gateway restarted.

Each time the backup completes, at most one pack is sent again per fault
(counted per object name from every PUT that reached the server, cut or
not), the vault passes a full check (data read back) and the restore is
byte-identical. During an outage the job is ``waiting_for_network``.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    Agent,
    Service,
    data_puts,
    inflight_data_puts,
    make_data,
    resent_packs,
    sent_data_bytes,
    start_service,
    tree_digest,
)
from tests.e2e.tcpproxy import TcpProxy
from vaultwatch.agent.daemon import STOP_GRACE
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.models import Job, JobState
from vaultwatch.engine.check import check
from vaultwatch.engine.restore import restore
from vaultwatch.server_config import load_settings
from vaultwatch.store.local import LocalStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DATA_BYTES = 64 * 1024 * 1024
PACK_SIZE = 8 * 1024 * 1024  # the vault's default pack size
UPLINK = 12 * 1024 * 1024  # bytes/s through the proxy: an 8 MiB pack takes ~0.7 s to send


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bulk") / "data"
    make_data(root, DATA_BYTES)
    return root


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = start_service(tmp_path)
    yield svc
    svc.server.kill()


@pytest.fixture
def proxy(service: Service) -> Iterator[TcpProxy]:
    p = TcpProxy(("127.0.0.1", service.server.port), rate=UPLINK)
    yield p
    p.close()


def make_agent(tmp_path: Path, service: Service, proxy: TcpProxy, data: Path) -> Agent:
    return Agent(
        tmp_path / "agent",
        service,
        f"https://127.0.0.1:{proxy.port}",
        [{"name": "bulk", "paths": [str(data)], "mode": "scheduled", "interval": "1d"}],
        agent={"heartbeat": "2s"},
        network={"backoff_initial": "200ms", "backoff_max": "1s"},
    )


def done_data_puts(service: Service) -> int:
    return sum(
        1
        for e in service.server.uploads()
        if e["event"] == "done" and e["name"].startswith("data/") and e["status"] == 201
    )


def wait_mid_upload(agent: Agent, service: Service, committed: int) -> None:
    """Until at least ``committed`` packs are stored and another one is being sent."""
    agent.wait(
        f"{committed} packs stored and one in flight",
        lambda: (
            done_data_puts(service) >= committed
            and bool(inflight_data_puts(service.server.uploads()))
        ),
        60,
    )
    time.sleep(0.2)  # well inside the body of that upload


def job_state(agent: Agent) -> str:
    return str(agent.status().get("state", ""))


def watch_outage(agent: Agent, seconds: float) -> set[str]:
    """The agent's states seen during an outage of ``seconds``."""
    seen = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add(job_state(agent))
        time.sleep(0.1)
    return seen


def wait_success(agent: Agent) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        s = agent.status().get("backup_sets", {}).get("bulk", {})
        if s.get("last_state") == "failed":
            raise AssertionError(f"the job failed: {s.get('last_error')}")
        return s if s.get("last_state") == "succeeded" else None

    result: dict[str, Any] = agent.wait("the backup to succeed", done, 90)
    agent.wait("every report delivered", lambda: agent.status().get("pending_reports") == 0, 60)
    return result


def verify(service: Service, agent: Agent, data: Path, tmp_path: Path, faults: int) -> int:
    """Every check of a finished backup; returns the number of packs sent again."""
    events = service.server.uploads()
    resent = resent_packs(events)
    puts = data_puts(events)
    stored = sum(o.size for o in LocalStore(service.vault_dir).list("data/"))
    extra = sent_data_bytes(events) - stored
    print(
        f"{faults} fault(s): {len(puts)} packs stored ({stored / 2**20:.1f} MiB), "
        f"{resent} sent again by name, {extra / 2**20:.1f} MiB sent beyond what is stored"
    )
    assert resent <= faults, f"{resent} packs sent again for {faults} faults"
    # Whatever the names: no more than one pack's worth of bytes sent again per fault.
    assert extra <= faults * (PACK_SIZE + 2**20), extra  # a pack may overshoot by a chunk

    repo = service.open_vault(agent.passphrase)
    result = check(repo, read_data=True)
    assert result.ok, [str(p) for p in result.errors]
    assert not result.warnings, [str(p) for p in result.warnings]
    snaps = repo.snapshots()
    assert len(snaps) == 1
    target = tmp_path / "restored"
    restore(repo, snaps[0], target)
    assert tree_digest(target / str(data).lstrip("/")) == tree_digest(data)

    # One job from start to end, whatever happened on the way.
    catalog = Catalog(load_settings(service.data_dir).catalog_url)
    try:
        with catalog.session(tenant_id=uuid.UUID(service.tenant_id)) as session:
            jobs = session.query(Job).all()
            assert [j.state for j in jobs] == [JobState.SUCCEEDED]
            assert jobs[0].snapshot_id is not None
            job_id = str(jobs[0].id)
    finally:
        catalog.dispose()
    # Every lock is gone, including one a killed agent left (removed as stale on resuming).
    assert list(LocalStore(service.vault_dir).list("locks/")) == []
    rec = agent.status()["backup_sets"]["bulk"]
    assert rec["last_snapshot"] == snaps[0].id
    assert job_id
    return resent


def test_cuts_mid_upload(service: Service, proxy: TcpProxy, data: Path, tmp_path: Path) -> None:
    agent = make_agent(tmp_path, service, proxy, data)
    agent.start()
    states: set[str] = set()
    cuts = 0
    try:
        for committed in (1, 3, 5):
            wait_mid_upload(agent, service, committed)
            proxy.refuse()
            assert proxy.cut() > 0
            cuts += 1
            states |= watch_outage(agent, 2.0)
            proxy.accept()
        wait_success(agent)
    finally:
        agent.kill()
    assert "waiting_for_network" in states, states
    verify(service, agent, data, tmp_path, cuts)


def test_agent_killed_mid_job(
    service: Service, proxy: TcpProxy, data: Path, tmp_path: Path
) -> None:
    agent = make_agent(tmp_path, service, proxy, data)
    agent.start()
    try:
        wait_mid_upload(agent, service, 3)
        job_uid = agent.wait(
            "the job in the status", lambda: (agent.status().get("job") or {}).get("job_uid"), 5
        )
        stored_before = {
            e["name"]
            for e in service.server.uploads()
            if e["event"] == "done" and e["name"].startswith("data/")
        }
        agent.kill(signal.SIGKILL)
        agent.start()
        agent.wait(
            "the job to resume",
            lambda: (
                (agent.status().get("job") or {}).get("job_uid") == job_uid
                and agent.status().get("pid") == agent.pid
            ),
            30,
        )
        wait_success(agent)
    finally:
        agent.kill()
    resent = verify(service, agent, data, tmp_path, 1)
    # The packs stored before the kill were adopted, none of them sent again.
    puts = data_puts(service.server.uploads())
    assert all(puts[name] == 1 for name in stored_before)
    assert resent <= 1
    repo = service.open_vault(agent.passphrase)
    summary = repo.snapshots()[0].summary
    # The first snapshot of this data, yet files count as unmodified: the resumed job took
    # them from its journal instead of reading them again.
    assert summary["files_unmodified"] > 0, summary
    assert "resuming" in agent.tail(100_000)


def test_gateway_restarted_mid_job(
    service: Service, proxy: TcpProxy, data: Path, tmp_path: Path
) -> None:
    agent = make_agent(tmp_path, service, proxy, data)
    agent.start()
    try:
        wait_mid_upload(agent, service, 2)
        service.server.kill(signal.SIGKILL)
        states = watch_outage(agent, 2.0)
        service.server.start()
        wait_success(agent)
    finally:
        agent.kill()
    assert "waiting_for_network" in states, states
    verify(service, agent, data, tmp_path, 1)


def test_agent_stopped_mid_job(
    service: Service, proxy: TcpProxy, data: Path, tmp_path: Path
) -> None:
    """systemctl stop during a long upload: exit within the grace period, resume at the next start."""
    proxy.bucket.rate = 4 * 1024 * 1024  # the rest of the upload outlasts the grace period
    agent = make_agent(tmp_path, service, proxy, data)
    agent.start()
    try:
        wait_mid_upload(agent, service, 1)
        job_uid = agent.wait(
            "the job in the status", lambda: (agent.status().get("job") or {}).get("job_uid"), 5
        )
        assert agent.proc is not None
        started = time.monotonic()
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(timeout=30) == 0
        stop_seconds = time.monotonic() - started
        print(f"stopped mid-job in {stop_seconds:.1f}s")
        assert stop_seconds < STOP_GRACE + 3, agent.tail()
        # Either the backup stopped at the cancel (the engine drops queued reads) and the agent
        # exited by itself, or the grace period ran out first: the job stays open either way.
        tail = agent.tail()
        assert "stopping mid-job" in tail or "agent stopped" in tail, tail
        assert agent.status_cli()["state"] == "stopped"
        proxy.bucket.rate = UPLINK
        agent.start()
        wait_success(agent)
    finally:
        agent.kill()
    verify(service, agent, data, tmp_path, 1)
    assert f"resuming interrupted job {job_uid}" in agent.tail(100_000)
