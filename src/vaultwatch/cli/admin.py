"""``vaultwatch admin``: tenants and enrollment tokens, run on the server against its data directory.

These commands act as the operator at the server's console: whoever can read
the data directory (and so its secrets) is trusted. Each action is recorded
in the audit log under ``system:cli:<os user>``.
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from vaultwatch.catalog import Catalog, Role, Tenant, audit
from vaultwatch.catalog.enrollment import DEFAULT_ENROLLMENT_TTL, create_enrollment_token
from vaultwatch.catalog.tenant_lifecycle import tenant_state
from vaultwatch.catalog.tenants import create_tenant, find_tenant, list_tenants
from vaultwatch.cli.output import cell, line, local_time, new_table, print_json, print_table
from vaultwatch.cli.retention import retention_app
from vaultwatch.cli.server import DataDirOpt, JsonOpt
from vaultwatch.durations import DurationError, parse_seconds
from vaultwatch.errors import VaultwatchError
from vaultwatch.server_config import ServerSettings, load_settings

admin_app = typer.Typer(
    help="Administer tenants, users, API keys and enrollment tokens.", no_args_is_help=True
)
tenant_app = typer.Typer(help="Customers of the service.", no_args_is_help=True)
token_app = typer.Typer(help="Enrollment tokens for agents.", no_args_is_help=True)
admin_app.add_typer(tenant_app, name="tenant")
admin_app.add_typer(token_app, name="token")
admin_app.add_typer(retention_app, name="retention")


class AdminError(VaultwatchError):
    """Bad input to an admin command."""

    exit_code = 2


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d``, ``1w`` -> timedelta (the product's one duration grammar)."""
    try:
        seconds = parse_seconds(text)
    except DurationError as exc:
        raise AdminError(f"invalid duration: {exc}; write it like 24h, 30m or 7d") from None
    if seconds <= 0:
        raise AdminError(f"invalid duration {text!r}: it must be longer than zero")
    return timedelta(seconds=seconds)


def cli_actor() -> str:
    """The audit actor for the operator at the server's console."""
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    return audit.system_actor(f"cli:{user}")[:200]


@contextmanager
def open_catalog(data_dir: Path) -> Iterator[tuple[ServerSettings, Catalog]]:
    """The server's settings and its catalog (schema checked), disposed afterwards."""
    settings = load_settings(data_dir)
    catalog = Catalog(settings.catalog_url)
    try:
        catalog.check_schema()
        yield settings, catalog
    finally:
        catalog.dispose()


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="The customer's name")],
    data_dir: DataDirOpt,
    escrow: Annotated[
        bool, typer.Option("--escrow", help="Allow escrow key slots (managed restores)")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Create a tenant and provision its vault."""
    from vaultwatch.gateway.vault import VaultAccess

    actor = cli_actor()
    with open_catalog(data_dir) as (settings, catalog):
        with catalog.session() as session:
            tenant = create_tenant(session, name, actor=actor, escrow_allowed=escrow)
        vaults = VaultAccess(settings, catalog)
        try:
            location = vaults.provision(tenant.id, actor)
        finally:
            vaults.close()
    if json:
        print_json(
            {
                "id": str(tenant.id),
                "name": tenant.name,
                "escrow_allowed": tenant.escrow_allowed,
                "vault": location,
            }
        )
        return
    line(f"created tenant {tenant.name} ({tenant.id})")
    line(f"vault: {location}")


@tenant_app.command("list")
def tenant_list(data_dir: DataDirOpt, json: JsonOpt = False) -> None:
    """Every tenant, by name."""
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        tenants = list_tenants(session)
        rows = [
            {
                "id": str(t.id),
                "name": t.name,
                "escrow_allowed": t.escrow_allowed,
                "created_at": t.created_at.isoformat(),
                "state": tenant_state(t),
            }
            for t in tenants
        ]
    if json:
        print_json(rows)
        return
    table = new_table("ID", "Name", "Escrow", "Created")
    for t, row in zip(tenants, rows, strict=True):
        state = "" if row["state"] == "active" else f" ({row['state']})"
        table.add_row(
            cell(t.id),
            cell(t.name + state),
            cell("yes" if t.escrow_allowed else "no"),
            cell(local_time(t.created_at)),
        )
    print_table(table)


def _tenant(session: Session, ref: str) -> Tenant:
    """The tenant `ref` names: its name (ignoring case and spacing), or its id."""
    from vaultwatch.catalog.tenants import get_tenant

    found = find_tenant(session, ref)
    if found is None:
        try:
            found = get_tenant(session, uuid.UUID(ref))
        except ValueError:
            raise AdminError(f"no tenant named {ref!r}") from None
    return found


@token_app.command("create")
def token_create(
    data_dir: DataDirOpt,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant name (or id)")],
    expires: Annotated[
        str, typer.Option("--expires", help="Lifetime: 30m, 24h, 7d ... (at most 30d)")
    ] = f"{int(DEFAULT_ENROLLMENT_TTL.total_seconds() // 3600)}h",
    note_: Annotated[
        str | None, typer.Option("--note", help="What the token is for (shown in the portal)")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Create a single-use enrollment token (printed once)."""
    from vaultwatch.gateway.tls import fingerprint

    ttl = parse_duration(expires)
    actor = cli_actor()
    with open_catalog(data_dir) as (settings, catalog):
        key = settings.token_key()
        with catalog.session() as session:
            found = _tenant(session, tenant)
            issued = create_enrollment_token(
                session, found.id, key=key, created_by=actor, ttl=ttl, note=note_
            )
            tenant_name, tenant_id = found.name, found.id
        ca = settings.ca_cert
        ca_print = fingerprint(ca) if ca is not None and ca.is_file() else None
    doc = {
        "token": issued.plaintext,
        "prefix": issued.token.prefix,
        "tenant": {"id": str(tenant_id), "name": tenant_name},
        "expires_at": issued.token.expires_at.isoformat(),
        "ca_cert": str(ca) if ca is not None else None,
        "ca_fingerprint": ca_print,
    }
    if json:
        print_json(doc)
        return
    line(
        f"enrollment token for {tenant_name} (single use, expires {local_time(issued.token.expires_at, zone=True)}):"
    )
    line(issued.plaintext)
    if ca is not None:
        line(f"agents trust the CA certificate {ca} (SHA-256 {ca_print})")


user_app = typer.Typer(help="People who log into the portal and the console.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for people and scripts.", no_args_is_help=True)
admin_app.add_typer(user_app, name="user")
admin_app.add_typer(apikey_app, name="apikey")


@user_app.command("create")
def user_create(
    data_dir: DataDirOpt,
    email: Annotated[str, typer.Option("--email", help="Login name")],
    role: Annotated[Role, typer.Option("--role", help="What the user may do")],
    name: Annotated[str | None, typer.Option("--name", help="Display name")] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Tenant name or id (customer roles only)")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Create an account with a random password (printed once)."""
    import secrets

    from vaultwatch.catalog.users import create_user

    password = secrets.token_urlsafe(18)
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        user = create_user(
            session,
            email=email,
            display_name=name or email.split("@", 1)[0],
            role=role,
            password=password,
            actor=cli_actor(),
            tenant_id=_tenant(session, tenant).id if tenant is not None else None,
        )
        doc = {
            "id": str(user.id),
            "email": user.email,
            "role": user.role.value,
            "tenant_id": str(user.tenant_id) if user.tenant_id else None,
            "password": password,
        }
    if json:
        print_json(doc)
        return
    line(f"created {doc['role']} {doc['email']} ({doc['id']})")
    line(f"password (shown once): {password}")


@apikey_app.command("create")
def apikey_create(
    data_dir: DataDirOpt,
    user: Annotated[str, typer.Option("--user", help="The user (email) the key acts as")],
    name: Annotated[str, typer.Option("--name", help="What the key is for")] = "cli",
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime: 30m, 24h, 90d ... (default: none)")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Create an API key acting as a user, with the user's role (printed once)."""
    from vaultwatch.soc.apikeys import create_api_key, find_user

    lifetime = parse_duration(expires) if expires else None
    with open_catalog(data_dir) as (settings, catalog), catalog.session() as session:
        account = find_user(session, user)
        issued = create_api_key(
            session, account, name, key=settings.token_key(), actor=cli_actor(), lifetime=lifetime
        )
        doc = {
            "id": str(issued.id),
            "api_key": issued.plaintext,
            "prefix": issued.prefix,
            "user": account.email,
            "role": account.role.value,
            "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
        }
    if json:
        print_json(doc)
        return
    line(f"API key for {doc['user']} ({doc['role']}), shown once:")
    line(issued.plaintext)


@apikey_app.command("list")
def apikey_list(data_dir: DataDirOpt, json: JsonOpt = False) -> None:
    """Every API key (prefixes only: the secrets are not kept)."""
    from vaultwatch.soc.apikeys import list_api_keys

    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        keys = list_api_keys(session)
        rows = [
            {
                "id": str(k.id),
                "prefix": k.prefix,
                "name": k.name,
                "user": email,
                "created_at": k.created_at.isoformat(),
                "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k, email in keys
        ]
    if json:
        print_json(rows)
        return
    table = new_table("Prefix", "Name", "User", "Created", "Last used", "State")
    for k, email in keys:
        table.add_row(
            cell(k.prefix),
            cell(k.name),
            cell(email),
            cell(local_time(k.created_at)),
            cell(local_time(k.last_used_at) if k.last_used_at else "never"),
            cell("revoked" if k.revoked_at else "active"),
        )
    print_table(table)


@apikey_app.command("revoke")
def apikey_revoke(
    key_ref: Annotated[str, typer.Argument(help="The key's id or prefix (vwk_XXXXXXXX)")],
    data_dir: DataDirOpt,
    json: JsonOpt = False,
) -> None:
    """Revoke an API key at once."""
    from vaultwatch.soc.apikeys import revoke_api_key

    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        row = revoke_api_key(session, key_ref, actor=cli_actor())
        doc = {"id": str(row.id), "prefix": row.prefix, "revoked_at": str(row.revoked_at)}
    if json:
        print_json(doc)
        return
    line(f"revoked API key {doc['prefix']}")


# The lifecycle commands (token list/revoke, agent ..., tenant suspend/delete ...) add
# themselves to the sub-apps above.
import vaultwatch.cli.admin_lifecycle  # noqa: E402, F401
