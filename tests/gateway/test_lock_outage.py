"""A network outage longer than the lock's stale age during a backup through the gateway.

The agent's store retries forever, so the backup would simply wait for the
network; but once the outage outlasts what the lock allows, another client may
take the lock for stale and prune. The backup must stop before that moment and
commit nothing (timings scaled down from minutes to seconds).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.tcpproxy import TcpProxy
from tests.gateway.harness import GatewayServer, running_gateway
from vaultwatch.engine import lock as lockmod
from vaultwatch.engine.backup import backup
from vaultwatch.engine.errors import LockLostError
from vaultwatch.engine.keys import KdfParams
from vaultwatch.engine.lock import list_locks, locked
from vaultwatch.engine.managed import ManagedRepository
from vaultwatch.engine.repository import Repository
from vaultwatch.store.http import GatewayStore, RetryPolicy

FAST_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    """A gateway of this test's own: uploads cut by the outage can leave spool files until a restart,
    which the session's shared gateway (whose tests check its spool is empty) must not see."""
    with running_gateway(tmp_path / "gateway", None, "sqlite") as gw:
        yield gw


def test_a_backup_stops_before_its_unrefreshed_lock_goes_stale(
    gateway: GatewayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lockmod, "REFRESH_EVERY", 0.2)
    monkeypatch.setattr(lockmod, "RETRY_EVERY", 0.1)
    monkeypatch.setattr(lockmod, "GIVE_UP_AFTER", 1.0)
    monkeypatch.setattr(lockmod, "STALE_AFTER", 2.0)
    agent = gateway.enroll()
    source = tmp_path / "src"
    source.mkdir()
    for i in range(16):
        (source / f"f{i:02}.bin").write_bytes(os.urandom(512 * 1024))
    proxy = TcpProxy(("127.0.0.1", gateway.port), rate=1.5 * 1024 * 1024)
    forever = RetryPolicy(max_attempts=None, base_delay=0.05, max_delay=0.2)
    store = GatewayStore(
        f"https://127.0.0.1:{proxy.port}", agent.credential, gateway.ca_cert, retry=forever
    )
    repo = ManagedRepository.init(store, PASSPHRASE, kdf=FAST_KDF, pack_size=1024 * 1024)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            backup(repo, [str(source)])
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.0)  # packs are flowing
    assert not outcome, "the backup outlasts the start of the outage"
    proxy.outage(3.0)  # longer than STALE_AFTER
    # Meanwhile the lock is stale for everyone else: the server side may take it.
    vault = gateway.vault(agent.tenant_id)
    worker.join(60)
    proxy.close()
    assert outcome and isinstance(outcome[0], LockLostError), outcome
    with locked(vault, exclusive=True, purpose="prune"):
        pass  # the backup's lock was stale or released: a prune could run now
    assert list_locks(vault) == []
    reader = Repository.open(gateway.store(agent.credential), PASSPHRASE)
    assert reader.snapshots() == []  # nothing was committed on top of a lost lock
    reader.close()
    repo.close()
