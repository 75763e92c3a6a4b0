"""``vaultwatch admin retention``: see, set and run the service's retention of managed vaults.

Run on the server against its data directory, like the other admin commands;
the scheduled runs are a duty of the server itself (docs/operations.md).
The admin module's helpers are imported inside the commands: that module
registers this sub-app.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Annotated, Any

import typer
from sqlalchemy import select

from vaultwatch.catalog.models import Agent, BackupSet
from vaultwatch.cli.output import (
    cell,
    err_console,
    line,
    local_time,
    new_table,
    print_json,
    print_table,
    progress_wanted,
)
from vaultwatch.cli.server import DataDirOpt, JsonOpt
from vaultwatch.engine.errors import PolicyError
from vaultwatch.retention.policy import find_sets, set_operator_retention, set_policy
from vaultwatch.retention.run import RetentionReport, RunOptions, run_retention
from vaultwatch.units import human_bytes, plural

retention_app = typer.Typer(
    help="Retention of managed vaults: policies per backup set, runs now.", no_args_is_help=True
)

TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant name or id")]
SetOpt = Annotated[str | None, typer.Option("--set", "-s", help="Backup set name")]


@retention_app.command("run")
def retention_run(
    data_dir: DataDirOpt,
    tenant: TenantOpt = None,
    backup_set: SetOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would be removed; change nothing")
    ] = False,
    show_kept: Annotated[
        bool, typer.Option("--show-kept", help="List the kept snapshots too, with the reasons")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Apply retention now: forget what the policies do not keep, collect unused data, empty old trash."""
    from vaultwatch.cli.admin import _tenant, cli_actor, open_catalog

    with open_catalog(data_dir) as (_settings, catalog):
        tenant_id = None
        if tenant is not None:
            with catalog.session() as session:
                tenant_id = _tenant(session, tenant).id
        options = RunOptions(
            tenant_id=tenant_id, backup_set=backup_set, dry_run=dry_run, actor=cli_actor()
        )
        status: AbstractContextManager[Any] = nullcontext()
        if progress_wanted(json):
            status = err_console().status("retention: starting")

        with status as shown:

            def progress(tenant_name: str, phase: str) -> None:
                if shown is not None:
                    shown.update(f"retention of {tenant_name}: {phase}")

            report = run_retention(catalog.session, options, progress=progress)
    if json:
        print_json(report.to_dict())
        return
    _print_report(report, show_kept=show_kept)


def _print_report(report: RetentionReport, *, show_kept: bool) -> None:
    verb = "would remove" if report.dry_run else "removed"
    if not report.vaults:
        line("no managed vaults")
        return
    sets = new_table("Tenant", "Set", "Host", "Policy", "Kept", verb.capitalize(), "Held")
    snaps = new_table("Tenant", "Set", "Snapshot", "Time", "Action", "Why kept")
    for vault in report.vaults:
        for s in vault.sets:
            sets.add_row(
                cell(vault.tenant),
                cell(s.backup_set),
                cell(s.hostname),
                cell(s.policy),
                cell(s.kept),
                cell(s.removed),
                cell(s.held),
            )
            for snap in s.lines:
                if snap.action == "remove" or show_kept:
                    action = verb if snap.action == "remove" else "keep"
                    snaps.add_row(
                        cell(vault.tenant),
                        cell(s.backup_set),
                        cell(snap.snapshot[:8]),
                        cell(local_time(snap.time)),
                        cell(action),
                        cell(", ".join(snap.reasons)),
                    )
    print_table(sets)
    if snaps.row_count:
        print_table(snaps)
    for vault in report.vaults:
        data = "would collect" if report.dry_run else "collected"
        forgotten = (
            sum(s.removed for s in vault.sets) if report.dry_run else vault.snapshots_removed
        )
        parts = [f"{vault.tenant}: {verb} {plural(forgotten, 'snapshot')}"]
        if report.dry_run:
            parts.append(
                f"{data} {plural(vault.packs_garbage, 'unused pack')} "
                f"({human_bytes(vault.bytes_garbage)})"
            )
        else:
            parts.append(
                f"{data} {plural(vault.packs_trashed, 'unused pack')} "
                f"({human_bytes(vault.bytes_trashed)}) into the trash"
            )
            if vault.packs_waiting:
                parts.append(f"{plural(vault.packs_waiting, 'pack')} announced, waiting")
            if vault.packs_unconfirmed:
                parts.append(
                    f"{plural(vault.packs_unconfirmed, 'pack')} no snapshot names, watched"
                )
        if vault.packs_restored:
            parts.append(f"{plural(vault.packs_restored, 'pack')} put back from the trash")
        if vault.objects_purged:
            purged = "would purge" if report.dry_run else "purged"
            parts.append(
                f"{purged} {plural(vault.objects_purged, 'object')} "
                f"({human_bytes(vault.bytes_purged)}) from the trash"
            )
        if vault.unattributed:
            parts.append(f"kept {plural(vault.unattributed, 'snapshot')} of no known backup set")
        line("; ".join(parts))
        for message in vault.messages:
            line(f"  {message}")


@retention_app.command("set")
def retention_set(
    data_dir: DataDirOpt,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id")],
    backup_set: Annotated[str, typer.Option("--set", "-s", help="Backup set name")],
    host: Annotated[str | None, typer.Option("--host", help="Only the set of this server")] = None,
    within: Annotated[
        str | None, typer.Option("--keep-within", help="Keep everything this recent, e.g. 2d")
    ] = None,
    last: Annotated[int, typer.Option("--keep-last", help="Keep the newest N")] = 0,
    hourly: Annotated[int, typer.Option("--keep-hourly", help="One a hour for N hours")] = 0,
    daily: Annotated[int, typer.Option("--keep-daily", help="One a day for N days")] = 0,
    weekly: Annotated[int, typer.Option("--keep-weekly", help="One a week for N weeks")] = 0,
    monthly: Annotated[int, typer.Option("--keep-monthly", help="One a month for N months")] = 0,
    yearly: Annotated[int, typer.Option("--keep-yearly", help="One a year for N years")] = 0,
    default: Annotated[
        bool, typer.Option("--default", help="Go back to the service's default policy")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Set an operator policy for a backup set (counts of -1 mean unlimited)."""
    from vaultwatch.cli.admin import AdminError, _tenant, cli_actor, open_catalog

    doc: dict[str, Any] = {
        k: v
        for k, v in {
            "last": last,
            "hourly": hourly,
            "daily": daily,
            "weekly": weekly,
            "monthly": monthly,
            "yearly": yearly,
        }.items()
        if v
    }
    if within is not None:
        doc["within"] = within
    if default and doc:
        raise AdminError("give either --default or keep rules, not both")
    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        t = _tenant(session, tenant)
        try:
            rows = find_sets(session, t.id, backup_set, hostname=host)
            set_operator_retention(session, rows, None if default else doc, actor=cli_actor())
        except PolicyError as exc:
            raise AdminError(str(exc)) from None
        result = [{"backup_set": r.name, "policy": set_policy(r).to_dict()} for r in rows]
        text = [f"{r.name}: {set_policy(r).describe()}" for r in rows]
    if json:
        print_json(result)
        return
    for entry in text:
        line(entry)


@retention_app.command("show")
def retention_show(data_dir: DataDirOpt, tenant: TenantOpt = None, json: JsonOpt = False) -> None:
    """The policy every backup set is judged by."""
    from vaultwatch.cli.admin import _tenant, open_catalog

    with open_catalog(data_dir) as (_settings, catalog), catalog.session() as session:
        query = (
            select(BackupSet, Agent.hostname)
            .join(Agent, Agent.id == BackupSet.agent_id)
            .order_by(BackupSet.tenant_id, BackupSet.name, Agent.hostname)
        )
        if tenant is not None:
            query = query.where(BackupSet.tenant_id == _tenant(session, tenant).id)
        rows = [
            {
                "backup_set_id": str(bs.id),
                "tenant_id": str(bs.tenant_id),
                "backup_set": bs.name,
                "hostname": hostname,
                "mode": bs.mode.value,
                "enabled": bs.enabled,
                "policy": set_policy(bs).to_dict(),
                "describe": set_policy(bs).describe(),
            }
            for bs, hostname in session.execute(query).all()
        ]
    if json:
        print_json(rows)
        return
    table = new_table("Set", "Host", "Mode", "Policy")
    for row in rows:
        table.add_row(
            cell(row["backup_set"]), cell(row["hostname"]), cell(row["mode"]), cell(row["describe"])
        )
    print_table(table)
