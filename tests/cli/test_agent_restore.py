"""``vaultwatch agent snapshots`` and ``agent restore`` against a real gateway, with agents' own configs.

Two servers of one tenant are enrolled with the CLI and back up with the
agent daemon's own job runner through the gateway; restores use nothing but
each agent's configuration directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.gateway.harness import GatewayServer, running_gateway
from vaultwatch.agent.config import AgentConfig, dump_config, load_config
from vaultwatch.agent.daemon import Agent
from vaultwatch.catalog import Tenant


@dataclass
class Server:
    """One protected server: its config and its data."""

    name: str
    config: Path
    data: Path

    @property
    def cfg(self) -> AgentConfig:
        return load_config(self.config)


def tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            if not p.is_symlink():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


def enroll(cli: Cli, gateway: GatewayServer, tenant: Tenant, root: Path, *extra: str) -> Server:
    """Enroll a server and give it one continuous backup set of its own data."""
    config = root / "etc" / "agent.toml"
    cli.ok(
        "agent", "enroll", "--server", gateway.url, "--token", gateway.token(tenant),
        "--ca-cert", gateway.ca_cert, "--config", config, "--state-dir", root / "state",
        "--hostname", root.name, *extra, passphrase=None,
    )  # fmt: skip
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "hello.txt").write_text(f"hello from {root.name}\n")
    (data / "sub" / "blob.bin").write_bytes(os.urandom(400_000))
    import tomllib

    doc = tomllib.loads(config.read_text())
    doc["backup_set"] = [{"name": "files", "paths": [str(data)], "mode": "continuous"}]
    config.write_bytes(dump_config(doc))
    return Server(root.name, config, data)


def back_up(server: Server) -> None:
    """One backup by the agent daemon's job runner, through the gateway."""
    agent = Agent(server.cfg)
    try:
        assert agent.run_once() is True
        job = agent.journal.recent_jobs(1)[0]
        assert job.state == "succeeded", job.error
    finally:
        agent.shutdown()
        agent.journal.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("restores") / "data", None, "sqlite") as gw:
        yield gw


@pytest.fixture(scope="module")
def servers(gateway: GatewayServer, tmp_path_factory: pytest.TempPathFactory) -> list[Server]:
    """Two servers of one tenant, each backed up once."""
    cli = Cli()
    root = tmp_path_factory.mktemp("servers")
    tenant = gateway.tenant()
    first = enroll(cli, gateway, tenant, root / "web-1")
    second = enroll(
        cli, gateway, tenant, root / "web-2", "--passphrase-file", str(first.cfg.passphrase_file)
    )
    for server in (first, second):
        back_up(server)
    return [first, second]


def test_snapshots_lists_this_servers_snapshots(cli: Cli, servers: list[Server]) -> None:
    first, second = servers
    docs = cli.json("agent", "snapshots", "--config", first.config, passphrase=None)
    assert [d["hostname"] for d in docs] == ["web-1"]
    assert docs[0]["tags"] == ["set:files"] and docs[0]["paths"] == [str(first.data)]
    assert cli.json("agent", "snapshots", "--set", "other", "--config", first.config) == []
    everyone = cli.json("agent", "snapshots", "--all-hosts", "--config", first.config)
    assert sorted(d["hostname"] for d in everyone) == ["web-1", "web-2"]
    table = cli.ok("agent", "snapshots", "--config", second.config).stdout
    assert "web-2" in table and "web-1" not in table and "1 snapshot" in table


def test_restore_round_trips_each_servers_files_byte_for_byte(
    cli: Cli, servers: list[Server], tmp_path: Path
) -> None:
    for server in servers:
        target = tmp_path / f"restored-{server.name}"
        doc = cli.json(
            "agent", "restore", "--target", target, "--config", server.config, passphrase=None
        )
        assert doc["files_restored"] == 2 and doc["errors"] == []
        assert tree(target / server.data.relative_to("/")) == tree(server.data)

    # By id, and only part of it, from the other server's snapshots (same tenant).
    first, second = servers
    snap = cli.json("agent", "snapshots", "--host", "web-2", "--config", first.config)[0]["id"]
    target = tmp_path / "part"
    cli.ok(
        "agent", "restore", snap[:8], "--target", target, "--config", first.config,
        "--include", str(second.data / "hello.txt"),
    )  # fmt: skip
    assert tree(target) == {
        str((second.data / "hello.txt").relative_to("/")): b"hello from web-2\n"
    }


def test_restore_from_another_machine_with_the_copied_configuration(
    cli: Cli, servers: list[Server], tmp_path: Path
) -> None:
    """The server is lost: its configuration directory (credential, CA, passphrase) is all it takes."""
    first = servers[0]
    elsewhere = tmp_path / "rescue-laptop" / "etc"
    shutil.copytree(first.config.parent, elsewhere)
    original = first.config.parent.with_name("etc-gone")
    first.config.parent.rename(original)  # the paths the config names no longer exist
    try:
        target = tmp_path / "rescued"
        cli.ok(
            "agent", "restore", "--host", "web-1", "--target", target,
            "--config", elsewhere / "agent.toml", passphrase=None,
        )  # fmt: skip
        assert tree(target / first.data.relative_to("/")) == tree(first.data)
    finally:
        original.rename(first.config.parent)


def test_restore_refuses_targets_that_break_the_rules(
    cli: Cli, servers: list[Server], tmp_path: Path
) -> None:
    first = servers[0]
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    result = cli("agent", "restore", "--target", a_file, "--config", first.config)
    assert result.exit_code != 0 and "is not a directory" in result.output
    assert a_file.read_text() == "x"

    # A symlink inside the target must not carry the restore outside it.
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    top = first.data.relative_to("/").parts[0]
    target.mkdir()
    (target / top).symlink_to(outside)
    result = cli("agent", "restore", "--target", target, "--config", first.config)
    assert result.exit_code != 0 and "symlink" in result.output
    assert list(outside.iterdir()) == []


def test_restore_names_the_set_when_the_agent_has_several(
    cli: Cli, servers: list[Server], tmp_path: Path
) -> None:
    import tomllib

    first = servers[0]
    doc = tomllib.loads(first.config.read_text())
    doc["backup_set"].append({"name": "more", "paths": [str(first.data)], "mode": "continuous"})
    config = tmp_path / "agent.toml"
    config.write_bytes(dump_config(doc))
    result = cli("agent", "restore", "--target", tmp_path / "t", "--config", config)
    assert (
        result.exit_code == 2 and "--set NAME" in result.output and "files, more" in result.output
    )
    result = cli(
        "agent", "restore", "--set", "more", "--target", tmp_path / "t", "--config", config
    )
    assert result.exit_code != 0 and "no snapshot of backup set 'more'" in result.output


def test_a_wrong_passphrase_file_is_refused_clearly(
    cli: Cli, servers: list[Server], tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    result = cli("agent", "snapshots", "--passphrase-file", wrong, "--config", servers[0].config)
    assert result.exit_code != 0
    assert f"does not open with {wrong}" in result.output
