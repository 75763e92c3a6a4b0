"""Many servers of one tenant, one shared vault, a key slot per agent: enrolled against a real gateway."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.gateway.harness import GatewayServer, running_gateway
from vaultwatch.agent.config import AgentConfig, load_config
from vaultwatch.catalog import Tenant
from vaultwatch.cli.main import app
from vaultwatch.engine import keys
from vaultwatch.engine.repository import Repository
from vaultwatch.passphrases import read_passphrase_file
from vaultwatch.store.local import LocalStore

runner = CliRunner()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("members") / "data", None, "sqlite") as gw:
        yield gw


def enroll(
    gateway: GatewayServer, tenant: Tenant, root: Path, *extra: str
) -> tuple[int, str, Path]:
    """`vaultwatch agent enroll` of one server (its own config directory under ``root``)."""
    config = root / "etc" / "agent.toml"
    result = runner.invoke(
        app,
        [
            "agent",
            "enroll",
            "--server",
            gateway.url,
            "--token",
            gateway.token(tenant),
            "--ca-cert",
            str(gateway.ca_cert),
            "--config",
            str(config),
            "--state-dir",
            str(root / "state"),
            "--hostname",
            root.name,
            *extra,
        ],
    )
    return result.exit_code, result.output, config


def vault_of(gateway: GatewayServer, tenant: Tenant) -> LocalStore:
    return gateway.vault(tenant.id)


def opened_slot(gateway: GatewayServer, tenant: Tenant, config: AgentConfig) -> str:
    """The key slot the agent's own passphrase opens (read on the server's disk)."""
    repo = Repository.open(vault_of(gateway, tenant), read_passphrase_file(config.passphrase_file))
    return repo.slot.slot_id


def test_the_second_and_third_server_join_the_vault_with_key_slots_of_their_own(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    tenant = gateway.tenant()
    code, output, first_path = enroll(gateway, tenant, tmp_path / "web-1")
    assert code == 0, output
    assert "created the tenant's vault" in output and "vaultwatch agent key add" in output
    first = load_config(first_path)
    assert vault_of(gateway, tenant).exists("config")  # made at enrollment, not at first run

    configs = [first]
    for name in ("web-2", "db-1"):
        code, output, path = enroll(
            gateway, tenant, tmp_path / name, "--passphrase-file", str(first.passphrase_file)
        )
        assert code == 0, output
        assert "joined the tenant's vault" in output and "no longer needed" in output
        configs.append(load_config(path))

    slots = keys.load_slots(vault_of(gateway, tenant))
    assert len(slots) == 3 and {s.kind for s in slots} == {keys.PASSPHRASE}
    by_id = {s.slot_id: s for s in slots}
    passphrases = set()
    for cfg, name in zip(configs, ("web-1", "web-2", "db-1"), strict=True):
        assert cfg.key_slot in by_id
        assert by_id[cfg.key_slot].label == f"agent {cfg.agent_id} ({name})"
        assert cfg.passphrase_file == cfg.path.parent / "passphrase"  # its own file
        assert stat.S_IMODE(cfg.passphrase_file.stat().st_mode) == 0o600
        assert opened_slot(gateway, tenant, cfg) == cfg.key_slot
        passphrases.add(read_passphrase_file(cfg.passphrase_file))
    assert len(passphrases) == 3  # no server holds another's passphrase

    # On the vault itself, `repo key list` tells whose slot is whose.
    result = runner.invoke(
        app,
        [
            "repo", "key", "list", "-r", str(gateway.vault_dir(tenant.id)),
            "--passphrase-file", str(configs[1].passphrase_file), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    current = [d for d in json.loads(result.stdout) if d["current"]]
    assert [d["label"] for d in current] == [f"agent {configs[1].agent_id} (web-2)"]


def test_joining_an_existing_vault_without_a_passphrase_is_refused_and_join_finishes(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    tenant = gateway.tenant()
    code, output, first_path = enroll(gateway, tenant, tmp_path / "one")
    assert code == 0, output
    first = load_config(first_path)

    code, output, second_path = enroll(gateway, tenant, tmp_path / "two")
    assert code == 2, output
    assert "already has a vault" in output and "--passphrase-file" in output
    assert f"vaultwatch agent join --passphrase-file FILE --config {second_path}" in output
    assert "Traceback" not in output
    # The token is spent: the credential is kept so that joining can finish.
    second = load_config(second_path)
    assert second.key_slot is None and not second.passphrase_file.exists()
    assert len(keys.load_slots(vault_of(gateway, tenant))) == 1

    wrong = tmp_path / "wrong"
    wrong.write_text("not a passphrase of this vault\n")
    result = runner.invoke(
        app, ["agent", "join", "--passphrase-file", str(wrong), "--config", str(second_path)]
    )
    assert result.exit_code == 2, result.output
    assert f"{wrong} does not open the vault" in result.output
    assert not second.passphrase_file.exists()

    result = runner.invoke(
        app,
        [
            "agent",
            "join",
            "--passphrase-file",
            str(first.passphrase_file),
            "--config",
            str(second_path),
        ],
    )
    assert result.exit_code == 0, result.output
    joined = load_config(second_path)
    assert joined.key_slot is not None
    assert opened_slot(gateway, tenant, joined) == joined.key_slot
    assert len(keys.load_slots(vault_of(gateway, tenant))) == 2


def test_a_passphrase_that_does_not_open_the_vault_is_refused_at_enrollment(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    tenant = gateway.tenant()
    assert enroll(gateway, tenant, tmp_path / "one")[0] == 0
    wrong = tmp_path / "wrong"
    wrong.write_text("guessed\n")
    code, output, path = enroll(gateway, tenant, tmp_path / "two", "--passphrase-file", str(wrong))
    assert code == 2, output
    assert "does not open the vault" in output and "vaultwatch agent join" in output
    assert not (path.parent / "passphrase").exists()
    assert len(keys.load_slots(vault_of(gateway, tenant))) == 1


def test_a_recovery_passphrase_joins_later_servers(gateway: GatewayServer, tmp_path: Path) -> None:
    tenant = gateway.tenant()
    code, output, first_path = enroll(gateway, tenant, tmp_path / "one")
    assert code == 0, output
    recovery = tmp_path / "offsite" / "recovery-passphrase"
    result = runner.invoke(
        app, ["agent", "key", "add", "--out", str(recovery), "--config", str(first_path)]
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(recovery.stat().st_mode) == 0o600
    again = runner.invoke(
        app, ["agent", "key", "add", "--out", str(recovery), "--config", str(first_path)]
    )
    assert again.exit_code == 2 and "exists" in again.output

    code, output, second_path = enroll(
        gateway, tenant, tmp_path / "two", "--passphrase-file", str(recovery)
    )
    assert code == 0, output
    labels = sorted(s.label for s in keys.load_slots(vault_of(gateway, tenant)))
    assert len(labels) == 3
    assert sum(label.startswith("recovery passphrase") for label in labels) == 1
    second = load_config(second_path)
    assert opened_slot(gateway, tenant, second) == second.key_slot

    listed = runner.invoke(app, ["agent", "key", "list", "--config", str(second_path), "--json"])
    assert listed.exit_code == 0, listed.output
    docs = json.loads(listed.stdout)
    assert sorted(d["label"] for d in docs) == labels
    assert [d["id"] for d in docs if d["current"]] == [second.key_slot]


def test_enrolling_again_with_force_keeps_the_agents_key(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    tenant = gateway.tenant()
    code, output, path = enroll(gateway, tenant, tmp_path / "one")
    assert code == 0, output
    before = load_config(path)
    code, output, _ = enroll(gateway, tenant, tmp_path / "one", "--force")
    assert code == 0, output
    after = load_config(path)
    assert after.agent_id != before.agent_id
    assert after.key_slot == before.key_slot
    assert read_passphrase_file(after.passphrase_file) == read_passphrase_file(
        before.passphrase_file
    )
