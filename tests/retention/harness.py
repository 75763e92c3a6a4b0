"""A managed vault for retention tests: a tenant, its enrolled agent, and backups through the gateway.

Backups run the real engine with the agent's repository (manifests, skipped
unchanged snapshots) over HTTPS to the real gateway; retention runs the way
the service runs it, on the catalog and the vault storage behind the gateway.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.gateway.harness import EnrolledAgent, GatewayServer, heartbeat_body
from vaultwatch.agent.vault import AgentRepository
from vaultwatch.catalog.models import BackupSet
from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.keys import KdfParams
from vaultwatch.engine.manifest import Manifest
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import restore
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.retention.policy import set_operator_retention
from vaultwatch.retention.run import RunOptions, VaultOutcome, run_retention
from vaultwatch.store.local import LocalStore

PASSPHRASE = "correct horse battery staple"
FAST_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
SET = "docs"
HOST = "srv1"


@dataclass
class ManagedVault:
    """One tenant's vault as its agent writes it and the service sees it."""

    gateway: GatewayServer
    agent: EnrolledAgent
    repo: AgentRepository
    source: Path
    work: Path

    @classmethod
    def create(cls, gateway: GatewayServer, tmp_path: Path) -> ManagedVault:
        """Enroll an agent, report its set, initialise the vault."""
        agent = gateway.enroll(hostname=HOST)
        source = tmp_path / "docs"
        source.mkdir()
        body = heartbeat_body(
            hostname=HOST,
            backup_sets=[
                {"name": SET, "paths": [str(source)], "mode": "continuous", "rpo_seconds": 900}
            ],
        )
        r = gateway.client(agent.credential).post("/api/v1/heartbeat", json=body)
        assert r.status_code == 200, r.text
        repo = AgentRepository.init(
            gateway.store(agent.credential), PASSPHRASE, kdf=FAST_KDF, pack_size=1024 * 1024
        )
        assert isinstance(repo, AgentRepository)
        return cls(gateway, agent, repo, source, tmp_path)

    @property
    def tenant_id(self) -> uuid.UUID:
        """The tenant."""
        return self.agent.tenant_id

    def backup(self, files: dict[str, bytes]) -> Snapshot:
        """Make the set's directory hold exactly ``files`` and back it up as the agent does."""
        shutil.rmtree(self.source)
        self.source.mkdir()
        for name, data in files.items():
            (self.source / name).write_bytes(data)
        options = BackupOptions(tags=[f"set:{SET}"], hostname=HOST)
        result = backup(self.repo, [str(self.source)], options)
        assert not result.errors
        return result.snapshot

    def server(self) -> LocalStore:
        """The vault's storage as the service sees it."""
        return self.gateway.vault(self.tenant_id)

    def names(self, prefix: str = "") -> set[str]:
        """Every object under ``prefix`` in the vault's storage."""
        return {o.name for o in self.server().list(prefix)}

    def manifest(self, snapshot_id: str) -> Manifest:
        """A snapshot's manifest as stored."""
        name = f"manifests/{snapshot_id}"
        return Manifest.from_json(self.server().get(name), name)

    def set_policy(self, doc: dict[str, Any] | None) -> None:
        """An operator policy for the set."""
        with self.gateway.catalog.session() as session:
            rows = [
                bs
                for bs in session.query(BackupSet).filter(BackupSet.tenant_id == self.tenant_id)
                if bs.name == SET
            ]
            set_operator_retention(session, rows, doc, actor="system:test")

    def run(self, **options: Any) -> VaultOutcome:
        """Run retention on this tenant's vault only."""
        report = run_retention(
            self.gateway.catalog.session, RunOptions(tenant_id=self.tenant_id, **options)
        )
        assert len(report.vaults) == 1
        return report.vaults[0]

    def restored(self, snapshot_id: str, name: str) -> dict[str, bytes]:
        """Restore a snapshot with a fresh reader over the gateway; the set's files by name."""
        reader = Repository.open(self.gateway.store(self.agent.credential), PASSPHRASE)
        try:
            target = self.work / f"restore-{name}"
            result = restore(reader, reader.find_snapshot(snapshot_id), target)
            assert not result.errors, result.errors
        finally:
            reader.close()
        where = target / self.source.relative_to("/")
        return {p.name: p.read_bytes() for p in sorted(where.iterdir())}

    def close(self) -> None:
        """Release the agent's connections."""
        self.repo.close()


def random_files(*names: str, size: int = 200_000) -> dict[str, bytes]:
    """Files of random (incompressible, never deduplicated) content."""
    return {name: os.urandom(size) for name in names}


def at(snapshot: Snapshot) -> datetime:
    """A snapshot's time."""
    return snapshot.time
