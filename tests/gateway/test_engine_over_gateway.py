"""The engine, unchanged, backing up into and restoring from a tenant's vault through the gateway."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.engine.treecompare import build_tree, describe
from tests.gateway.harness import GatewayServer
from vaultwatch.catalog.vaults import get_tenant_vault
from vaultwatch.engine.backup import backup
from vaultwatch.engine.check import check
from vaultwatch.engine.keys import KdfParams
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import restore
from vaultwatch.store.errors import StorePermissionError

FAST_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
PASSPHRASE = "correct horse battery staple"


def test_backup_restore_and_check(gateway: GatewayServer, tmp_path: Path) -> None:
    agent = gateway.enroll()
    source = tmp_path / "src"
    build_tree(source)
    store = gateway.store(agent.credential)
    repo = Repository.init(store, PASSPHRASE, kdf=FAST_KDF, pack_size=2 * 1024 * 1024)
    with gateway.catalog.session(tenant_id=agent.tenant_id) as session:
        vault = get_tenant_vault(session, agent.tenant_id)
        assert vault is not None and vault.vault_id == repo.config.repo_id  # from its config
    first = backup(repo, [str(source)])
    assert not first.errors
    assert first.files_new > 5

    # A small change: only the changed file is read and only its new chunks are sent.
    (source / "small.txt").write_text("changed\n")
    (source / "new.bin").write_bytes(os.urandom(300_000))
    second = backup(repo, [str(source)])
    assert second.snapshot.parent == first.snapshot.id
    assert second.files_new == 1 and second.files_changed == 1
    assert second.bytes_added < 400_000
    repo.close()

    # Another process (the restore) opens the vault through the gateway afresh.
    reader = Repository.open(gateway.store(agent.credential), PASSPHRASE)
    assert [s.id for s in reader.snapshots()] == [first.snapshot.id, second.snapshot.id]
    target = tmp_path / "restored"
    result = restore(reader, reader.find_snapshot("latest"), target)
    assert not result.errors
    assert describe(target / source.relative_to("/")) == describe(source)
    result = restore(reader, reader.find_snapshot(first.snapshot.id), tmp_path / "first")
    assert not result.errors
    assert (tmp_path / "first" / source.relative_to("/") / "small.txt").read_text() == (
        "hello vault\n" * 10
    )
    assert list(reader.store.list("locks/")) == []  # every lock was released
    # What the agent is not allowed to do, it cannot do through the engine either.
    with pytest.raises(StorePermissionError):
        reader.delete_snapshot(first.snapshot.id)
    reader.close()

    # The vault on the server is a sound repository on its own.
    server_side = Repository.open(gateway.vault(agent.tenant_id), PASSPHRASE)
    report = check(server_side, read_data=True)
    assert report.ok, report.to_dict()
    assert report.snapshots == 2 and report.packs_read == report.packs


def test_vault_url_opens_gateway_store(
    gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vaultwatch.store.http import GatewayStore
    from vaultwatch.store.url import open_store

    agent = gateway.enroll()
    monkeypatch.setenv("VAULTWATCH_AGENT_CREDENTIAL", agent.credential)
    monkeypatch.setenv("VAULTWATCH_CA_CERT", str(gateway.ca_cert))
    store = open_store(f"vw+https://127.0.0.1:{gateway.port}")
    assert isinstance(store, GatewayStore)
    assert store.location == f"vw+https://127.0.0.1:{gateway.port}"
    assert agent.credential not in repr(store) and agent.credential not in store.location
    repo = Repository.init(store, PASSPHRASE, kdf=FAST_KDF)
    (tmp_path / "f").write_text("through the URL")
    backup(repo, [str(tmp_path / "f")])
    assert len(repo.snapshots()) == 1
    repo.close()
