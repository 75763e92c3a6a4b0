"""``vaultwatch admin``: the managed service's lifecycle commands, on the server's data directory.

Enrollment tokens (list, revoke), agents (list, revoke their credentials,
retire) and tenants (suspend, resume, delete, undelete). Like the other
admin commands they act as the operator at the server's console and are
audited as ``system:cli:<os user>``; the rules live in the catalog's
lifecycle modules.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer
from sqlalchemy import select

from vaultwatch.catalog.agent_lifecycle import active_credentials, find_agent, retire_agent
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.enrollment import (
    list_enrollment_tokens,
    revoke_agent_credentials,
    revoke_enrollment_token,
    token_state,
)
from vaultwatch.catalog.models import Agent, Tenant
from vaultwatch.catalog.tenant_lifecycle import (
    DEFAULT_DELETION_GRACE,
    delete_tenant,
    resume_tenant,
    suspend_tenant,
    tenant_state,
    undelete_tenant,
)
from vaultwatch.cli.admin import (
    _tenant,
    admin_app,
    cli_actor,
    open_catalog,
    parse_duration,
    tenant_app,
    token_app,
)
from vaultwatch.cli.output import cell, json_or_line, local_time, new_table, print_json, print_table
from vaultwatch.cli.server import DataDirOpt, JsonOpt

agent_app = typer.Typer(help="Enrolled servers: credentials and retirement.", no_args_is_help=True)
admin_app.add_typer(agent_app, name="agent")

AgentArg = Annotated[str, typer.Argument(help="The agent's id, or its hostname with --tenant")]


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# -- enrollment tokens --------------------------------------------------------------------------


@token_app.command("list")
def token_list(
    data_dir: DataDirOpt,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant name (or id)")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Used, revoked and expired tokens too")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Enrollment tokens that can still enroll a server (prefixes only: secrets are not kept)."""
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        tenant_id = _tenant(session, tenant).id if tenant is not None else None
        now = database_now(session)
        tokens = list_enrollment_tokens(
            session, tenant_id=tenant_id, include_finished=all_, now=now
        )
        names = {tid: name for tid, name in session.execute(select(Tenant.id, Tenant.name))}
        rows: list[dict[str, Any]] = [
            {
                "id": str(t.id),
                "prefix": t.prefix,
                "tenant": {"id": str(t.tenant_id), "name": names.get(t.tenant_id, "")},
                "state": token_state(t, now),
                "note": t.note,
                "created_by": t.created_by,
                "created_at": t.created_at.isoformat(),
                "expires_at": t.expires_at.isoformat(),
                "used_at": _time(t.used_at),
                "revoked_at": _time(t.revoked_at),
                "agent_id": str(t.agent_id) if t.agent_id else None,
            }
            for t in tokens
        ]
        expiries = [t.expires_at for t in tokens]
    if json:
        print_json(rows)
        return
    table = new_table("Prefix", "Tenant", "State", "Expires", "Note")
    for row, expires in zip(rows, expiries, strict=True):
        table.add_row(
            cell(row["prefix"]),
            cell(row["tenant"]["name"]),
            cell(row["state"]),
            cell(local_time(expires)),
            cell(row["note"] or ""),
        )
    print_table(table)


@token_app.command("revoke")
def token_revoke(
    token_ref: Annotated[str, typer.Argument(help="The token's id or prefix (vwe_XXXXXXXX)")],
    data_dir: DataDirOpt,
    json: JsonOpt = False,
) -> None:
    """Revoke an unused enrollment token: nobody can enroll with it any more."""
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        token = revoke_enrollment_token(session, token_ref, actor=cli_actor())
        doc = {"id": str(token.id), "prefix": token.prefix, "revoked_at": _time(token.revoked_at)}
    json_or_line(json, doc, f"revoked enrollment token {doc['prefix']}")


# -- agents ------------------------------------------------------------------------------------


@agent_app.command("list")
def agent_list(
    data_dir: DataDirOpt,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant name (or id)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retired agents too")] = False,
    json: JsonOpt = False,
) -> None:
    """Enrolled agents with their state and how many credentials still work."""
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        statement = select(Agent, Tenant.name).join(Tenant, Tenant.id == Agent.tenant_id)
        if tenant is not None:
            statement = statement.where(Agent.tenant_id == _tenant(session, tenant).id)
        if not all_:
            statement = statement.where(Agent.retired_at.is_(None))
        found = session.execute(statement.order_by(Tenant.name_key, Agent.hostname)).all()
        rows: list[dict[str, Any]] = [
            {
                "id": str(agent.id),
                "hostname": agent.hostname,
                "tenant": {"id": str(agent.tenant_id), "name": tenant_name},
                "state": "retired" if agent.retired_at else "active",
                "enrolled_at": agent.enrolled_at.isoformat(),
                "last_seen_at": _time(agent.last_seen_at),
                "retired_at": _time(agent.retired_at),
                "credentials": len(active_credentials(session, agent.id)),
            }
            for agent, tenant_name in found
        ]
    if json:
        print_json(rows)
        return
    table = new_table("ID", "Hostname", "Tenant", "State")
    for row in rows:
        working = row["credentials"]
        table.add_row(
            cell(row["id"]),
            cell(row["hostname"]),
            cell(row["tenant"]["name"]),
            cell(f"{row['state']}, {working} credential{'' if working == 1 else 's'}"),
        )
    print_table(table)


@agent_app.command("revoke")
def agent_revoke(
    agent_ref: AgentArg,
    data_dir: DataDirOpt,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant name (or id)")] = None,
    json: JsonOpt = False,
) -> None:
    """Revoke every credential of an agent at once (a stolen or compromised server).

    The agent is refused with 401 "revoked" from its next request; to bring
    the server back, enroll it again with a new token and ``--force``.
    """
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        owner = _tenant(session, tenant) if tenant is not None else None
        agent = find_agent(session, agent_ref, tenant=owner)
        revoked = revoke_agent_credentials(session, agent.id, actor=cli_actor())
        doc = {"id": str(agent.id), "hostname": agent.hostname, "credentials_revoked": revoked}
    json_or_line(
        json, doc, f"revoked {revoked} credential(s) of agent {doc['hostname']} ({doc['id']})"
    )


@agent_app.command("retire")
def agent_retire(
    agent_ref: AgentArg,
    data_dir: DataDirOpt,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant name (or id)")] = None,
    json: JsonOpt = False,
) -> None:
    """Retire a decommissioned server: credentials revoked, no more alarms, snapshots kept."""
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        owner = _tenant(session, tenant) if tenant is not None else None
        agent = retire_agent(
            session, find_agent(session, agent_ref, tenant=owner).id, actor=cli_actor()
        )
        doc = {
            "id": str(agent.id),
            "hostname": agent.hostname,
            "retired_at": _time(agent.retired_at),
        }
    json_or_line(json, doc, f"retired agent {doc['hostname']} ({doc['id']}); its snapshots stay")


# -- tenants -----------------------------------------------------------------------------------


def _tenant_doc(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": str(tenant.id),
        "name": tenant.name,
        "state": tenant_state(tenant),
        "suspended_at": _time(tenant.suspended_at),
        "suspension_reason": tenant.suspension_reason,
        "deleted_at": _time(tenant.deleted_at),
        "purge_after": _time(tenant.purge_after),
        "purged_at": _time(tenant.purged_at),
    }


@tenant_app.command("suspend")
def tenant_suspend(
    name: Annotated[str, typer.Argument(help="Tenant name (or id)")],
    data_dir: DataDirOpt,
    reason: Annotated[str, typer.Option("--reason", help="Why (shown to the SOC, audited)")],
    json: JsonOpt = False,
) -> None:
    """Refuse the tenant's uploads and new enrollments until resumed; restores still work."""
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        tenant = suspend_tenant(
            session, _tenant(session, name).id, actor=cli_actor(), reason=reason
        )
        doc = _tenant_doc(tenant)
    json_or_line(json, doc, f"suspended tenant {doc['name']}: {reason}")


@tenant_app.command("resume")
def tenant_resume(
    name: Annotated[str, typer.Argument(help="Tenant name (or id)")],
    data_dir: DataDirOpt,
    json: JsonOpt = False,
) -> None:
    """Lift a suspension: the agents' next uploads are accepted."""
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        doc = _tenant_doc(resume_tenant(session, _tenant(session, name).id, actor=cli_actor()))
    json_or_line(json, doc, f"resumed tenant {doc['name']}")


def _grace(text: str) -> timedelta:
    return timedelta(0) if text.strip() == "0" else parse_duration(text)


@tenant_app.command("delete")
def tenant_delete(
    name: Annotated[str, typer.Argument(help="Tenant name (or id)")],
    data_dir: DataDirOpt,
    grace: Annotated[
        str,
        typer.Option("--grace", help="How long the data is kept (undelete until then): 30d, 0 ..."),
    ] = f"{DEFAULT_DELETION_GRACE.days}d",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    json: JsonOpt = False,
) -> None:
    """Delete a tenant: agents retired and users disabled now, data purged after the grace period."""
    period = _grace(grace)
    with open_catalog(data_dir) as (_settings, catalog):
        with catalog.session() as session:
            display = _tenant(session, name).name
        if not yes and not typer.confirm(
            f"delete tenant {display}? Its vault and records are removed after {grace}"
        ):
            raise typer.Abort()
        with catalog.session() as session:
            tenant = delete_tenant(
                session, _tenant(session, name).id, actor=cli_actor(), grace=period
            )
            doc = _tenant_doc(tenant)
            purge_after = tenant.purge_after
    assert purge_after is not None
    json_or_line(
        json,
        doc,
        f"deleted tenant {doc['name']}; its data is purged after "
        f"{local_time(purge_after, zone=True)} (vaultwatch admin tenant undelete until then)",
    )


@tenant_app.command("undelete")
def tenant_undelete(
    name: Annotated[str, typer.Argument(help="Tenant name (or id)")],
    data_dir: DataDirOpt,
    json: JsonOpt = False,
) -> None:
    """Take a deletion back within the grace period: its agents and users return."""
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        doc = _tenant_doc(undelete_tenant(session, _tenant(session, name).id, actor=cli_actor()))
    json_or_line(json, doc, f"restored tenant {doc['name']}")
