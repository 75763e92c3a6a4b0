"""``vaultwatch agent enroll`` against a real gateway: the name it writes and its errors."""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.gateway.harness import GatewayServer, running_gateway
from vaultwatch.agent.config import load_config
from vaultwatch.catalog.models import Agent
from vaultwatch.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("enroll") / "data", None, "sqlite") as gw:
        yield gw


def _enroll(gateway: GatewayServer, tmp_path: Path, *extra: str, server: str | None = None) -> str:
    token = gateway.token(gateway.tenant())
    result = runner.invoke(
        app,
        [
            "agent",
            "enroll",
            "--server",
            server or gateway.url,
            "--token",
            token,
            "--config",
            str(tmp_path / "agent.toml"),
            "--state-dir",
            str(tmp_path / "state"),
            *extra,
        ],
    )
    return f"{result.exit_code}\n{result.output}"


def test_hostname_given_at_enrollment_is_the_agents_name(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    answer = _enroll(
        gateway, tmp_path, "--ca-cert", str(gateway.ca_cert), "--hostname", "web-frontend-7"
    )
    assert answer.startswith("0\n"), answer
    doc = tomllib.loads((tmp_path / "agent.toml").read_text())
    assert doc["agent"]["hostname"] == "web-frontend-7"
    config = load_config(tmp_path / "agent.toml")
    assert config.hostname == "web-frontend-7"  # what snapshots and heartbeats carry
    with gateway.catalog.session() as session:
        agent = session.get(Agent, uuid.UUID(config.agent_id))
        assert agent is not None and agent.hostname == "web-frontend-7"


def test_without_hostname_the_config_follows_this_host(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    answer = _enroll(gateway, tmp_path, "--ca-cert", str(gateway.ca_cert))
    assert answer.startswith("0\n"), answer
    assert load_config(tmp_path / "agent.toml").hostname is None


def test_without_the_ca_it_says_to_pass_it(gateway: GatewayServer, tmp_path: Path) -> None:
    answer = _enroll(gateway, tmp_path)
    assert answer.startswith("1\n"), answer
    assert "cannot verify the certificate" in answer
    assert "--ca-cert" in answer and "DATA_DIR/tls/ca.pem" in answer
    assert "openssl x509 -in ca.pem -noout -fingerprint -sha256" in answer
    assert "CERTIFICATE_VERIFY_FAILED" not in answer
    assert not (tmp_path / "agent.toml").exists()


def test_plain_http_says_the_server_speaks_https_only(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{gateway.port}"
    answer = _enroll(gateway, tmp_path, "--ca-cert", str(gateway.ca_cert), server=url)
    assert answer.startswith("1\n"), answer
    assert "speaks HTTPS only" in answer and f"https://127.0.0.1:{gateway.port}" in answer
    assert "Server disconnected" not in answer
    assert not (tmp_path / "agent.toml").exists()
