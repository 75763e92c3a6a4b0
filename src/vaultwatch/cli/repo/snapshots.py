"""Snapshot lists and their upkeep: ``snapshots``, ``forget``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vaultwatch.cli import output as out
from vaultwatch.cli.options import (
    JsonOpt,
    PassphraseFileOpt,
    QuietOpt,
    RepoOpt,
    RepoSettings,
    open_repository,
    settings,
)
from vaultwatch.cli.repo.app import repo_app
from vaultwatch.cli.repo.common import (
    DryRunOpt,
    HostFilter,
    PathFilter,
    TagFilter,
    abs_paths,
    find,
    select,
    split_tags,
)
from vaultwatch.cli.repo.maintenance import run_prune
from vaultwatch.engine.retention import ForgetResult, RetentionPolicy, forget, forget_snapshots
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tag import change_tags


@repo_app.command("snapshots")
def snapshots_cmd(
    ctx: typer.Context,
    host: HostFilter = None,
    path: PathFilter = None,
    tag: TagFilter = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List snapshots, newest last."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output)
    with open_repository(opts) as repository:
        snaps = select(repository, host, path, tag)
    print_snapshots(snaps, opts)


def print_snapshots(snaps: list[Snapshot], opts: RepoSettings) -> None:
    """The snapshot list as ``repo snapshots`` and ``agent snapshots`` print it."""
    if opts.json:
        out.print_json([s.to_summary() for s in snaps])
        return
    table = out.snapshot_table(snaps, size=True)
    out.print_table(table)
    out.line(out.plural(len(snaps), "snapshot"))


def _keep_opt(name: str, what: str) -> Any:
    return typer.Option(
        f"--keep-{name}",
        metavar="N",
        min=-1,
        show_default=False,
        help=f"Keep the {what} (-1: unlimited)",
        rich_help_panel="Policy",
    )


@repo_app.command("forget")
def forget_cmd(
    ctx: typer.Context,
    snapshots: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SNAPSHOT", help="Remove exactly these snapshots", show_default=False
        ),
    ] = None,
    keep_last: Annotated[int, _keep_opt("last", "N newest snapshots")] = 0,
    keep_hourly: Annotated[int, _keep_opt("hourly", "newest snapshot of each of N hours")] = 0,
    keep_daily: Annotated[int, _keep_opt("daily", "newest snapshot of each of N days")] = 0,
    keep_weekly: Annotated[int, _keep_opt("weekly", "newest snapshot of each of N weeks")] = 0,
    keep_monthly: Annotated[int, _keep_opt("monthly", "newest snapshot of each of N months")] = 0,
    keep_yearly: Annotated[int, _keep_opt("yearly", "newest snapshot of each of N years")] = 0,
    keep_within: Annotated[
        str | None,
        typer.Option(
            "--keep-within",
            metavar="DURATION",
            help="Keep snapshots newer than DURATION (like 1y2mo3d4h: years, months, days, hours) before the newest",
            rich_help_panel="Policy",
        ),
    ] = None,
    keep_tag: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-tag",
            metavar="TAG[,TAG]",
            help="Keep snapshots carrying all these tags (repeatable)",
            rich_help_panel="Policy",
        ),
    ] = None,
    group_by: Annotated[
        str,
        typer.Option(
            "--group-by",
            metavar="FIELDS",
            help="Apply the policy per group of host, paths, tags (comma-separated, or '')",
            rich_help_panel="Policy",
        ),
    ] = "host,paths",
    host: HostFilter = None,
    path: PathFilter = None,
    tag: TagFilter = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Run prune afterwards to free the space")
    ] = False,
    dry_run: DryRunOpt = False,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Remove snapshots: the ones named, or those a keep policy does not keep.

    The data stays in the repository until prune (or --prune) removes what no
    snapshot uses any more.
    """
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, quiet=quiet)
    rules_given = any(
        (keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
    ) or bool(keep_within or keep_tag)
    if snapshots and rules_given:
        raise typer.BadParameter(
            "name snapshots or give keep rules, not both", param_hint="SNAPSHOT"
        )
    if snapshots and (host or path or tag):
        raise typer.BadParameter(
            "--host, --path and --tag select snapshots for a policy, not named ones",
            param_hint="SNAPSHOT",
        )
    report: dict[str, Any]
    with open_repository(opts) as repository:
        if snapshots:
            ids = forget_snapshots(repository, snapshots, dry_run)
            report = {"dry_run": dry_run, "remove": ids, "removed": [] if dry_run else ids}
            if opts.summary:
                for sid in ids:
                    out.line(f"{'would remove' if dry_run else 'removed'} snapshot {sid[:8]}")
        else:
            policy = RetentionPolicy.from_options(
                last=keep_last,
                hourly=keep_hourly,
                daily=keep_daily,
                weekly=keep_weekly,
                monthly=keep_monthly,
                yearly=keep_yearly,
                within=keep_within,
                keep_tags=keep_tag or [],
                group_by=group_by,
            )
            result = forget(
                repository,
                policy,
                dry_run,
                hosts=host or None,
                paths=abs_paths(path),
                tags=tag or None,
            )
            report = result.to_dict()
            if opts.summary:
                _print_forget(result, policy)
        if prune:
            report["prune"] = run_prune(repository, opts, dry_run=dry_run, max_unused=None)
    if opts.json:
        out.print_json(report)


def _print_forget(result: ForgetResult, policy: RetentionPolicy) -> None:
    out.line(f"Applying policy: {policy.describe()}")
    for group in result.groups:
        key = group.key
        parts = []
        if key.hostname is not None:
            parts.append(f"host {key.hostname}")
        if key.paths is not None:
            parts.append(f"paths {', '.join(key.paths)}")
        if key.tags is not None:
            parts.append(f"tags {','.join(key.tags) or '(none)'}")
        out.line()
        out.line(f"snapshots for {'; '.join(parts) or 'all'}:")
        out.line(f"keep {out.plural(len(group.keep), 'snapshot')}:")
        keep = out.snapshot_table(group.keep[::-1], reasons=group.reasons)
        out.print_table(keep)
        if group.remove:
            out.line(f"remove {out.plural(len(group.remove), 'snapshot')}:")
            out.print_table(out.snapshot_table(group.remove[::-1]))
    removed = len(result.removed)
    if result.dry_run:
        would = sum(len(g.remove) for g in result.groups)
        out.line(f"would remove {out.plural(would, 'snapshot')} (dry run)")
    else:
        out.line(f"removed {out.plural(removed, 'snapshot')}")


@repo_app.command("tag")
def tag_cmd(
    ctx: typer.Context,
    snapshots: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SNAPSHOT",
            help="Snapshots to change (default: all the filters select)",
            show_default=False,
        ),
    ] = None,
    add: Annotated[
        list[str] | None,
        typer.Option("--add", metavar="TAG[,TAG]", help="Add these tags (repeatable)"),
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", metavar="TAG[,TAG]", help="Remove these tags (repeatable)"),
    ] = None,
    set_to: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="TAG[,TAG]", help="Replace all tags by these ('' for none)"),
    ] = None,
    host: HostFilter = None,
    path: PathFilter = None,
    tag: TagFilter = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Add, remove or set the tags of snapshots (each changed snapshot gets a new id)."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, quiet=quiet)
    with open_repository(opts) as repository:
        if snapshots:
            snaps = [find(repository, s, host, path, tag) for s in snapshots]
        else:
            snaps = select(repository, host, path, tag)
        changes = change_tags(
            repository,
            snaps,
            add=split_tags(add),
            remove=split_tags(remove),
            set_to=split_tags(set_to) if set_to is not None else None,
        )
    if opts.json:
        for c in changes:
            out.print_json(
                {
                    "message_type": "changed_snapshot",
                    "old_snapshot_id": c.old,
                    "new_snapshot_id": c.new,
                    "tags": c.tags,
                }
            )
        out.print_json({"message_type": "summary", "changed_snapshots": len(changes)})
    elif opts.summary:
        for c in changes:
            out.line(
                f"snapshot {c.old[:8]} is now {c.new[:8]}: tags {','.join(c.tags) or '(none)'}"
            )
        out.line(f"modified {out.plural(len(changes), 'snapshot')}")
