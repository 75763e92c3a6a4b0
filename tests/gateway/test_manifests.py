"""Reference manifests through the real gateway: checked, stamped, append-only like the rest.

Also what an agent's credential still cannot do now that the service applies
retention: forget snapshots or prune data, with the real ``vaultwatch repo``
commands pointed at the gateway.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import blake3
import pytest
from typer.testing import CliRunner

from tests.gateway.harness import GatewayServer, upload
from tests.gateway.test_vault_api import _problem
from vaultwatch.agent.vault import AgentRepository
from vaultwatch.cli.main import app
from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.keys import KdfParams
from vaultwatch.engine.manifest import Manifest

FAST_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
PASSPHRASE = "correct horse battery staple"
SNAPSHOT = "ab" * 32


def _manifest(snapshot: str = SNAPSHOT, **changes: object) -> bytes:
    m = Manifest(
        snapshot=snapshot,
        time=datetime.now(UTC),
        hostname="srv1",
        paths=["/srv/docs"],
        tags=["set:docs"],
        packs=["cd" * 32],
        backup_set="docs",
    )
    doc = m.to_dict()
    doc.update(changes)
    return json.dumps(doc).encode()


def test_a_manifest_is_stamped_with_its_agent_and_the_server_time(gateway: GatewayServer) -> None:
    agent = gateway.enroll(hostname="db-7")
    client = gateway.client(agent.credential)
    before = datetime.now(UTC)
    assert upload(client, f"manifests/{SNAPSHOT}", _manifest()).status_code == 201
    stored = Manifest.from_json(
        gateway.vault(agent.tenant_id).get(f"manifests/{SNAPSHOT}"), f"manifests/{SNAPSHOT}"
    )
    assert stored.received is not None
    assert stored.received.agent_id == str(agent.agent_id)
    assert stored.received.hostname == "db-7"
    assert before - timedelta(seconds=5) <= stored.received.at <= datetime.now(UTC)
    assert stored.packs == ["cd" * 32]
    # Append-only like every other object.
    _problem(upload(client, f"manifests/{SNAPSHOT}", _manifest()), 409, "object-exists")
    r = client.delete(f"/api/v1/vault/objects/manifests/{SNAPSHOT}")
    assert r.status_code == 403


def test_a_stamp_in_the_upload_is_replaced_by_the_gateways(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    forged = {
        "agent": "00000000-0000-0000-0000-000000000000",
        "hostname": "x",
        "at": "2001-01-01T00:00:00+00:00",
    }
    assert upload(client, f"manifests/{SNAPSHOT}", _manifest(received=forged)).status_code == 201
    stored = Manifest.from_json(
        gateway.vault(agent.tenant_id).get(f"manifests/{SNAPSHOT}"), f"manifests/{SNAPSHOT}"
    )
    assert stored.received is not None and stored.received.agent_id == str(agent.agent_id)
    assert stored.received.at.year >= 2026


def test_no_manifest_for_a_snapshot_that_already_exists(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    snapshot = b"an old snapshot"
    sid = blake3.blake3(snapshot).hexdigest()
    gateway.vault(agent.tenant_id).put(f"snapshots/{sid}", snapshot)  # made before retention
    doc = _problem(upload(client, f"manifests/{sid}", _manifest(sid, packs=[])), 422)
    assert "written before its snapshot" in str(doc["detail"])


def test_a_snapshot_is_taken_only_after_its_manifest(gateway: GatewayServer) -> None:
    """A snapshot whose references are unknown would stop the collection of the whole vault."""
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    vault = gateway.vault(agent.tenant_id)
    snapshot = b"a new snapshot"
    sid = blake3.blake3(snapshot).hexdigest()
    doc = _problem(upload(client, f"snapshots/{sid}", snapshot), 422)
    assert "no reference manifest" in str(doc["detail"])
    assert not vault.exists(f"snapshots/{sid}")
    assert upload(client, f"manifests/{sid}", _manifest(sid)).status_code == 201
    assert upload(client, f"snapshots/{sid}", snapshot).status_code == 201
    assert vault.get(f"snapshots/{sid}") == snapshot


@pytest.mark.parametrize(
    ("name", "body", "why"),
    [
        (f"manifests/{SNAPSHOT}", b"{not json", "not a valid reference manifest"),
        (f"manifests/{SNAPSHOT}", _manifest("ef" * 32), "not its own"),
        (f"manifests/{SNAPSHOT}", _manifest(packs=["nothex"]), "pack must be"),
        ("manifests/short", _manifest(), "named by their snapshot"),
        ("retention/state", b"{}", "not a repository object"),
        (f"trash/snapshots/{SNAPSHOT}", b"x", "not a repository object"),
    ],
)
def test_bad_manifests_and_service_objects_are_refused(
    gateway: GatewayServer, name: str, body: bytes, why: str
) -> None:
    agent = gateway.enroll()
    doc = _problem(upload(gateway.client(agent.credential), name, body), 422)
    assert why in str(doc["detail"])


def _repo_cli(gateway: GatewayServer, credential: str, *args: str) -> tuple[int, str]:
    env = {
        "VAULTWATCH_AGENT_CREDENTIAL": credential,
        "VAULTWATCH_CA_CERT": str(gateway.ca_cert),
        "VAULTWATCH_PASSPHRASE": PASSPHRASE,
        "VAULTWATCH_REPO": f"vw+https://127.0.0.1:{gateway.port}",
    }
    result = CliRunner().invoke(app, ["repo", *args], env=env)
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def test_an_agent_credential_cannot_forget_or_prune(gateway: GatewayServer, tmp_path: Path) -> None:
    agent = gateway.enroll()
    repo = AgentRepository.init(gateway.store(agent.credential), PASSPHRASE, kdf=FAST_KDF)
    for n in range(2):
        (tmp_path / "f").write_bytes(os.urandom(50_000) + bytes([n]))
        backup(repo, [str(tmp_path / "f")], BackupOptions(tags=["set:docs"]))
    repo.close()
    vault = gateway.vault(agent.tenant_id)
    before = {o.name for o in vault.list("snapshots/")}
    assert len(before) == 2

    code, output = _repo_cli(gateway, agent.credential, "forget", "--keep-last", "1")
    assert code != 0 and "append-only" in output
    assert {o.name for o in vault.list("snapshots/")} == before

    # Something for prune to remove: a stored pack no index lists.
    junk = os.urandom(1000)
    h = blake3.blake3(junk).hexdigest()
    assert upload(gateway.client(agent.credential), f"data/{h[:2]}/{h}", junk).status_code == 201
    code, output = _repo_cli(gateway, agent.credential, "prune")
    assert code != 0 and "append-only" in output
    assert vault.exists(f"data/{h[:2]}/{h}")
    assert {o.name for o in vault.list("snapshots/")} == before


def test_repo_backup_through_the_gateway_writes_manifests(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    """A customer's own ``repo backup`` into the managed vault keeps retention able to collect."""
    agent = gateway.enroll()
    AgentRepository.init(gateway.store(agent.credential), PASSPHRASE, kdf=FAST_KDF).close()
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(40_000))
    code, output = _repo_cli(gateway, agent.credential, "backup", str(src), "--tag", "set:docs")
    assert code == 0, output
    (src / "b").write_text("more\n")
    code, output = _repo_cli(gateway, agent.credential, "backup", str(src))
    assert code == 0, output
    vault = gateway.vault(agent.tenant_id)
    snapshots = [o.name.split("/", 1)[1] for o in vault.list("snapshots/")]
    assert len(snapshots) == 2
    for sid in snapshots:
        manifest = Manifest.from_json(vault.get(f"manifests/{sid}"), f"manifests/{sid}")
        assert manifest.packs
        assert manifest.received is not None
        assert manifest.received.agent_id == str(agent.agent_id)
    assert {Manifest.from_json(vault.get(f"manifests/{sid}")).backup_set for sid in snapshots} == {
        "docs",
        None,
    }
