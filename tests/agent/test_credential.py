"""``vaultwatch agent rotate-credential`` against a real gateway: a new credential, no re-enrollment."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.gateway.harness import GatewayServer, heartbeat_body, running_gateway
from vaultwatch.agent.config import load_config
from vaultwatch.agent.credential import rotate_credential
from vaultwatch.agent.status import status_path
from vaultwatch.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("rotate") / "data", None, "sqlite") as gw:
        yield gw


def _enrolled(gateway: GatewayServer, tmp_path: Path) -> Path:
    config = tmp_path / "agent.toml"
    result = runner.invoke(
        app,
        [
            "agent",
            "enroll",
            "--server",
            gateway.url,
            "--token",
            gateway.token(gateway.tenant()),
            "--config",
            str(config),
            "--state-dir",
            str(tmp_path / "state"),
            "--ca-cert",
            str(gateway.ca_cert),
        ],
    )
    assert result.exit_code == 0, result.output
    return config


def _heartbeat(gateway: GatewayServer, credential: str) -> int:
    return gateway.client(credential).post("/api/v1/heartbeat", json=heartbeat_body()).status_code


def test_rotating_with_no_agent_running_finishes_at_once(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    config = _enrolled(gateway, tmp_path)
    before = config.read_text()
    old = load_config(config).server.credential
    result = runner.invoke(app, ["agent", "rotate-credential", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["completed"] is True and doc["agent_running"] is False
    new = load_config(config).server.credential
    assert new != old and new.startswith("vwa_")
    assert config.read_text() == before.replace(old, new)  # comments and sets untouched
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert _heartbeat(gateway, old) == 401
    assert _heartbeat(gateway, new) == 200
    assert old not in result.output and new not in result.output


def test_while_the_agent_runs_the_old_credential_works_until_the_new_one_is_used(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    config = _enrolled(gateway, tmp_path)
    old = load_config(config).server.credential
    status = status_path(load_config(config).state_dir)
    status.parent.mkdir(parents=True, exist_ok=True)
    status.write_text(json.dumps({"pid": os.getpid(), "state": "idle"}))  # this process "runs"
    result = runner.invoke(app, ["agent", "rotate-credential", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "restart it now" in result.output
    new = load_config(config).server.credential
    assert _heartbeat(gateway, old) == 200  # the running agent is not cut off
    assert _heartbeat(gateway, new) == 200  # the restarted agent's first request ...
    assert _heartbeat(gateway, old) == 401  # ... retires the old credential


def test_a_config_whose_credential_cannot_be_found_once_is_left_alone(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    config = _enrolled(gateway, tmp_path)
    credential = load_config(config).server.credential
    text = config.read_text() + f"\n# previous: {credential}\n"
    config.write_text(text)
    config.chmod(0o600)
    from vaultwatch.agent.config import ConfigError

    with pytest.raises(ConfigError, match="not changed"):
        rotate_credential(config, complete=True)
    assert config.read_text() == text
    assert tomllib.loads(text)["server"]["credential"] == credential
    assert _heartbeat(gateway, credential) == 200  # the pending new one was never used


def test_a_revoked_agent_cannot_rotate(gateway: GatewayServer, tmp_path: Path) -> None:
    import uuid

    from tests.gateway.harness import ACTOR
    from vaultwatch.catalog.enrollment import revoke_agent_credentials

    config = _enrolled(gateway, tmp_path)
    with gateway.catalog.session() as session:
        revoke_agent_credentials(session, uuid.UUID(load_config(config).agent_id), actor=ACTOR)
    before = config.read_text()
    result = runner.invoke(app, ["agent", "rotate-credential", "--config", str(config)])
    assert result.exit_code != 0
    assert "revoked" in result.output and "Traceback" not in result.output
    assert config.read_text() == before
