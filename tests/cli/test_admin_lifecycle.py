"""``vaultwatch admin`` lifecycle commands on a server data directory: tokens, agents, tenants."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.cli.conftest import Cli
from vaultwatch.catalog import AuditEntry, Catalog
from vaultwatch.catalog.enrollment import authenticate_agent, redeem_enrollment_token
from vaultwatch.catalog.errors import InvalidCredentialError, TenantDeletedError
from vaultwatch.server import init_server
from vaultwatch.server_config import ServerSettings


@dataclass
class Site:
    """A server data directory and its catalog."""

    data_dir: Path
    settings: ServerSettings
    catalog: Catalog


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    result = init_server(tmp_path / "data")
    catalog = Catalog(result.settings.catalog_url)
    try:
        yield Site(tmp_path / "data", result.settings, catalog)
    finally:
        catalog.dispose()


def _enroll(cli: Cli, site: Site, tenant: str, hostname: str) -> tuple[uuid.UUID, str]:
    token = cli.json("admin", "token", "create", "--tenant", tenant, "-d", site.data_dir)["token"]
    with site.catalog.session() as session:
        enrolled = redeem_enrollment_token(
            session, token, key=site.settings.token_key(), hostname=hostname
        )
        return enrolled.agent.id, enrolled.credential


def _actions(site: Site) -> list[tuple[str, str]]:
    with site.catalog.session() as session:
        rows = session.execute(select(AuditEntry.action, AuditEntry.actor).order_by(AuditEntry.id))
        return [(a, b) for a, b in rows]


def test_tokens_are_listed_and_revoked(cli: Cli, site: Site) -> None:
    cli.json("admin", "tenant", "create", "Acme", "-d", site.data_dir)
    made = cli.json(
        "admin", "token", "create", "--tenant", "acme", "--note", "web-7", "-d", site.data_dir
    )
    _enroll(cli, site, "Acme", "db1")
    listed = cli.json("admin", "token", "list", "-d", site.data_dir)
    assert [(t["prefix"], t["state"], t["note"]) for t in listed] == [
        (made["prefix"], "active", "web-7")
    ]
    assert made["token"] not in cli.ok("admin", "token", "list", "-d", site.data_dir).stdout
    everything = cli.json(
        "admin", "token", "list", "--all", "--tenant", "Acme", "-d", site.data_dir
    )
    assert sorted(t["state"] for t in everything) == ["active", "used"]
    out = cli.ok("admin", "token", "revoke", made["prefix"], "-d", site.data_dir).stdout
    assert f"revoked enrollment token {made['prefix']}" in out
    assert cli.json("admin", "token", "list", "-d", site.data_dir) == []
    with pytest.raises(Exception, match="revoked"), site.catalog.session() as session:
        redeem_enrollment_token(session, made["token"], key=site.settings.token_key(), hostname="x")
    unknown = cli("admin", "token", "revoke", "vwe_nothere", "-d", site.data_dir)
    assert unknown.exit_code == 1 and "no enrollment token 'vwe_nothere'" in unknown.stderr
    revocation = next(e for e in _actions(site) if e[0] == "enrollment_token.revoke")
    assert revocation[1].startswith("system:cli:")


def test_an_agent_is_revoked_and_retired_by_hostname_or_id(cli: Cli, site: Site) -> None:
    cli.json("admin", "tenant", "create", "Acme", "-d", site.data_dir)
    agent_id, credential = _enroll(cli, site, "Acme", "db1")
    other_id, other_credential = _enroll(cli, site, "Acme", "web1")
    (row,) = [
        a for a in cli.json("admin", "agent", "list", "-d", site.data_dir) if a["hostname"] == "db1"
    ]
    assert row["state"] == "active" and row["credentials"] == 1
    table = cli.ok("admin", "agent", "list", "--tenant", "Acme", "-d", site.data_dir).stdout
    assert "db1" in table and "active, 1 credential" in table
    revoked = cli.json("admin", "agent", "revoke", "db1", "--tenant", "Acme", "-d", site.data_dir)
    assert revoked == {"id": str(agent_id), "hostname": "db1", "credentials_revoked": 1}
    key = site.settings.token_key()
    with pytest.raises(InvalidCredentialError, match="revoked"), site.catalog.session() as s:
        authenticate_agent(s, credential, key=key)
    out = cli.ok("admin", "agent", "retire", str(other_id), "-d", site.data_dir).stdout
    assert "retired agent web1" in out and "snapshots stay" in out
    with pytest.raises(InvalidCredentialError, match="retired"), site.catalog.session() as s:
        authenticate_agent(s, other_credential, key=key)
    assert [a["hostname"] for a in cli.json("admin", "agent", "list", "-d", site.data_dir)] == [
        "db1"
    ]
    assert len(cli.json("admin", "agent", "list", "--all", "-d", site.data_dir)) == 2
    missing = cli("admin", "agent", "retire", "nosuch", "-d", site.data_dir)
    assert missing.exit_code == 1 and "no agent 'nosuch'" in missing.stderr
    actions = [a for a, _ in _actions(site)]
    assert "agent.credentials_revoke" in actions and "agent.retire" in actions


def test_a_tenant_is_suspended_resumed_deleted_and_undeleted(cli: Cli, site: Site) -> None:
    tenant = cli.json("admin", "tenant", "create", "Acme", "-d", site.data_dir)
    _agent_id, credential = _enroll(cli, site, "Acme", "db1")
    out = cli.ok(
        "admin", "tenant", "suspend", "acme", "--reason", "invoice unpaid", "-d", site.data_dir
    ).stdout
    assert "suspended tenant Acme" in out
    (listed,) = cli.json("admin", "tenant", "list", "-d", site.data_dir)
    assert listed["state"] == "suspended"
    refused = cli("admin", "token", "create", "--tenant", "Acme", "-d", site.data_dir)
    assert refused.exit_code == 1 and "suspended" in refused.stderr
    assert cli.json("admin", "tenant", "resume", tenant["id"], "-d", site.data_dir)["state"] == (
        "active"
    )
    again = cli("admin", "tenant", "resume", "Acme", "-d", site.data_dir)
    assert again.exit_code == 1 and "not suspended" in again.stderr

    declined = cli("admin", "tenant", "delete", "Acme", "-d", site.data_dir, input="n\n")
    assert declined.exit_code != 0
    assert cli.json("admin", "tenant", "list", "-d", site.data_dir)[0]["state"] == "active"
    deleted = cli.json(
        "admin", "tenant", "delete", "Acme", "--grace", "7d", "--yes", "-d", site.data_dir
    )
    assert deleted["state"] == "deleted" and deleted["purge_after"] is not None
    with pytest.raises(TenantDeletedError), site.catalog.session() as session:
        authenticate_agent(session, credential, key=site.settings.token_key())
    assert cli.json("admin", "tenant", "undelete", "Acme", "-d", site.data_dir)["state"] == (
        "active"
    )
    with site.catalog.session() as session:
        assert authenticate_agent(session, credential, key=site.settings.token_key())
    bad_grace = cli(
        "admin", "tenant", "delete", "Acme", "--grace", "soon", "-y", "-d", site.data_dir
    )
    assert bad_grace.exit_code == 2 and "invalid duration" in bad_grace.stderr
    actions = [a for a, _ in _actions(site)]
    for action in ("tenant.suspend", "tenant.resume", "tenant.delete", "tenant.undelete"):
        assert actions.count(action) == 1, action
