"""The engine backing up into and restoring from a tenant's vault through the gateway (as a managed vault)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import S3Endpoint
from tests.engine.treecompare import build_tree, describe
from tests.gateway.harness import GatewayServer, running_gateway
from vaultwatch.catalog.vaults import get_tenant_vault
from vaultwatch.engine.backup import backup
from vaultwatch.engine.check import check
from vaultwatch.engine.keys import KdfParams
from vaultwatch.engine.managed import ManagedRepository
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import restore
from vaultwatch.store.base import Store
from vaultwatch.store.errors import StorePermissionError
from vaultwatch.store.url import open_store

FAST_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
PASSPHRASE = "correct horse battery staple"


def test_backup_restore_and_check(gateway: GatewayServer, tmp_path: Path) -> None:
    backup_restore_and_check(gateway, tmp_path, gateway.vault)


@pytest.mark.s3
@pytest.mark.parametrize("server", ["s3_endpoint", "seaweedfs_endpoint"], ids=["moto", "seaweedfs"])
def test_backup_restore_and_check_with_vaults_on_s3(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The same, with the server's vaults in an S3 bucket: moto, and SeaweedFS, a real S3 server."""
    endpoint: S3Endpoint = request.getfixturevalue(server)
    vault_url = f"s3:{endpoint.url}/vw-vaults-{uuid.uuid4().hex[:12]}/vaults"
    with running_gateway(tmp_path / "data", None, "sqlite", vault_url=vault_url) as gateway:

        def vault(tenant_id: uuid.UUID) -> Store:
            return open_store(gateway.settings.vault_location(str(tenant_id)))

        backup_restore_and_check(gateway, tmp_path, vault)
        agent = gateway.enroll()  # each tenant under its own key prefix of the one bucket
        assert vault(agent.tenant_id).location == f"{vault_url}/{agent.tenant_id}"


def backup_restore_and_check(
    gateway: GatewayServer, tmp_path: Path, server_vault: Callable[[uuid.UUID], Store]
) -> None:
    """Two backups through the gateway, restores of both, and a check of the vault behind it."""
    agent = gateway.enroll()
    source = tmp_path / "src"
    build_tree(source)
    store = gateway.store(agent.credential)
    repo = ManagedRepository.init(store, PASSPHRASE, kdf=FAST_KDF, pack_size=2 * 1024 * 1024)
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
    server_side = Repository.open(server_vault(agent.tenant_id), PASSPHRASE)
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
    repo = ManagedRepository.init(store, PASSPHRASE, kdf=FAST_KDF)
    (tmp_path / "f").write_text("through the URL")
    backup(repo, [str(tmp_path / "f")])
    assert len(repo.snapshots()) == 1
    repo.close()
