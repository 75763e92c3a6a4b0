"""``vaultwatch admin retention`` against a running gateway's data directory and a managed vault."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.gateway.conftest import gateway, postgres_server_url
from tests.gateway.harness import GatewayServer
from tests.retention.harness import ManagedVault, random_files
from vaultwatch.cli.main import app

__all__ = ["gateway", "postgres_server_url"]


@pytest.fixture
def vault(gateway: GatewayServer, tmp_path: Path) -> Iterator[ManagedVault]:
    managed = ManagedVault.create(gateway, tmp_path)
    try:
        yield managed
    finally:
        managed.close()


def _admin(vault: ManagedVault, *args: str) -> Result:
    data_dir = str(vault.gateway.settings.data_dir)
    result = CliRunner().invoke(app, ["admin", "retention", *args, "-d", data_dir])
    assert "Traceback" not in result.output, result.output
    return result


def test_dry_run_shows_what_would_go_and_changes_nothing(vault: ManagedVault) -> None:
    ids = [vault.backup(random_files(f"{n}.bin", size=50_000)).id for n in "abc"]
    tenant = str(vault.tenant_id)
    result = _admin(vault, "set", "--tenant", tenant, "--set", "docs", "--keep-last", "1")
    assert result.exit_code == 0, result.output
    assert "keep last 1 (operator)" in result.output

    before = vault.names("snapshots/")
    dry = _admin(vault, "run", "--tenant", tenant, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would remove" in dry.output
    for sid in ids[:2]:
        assert sid[:8] in dry.output
    assert ids[2][:8] not in dry.output
    assert vault.names("snapshots/") == before

    done = _admin(vault, "run", "--tenant", tenant, "--json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    (outcome,) = doc["vaults"]
    assert outcome["snapshots_removed"] == 2 and not doc["dry_run"]
    assert vault.names("snapshots/") == {f"snapshots/{ids[2]}"}

    shown = _admin(vault, "show", "--tenant", tenant, "--json")
    (row,) = json.loads(shown.stdout)
    assert row["policy"]["floor"] == {"last": 1} and row["policy"]["source"] == "operator"


def test_bad_input_is_a_message_and_exit_code_2(vault: ManagedVault) -> None:
    tenant = str(vault.tenant_id)
    bad = _admin(vault, "set", "--tenant", tenant, "--set", "docs", "--keep-within", "soon")
    assert bad.exit_code == 2 and "duration" in bad.output
    empty = _admin(vault, "set", "--tenant", tenant, "--set", "docs")
    assert empty.exit_code == 2 and "empty policy" in empty.output
    missing = _admin(vault, "run", "--tenant", tenant, "--set", "nope")
    assert missing.exit_code == 2 and "no backup set named 'nope'" in missing.output
    unknown = _admin(vault, "run", "--tenant", "no-such-tenant")
    assert unknown.exit_code == 2 and "no tenant" in unknown.output
