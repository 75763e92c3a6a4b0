"""``vaultwatch repo``: work with a repository directly, with restic's commands and flags.

Each command parses its options, calls one engine function and renders the
result; the rules (what to keep, what to prune, what is damaged) live in the
engine so the agent and the servers apply exactly the same ones.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from vaultwatch.cli import output as out
from vaultwatch.cli.keys import key_app
from vaultwatch.cli.options import (
    CliError,
    EscrowKeyOpt,
    JsonOpt,
    KdfMemoryOpt,
    KdfTimeOpt,
    NoLockOpt,
    PassphraseFileOpt,
    QuietOpt,
    RepoOpt,
    RepoSettings,
    kdf_params,
    load_escrow_public_key,
    open_for_reading,
    open_repository,
    open_store_for,
    resolve_passphrase,
    settings,
    shared_lock,
)
from vaultwatch.engine import browse
from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.check import check
from vaultwatch.engine.errors import CheckFailedError, RepositoryExistsError
from vaultwatch.engine.lock import list_locks, remove_stale_locks
from vaultwatch.engine.prune import PruneOptions, PruneResult, prune
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import RestoreOptions, dump, restore
from vaultwatch.engine.retention import (
    ForgetResult,
    RetentionPolicy,
    forget,
    forget_snapshots,
    select_snapshots,
)
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.store.base import Store
from vaultwatch.store.errors import ObjectNotFoundError
from vaultwatch.store.local import LocalStore

EXIT_PARTIAL = 3
"""restic's code for a snapshot that was written although some files could not be read."""

repo_app = typer.Typer(
    name="repo",
    help="Work with a repository directly: back up, restore, browse, maintain.",
    no_args_is_help=True,
)
repo_app.add_typer(key_app, name="key")


@repo_app.callback()
def repo_group(
    ctx: typer.Context,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    no_lock: NoLockOpt = False,
) -> None:
    """Work with a repository directly: back up, restore, browse, maintain."""
    ctx.obj = RepoSettings(repo, passphrase_file, json_output, quiet, no_lock)
    ctx.with_resource(terminate_as_interrupt())


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM (``kill``, a service or container stop) acts as Ctrl-C.

    Python's default lets SIGTERM end the process on the spot, leaving the
    repository lock behind and the packs written so far unindexed. Raised
    as KeyboardInterrupt in the main thread, it unwinds through the same
    cleanup as Ctrl-C and ends with the same message and exit code.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread (a test runner's worker thread)
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# -- init --------------------------------------------------------------------------------------


@repo_app.command("init")
def init_cmd(
    ctx: typer.Context,
    kdf_memory: KdfMemoryOpt = None,
    kdf_time: KdfTimeOpt = None,
    escrow_public_key: EscrowKeyOpt = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a new repository."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output)
    escrow = load_escrow_public_key(escrow_public_key)
    kdf = kdf_params(kdf_memory, kdf_time)
    with open_store_for(opts, create=True) as store:
        if store.exists("config"):  # before asking for a passphrase twice
            raise RepositoryExistsError(f"a repository already exists at {store.location}")
        if _holds_anything(store):
            raise CliError(
                f"{store.location} is not empty and holds no repository: "
                "init needs an empty or new directory (or bucket prefix)"
            )
        passphrase = resolve_passphrase(opts, confirm=True)
        repository = Repository.init(store, passphrase, kdf=kdf, escrow_public=escrow)
        if opts.json:
            out.print_json(
                {
                    "id": repository.config.repo_id,
                    "location": store.location,
                    "escrow": escrow is not None,
                }
            )
            return
        out.line(f"created repository {repository.config.repo_id} at {store.location}")
        out.note(
            "Keep the passphrase safe: without it the data in this repository cannot be "
            "recovered by anyone."
        )


def _holds_anything(store: Store) -> bool:
    """Whether init would write among files already there (any file counts, not only objects)."""
    if isinstance(store, LocalStore):
        return store.root.is_dir() and any(store.root.iterdir())
    return next(iter(store.list()), None) is not None


# -- backup ------------------------------------------------------------------------------------


def _read_exclude_file(path: Path) -> list[str]:
    """restic's format: one pattern a line; blank lines and lines starting with # ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliError(f"exclude file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise CliError(f"cannot read exclude file {path}: {exc.strerror or exc}") from None
    patterns = []
    for raw in text.splitlines():
        pattern = raw.strip()
        if pattern and not pattern.startswith("#"):
            patterns.append(pattern)
    return patterns


def _split_tags(values: list[str] | None) -> list[str]:
    """``--tag a,b --tag c`` -> [a, b, c], as restic accepts both forms."""
    tags: list[str] = []
    for value in values or []:
        for tag in value.split(","):
            if tag.strip() and tag.strip() not in tags:
                tags.append(tag.strip())
    return tags


@repo_app.command("backup")
def backup_cmd(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATH", help="Files and directories to back up")
    ],
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            "-e",
            metavar="PATTERN",
            help="Leave out matching names (no slash) or paths (with a slash); repeatable",
        ),
    ] = None,
    exclude_file: Annotated[
        list[Path] | None,
        typer.Option("--exclude-file", metavar="FILE", help="Read exclude patterns from FILE"),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="TAG", help="Tag the snapshot (repeatable, or a,b)"),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", metavar="HOST", help="Hostname to record (default: this host)"),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option(
            "--parent",
            metavar="SNAPSHOT",
            help="Compare against this snapshot (default: latest of the same paths and host)",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Read every file again: use no parent snapshot")
    ] = False,
    one_file_system: Annotated[
        bool,
        typer.Option("--one-file-system", "-x", help="Do not cross into other file systems"),
    ] = False,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Back up files and directories into a new snapshot."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, quiet=quiet)
    if force and parent is not None:
        raise typer.BadParameter(
            "--force and --parent cannot be used together", param_hint="--force"
        )
    excludes = list(exclude or [])
    for f in exclude_file or []:
        excludes.extend(_read_exclude_file(f))
    options = BackupOptions(
        excludes=excludes,
        tags=_split_tags(tag),
        hostname=host,
        parent=None if force else (parent or "auto"),
        one_file_system=one_file_system,
    )
    with open_repository(opts) as repository, out.show_progress(opts.quiet) as shown:
        result = backup(repository, [str(p) for p in paths], options, shown.progress)
    out.report_problems(result.errors, result.warnings)
    snap = result.snapshot
    if opts.json:
        out.print_json(
            {
                "snapshot_id": snap.id,
                "short_id": snap.short_id,
                "parent": snap.parent,
                "paths": snap.paths,
                "hostname": snap.hostname,
                "tags": snap.tags,
                "files_new": result.files_new,
                "files_changed": result.files_changed,
                "files_unmodified": result.files_unmodified,
                "dirs": result.dirs,
                "bytes_read": result.bytes_read,
                "bytes_added": result.bytes_added,
                "bytes_stored": result.bytes_stored,
                "total_bytes": result.total_bytes,
                "duration": round(result.duration, 3),
                "errors": out.problem_docs(result.errors),
                "warnings": out.problem_docs(result.warnings),
            }
        )
    elif not opts.quiet:
        files = result.files_new + result.files_changed + result.files_unmodified
        out.line(
            f"Files:       {result.files_new:>6} new, {result.files_changed:>6} changed, "
            f"{result.files_unmodified:>6} unmodified"
        )
        out.line(f"Dirs:        {result.dirs:>6}")
        out.line(
            f"Added to the repository: {out.human_bytes(result.bytes_added)} "
            f"({out.human_bytes(result.bytes_stored)} stored)"
        )
        out.line(
            f"processed {out.plural(files, 'file')}, {out.human_bytes(result.total_bytes)} "
            f"in {out.human_duration(result.duration)}"
        )
        out.line(f"snapshot {snap.short_id} saved")
    if result.errors:
        out.warn(
            f"{len(result.errors)} source file(s) could not be read: "
            f"snapshot {snap.short_id} is incomplete"
        )
        raise typer.Exit(EXIT_PARTIAL)


# -- snapshots ---------------------------------------------------------------------------------

SnapshotArg = Annotated[
    str, typer.Argument(metavar="SNAPSHOT", help="Snapshot id (a unique prefix) or 'latest'")
]
HostFilter = Annotated[
    list[str] | None,
    typer.Option("--host", metavar="HOST", help="Only snapshots of this host (repeatable)"),
]
PathFilter = Annotated[
    list[str] | None,
    typer.Option(
        "--path", metavar="PATH", help="Only snapshots that include this path (repeatable)"
    ),
]
TagFilter = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        metavar="TAG[,TAG]",
        help="Only snapshots carrying all these tags (repeatable: any of the groups)",
    ),
]
SnapshotPrefixArg = Annotated[
    str, typer.Argument(metavar="SNAPSHOT", help="Snapshot id prefix or 'latest'")
]
LongOpt = Annotated[
    bool, typer.Option("--long", "-l", help="Long format: permissions, owner, size, time")
]


def _abs_paths(paths: list[str] | None) -> list[str] | None:
    """Snapshot paths are absolute; let people type them relative to where they are."""
    return [os.path.abspath(p) for p in paths] if paths else None


def _select(
    repository: Repository,
    hosts: list[str] | None,
    paths: list[str] | None,
    tags: list[str] | None,
) -> list[Snapshot]:
    return select_snapshots(
        repository.snapshots(), hosts=hosts or None, paths=_abs_paths(paths), tags=tags or None
    )


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
        snaps = _select(repository, host, path, tag)
    if opts.json:
        out.print_json([s.to_summary() for s in snaps])
        return
    table = out.snapshot_table(snaps, size=True)
    out.print_table(table)
    out.line(out.plural(len(snaps), "snapshot"))


# -- ls, find, diff, stats -----------------------------------------------------------------------


@repo_app.command("ls")
def ls_cmd(
    ctx: typer.Context,
    snapshot: SnapshotArg,
    path: Annotated[
        str | None,
        typer.Argument(
            metavar="PATH",
            show_default=False,
            help="Directory or file in the snapshot (default: /)",
        ),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-R", help="Everything below the directory")
    ] = False,
    long: LongOpt = False,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    no_lock: NoLockOpt = False,
) -> None:
    """List the files of a snapshot: all of them, or those of one directory.

    With --json the output is one JSON object per line (restic's format): the
    snapshot first, then each entry, so huge listings stream.
    """
    opts = settings(
        ctx,
        repo=repo,
        passphrase_file=passphrase_file,
        json=json_output,
        quiet=quiet,
        no_lock=no_lock,
    )
    with open_for_reading(opts, "ls") as repository:
        snap = repository.find_snapshot(snapshot)
        # restic: without a path everything is listed; with one, its entries (all with -R).
        entries = browse.ls(repository, snap, path, recursive=recursive or path is None)
        if opts.json:
            out.print_json({"struct_type": "snapshot", **snap.to_summary()})
            for entry_path, node in entries:
                out.print_json({"struct_type": "node", **out.node_doc(entry_path, node)})
            return
        if not opts.quiet:
            out.note(
                f"snapshot {snap.short_id} of {', '.join(snap.paths)} "
                f"at {out.local_time(snap.time)}:"
            )
        for entry_path, node in entries:
            out.line(out.node_entry(entry_path, node, long=long))


@repo_app.command("find")
def find_cmd(
    ctx: typer.Context,
    patterns: Annotated[
        list[str],
        typer.Argument(
            metavar="PATTERN",
            help="Glob on names (or on full paths when it contains /)",
        ),
    ],
    snapshot: Annotated[
        list[str] | None,
        typer.Option(
            "--snapshot",
            "-s",
            metavar="SNAPSHOT",
            help="Search only this snapshot (repeatable) (default: all)",
        ),
    ] = None,
    ignore_case: Annotated[
        bool, typer.Option("--ignore-case", "-i", help="Match regardless of case")
    ] = False,
    long: LongOpt = False,
    host: HostFilter = None,
    path: PathFilter = None,
    tag: TagFilter = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    no_lock: NoLockOpt = False,
) -> None:
    """Find files and directories by name in snapshots."""
    opts = settings(
        ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, no_lock=no_lock
    )
    with open_for_reading(opts, "find") as repository:
        if snapshot:
            snaps = list({s.id: s for s in map(repository.find_snapshot, snapshot)}.values())
        else:
            snaps = _select(repository, host, path, tag)
        groups: dict[str, tuple[Snapshot, list[browse.FindMatch]]] = {}
        for match in browse.find(repository, snaps, patterns, ignore_case=ignore_case):
            groups.setdefault(match.snapshot.id, (match.snapshot, []))[1].append(match)
    if opts.json:
        out.print_json(
            [
                {
                    "snapshot": snap.id,
                    "hits": len(matches),
                    "matches": [out.node_doc(m.path, m.node) for m in matches],
                }
                for snap, matches in groups.values()
            ]
        )
        return
    for snap, matches in groups.values():
        out.line(
            f"Found matching entries in snapshot {snap.short_id} from {out.local_time(snap.time)}"
        )
        for m in matches:
            out.line(out.node_entry(m.path, m.node, long=long))
        out.line()
    if not groups:
        out.note("no matches")


def _change_doc(change: browse.Change) -> dict[str, Any]:
    node = change.new or change.old
    return {
        "path": browse.display_path(change.path),
        "code": change.code,
        "kind": change.kind,
        "type": node.type if node is not None else None,
        "old_type": change.old.type if change.old is not None else None,
        "content": change.content,
        "metadata": change.metadata,
    }


@repo_app.command("diff")
def diff_cmd(
    ctx: typer.Context,
    snapshot_a: Annotated[str, typer.Argument(metavar="SNAPSHOT_A", help="The older snapshot")],
    snapshot_b: Annotated[str, typer.Argument(metavar="SNAPSHOT_B", help="The newer snapshot")],
    metadata: Annotated[
        bool,
        typer.Option("--metadata", help="Also list entries whose metadata alone changed (U)"),
    ] = False,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    no_lock: NoLockOpt = False,
) -> None:
    """Show what changed between two snapshots (+ added, - removed, M modified, T type)."""
    opts = settings(
        ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, no_lock=no_lock
    )
    with open_for_reading(opts, "diff") as repository:
        snap_a = repository.find_snapshot(snapshot_a)
        snap_b = repository.find_snapshot(snapshot_b)
        changes = [c for c in browse.diff(repository, snap_a, snap_b) if metadata or c.code != "U"]
    summary = browse.summarize(changes)
    if opts.json:
        out.print_json(
            {
                "snapshot_a": snap_a.id,
                "snapshot_b": snap_b.id,
                "changes": [_change_doc(c) for c in changes],
                "summary": summary,
            }
        )
        return
    out.line(f"comparing snapshot {snap_a.short_id} to {snap_b.short_id}:")
    out.line()
    for c in changes:
        out.line(f"{c.code:<5}{c.display}")
    out.line()
    out.line(
        f"Entries: {summary.added} added, {summary.removed} removed, "
        f"{summary.modified} modified, {summary.type_changed} changed type"
    )
    out.line(f"Added:   {out.human_bytes(summary.added_bytes)}")
    out.line(f"Removed: {out.human_bytes(summary.removed_bytes)}")


@repo_app.command("stats")
def stats_cmd(
    ctx: typer.Context,
    snapshot: Annotated[
        str | None,
        typer.Argument(
            metavar="SNAPSHOT", show_default=False, help="One snapshot (default: every snapshot)"
        ),
    ] = None,
    host: HostFilter = None,
    path: PathFilter = None,
    tag: TagFilter = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    no_lock: NoLockOpt = False,
) -> None:
    """Count files and bytes of snapshots, and the deduplicated data they use."""
    opts = settings(
        ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, no_lock=no_lock
    )
    with open_for_reading(opts, "stats") as repository:
        snaps = (
            [repository.find_snapshot(snapshot)]
            if snapshot
            else _select(repository, host, path, tag)
        )
        result = browse.stats(repository, snaps)
    if result.missing_blobs:
        out.warn(
            f"{result.missing_blobs} blob(s) these snapshots need are not in the index: "
            "run 'vaultwatch repo check'"
        )
    if opts.json:
        out.print_json({"snapshot_ids": [s.id for s in snaps], **dataclasses.asdict(result)})
        return
    which = f"snapshot {snaps[0].short_id}" if snapshot else out.plural(len(snaps), "snapshot")
    ratio = result.total_size / result.raw_size if result.raw_size else 0.0
    out.line(f"Stats for {which}:")
    out.line(f"  Files:            {result.files}")
    out.line(f"  Directories:      {result.dirs}")
    out.line(f"  Symlinks:         {result.symlinks}")
    if result.other:
        out.line(f"  Other entries:    {result.other}")
    out.line(f"  Restore size:     {out.human_bytes(result.total_size)}")
    out.line(
        f"  Unique data:      {out.human_bytes(result.raw_size)} in {result.blobs} blobs "
        f"({out.human_bytes(result.stored_size)} stored)"
    )
    if ratio:
        out.line(f"  Deduplication:    {ratio:.2f}x")


# -- forget --------------------------------------------------------------------------------------


DryRunOpt = Annotated[bool, typer.Option("--dry-run", "-n", help="Only show what would be removed")]


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
            help="Keep snapshots newer than DURATION (like 1y2m3d4h) before the newest",
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
                paths=_abs_paths(path),
                tags=tag or None,
            )
            report = result.to_dict()
            if opts.summary:
                _print_forget(result, policy)
        if prune:
            report["prune"] = _prune(repository, opts, dry_run=dry_run, max_unused=None)
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


# -- restore and dump ------------------------------------------------------------------------


@repo_app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    snapshot: SnapshotPrefixArg,
    target: Annotated[
        Path,
        typer.Option("--target", "-t", metavar="DIR", help="Directory to restore into"),
    ],
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            "-i",
            metavar="PATH",
            help="Restore only this path of the snapshot (repeatable)",
        ),
    ] = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    no_lock: NoLockOpt = False,
) -> None:
    """Restore a snapshot (or some of its paths) into a directory."""
    opts = settings(
        ctx,
        repo=repo,
        passphrase_file=passphrase_file,
        json=json_output,
        quiet=quiet,
        no_lock=no_lock,
    )
    with open_for_reading(opts, "restore") as repository:
        snap = repository.find_snapshot(snapshot)
        if opts.summary:
            out.note(f"restoring snapshot {snap.short_id} of {', '.join(snap.paths)} to {target}")
        with out.show_progress(opts.quiet) as shown:
            options = RestoreOptions(includes=list(include or []))
            result = restore(repository, snap, target, options, shown.progress)
    out.report_problems(result.errors)
    if opts.json:
        out.print_json(
            {
                "snapshot_id": snap.id,
                "target": str(target),
                "files_restored": result.files_restored,
                "files_skipped": result.files_skipped,
                "dirs": result.dirs,
                "bytes_written": result.bytes_written,
                "duration": round(result.duration, 3),
                "errors": out.problem_docs(result.errors),
            }
        )
    elif not opts.quiet:
        out.line(
            f"restored {out.plural(result.files_restored, 'file')} ({out.human_bytes(result.bytes_written)}) "
            f"in {out.human_duration(result.duration)}"
            + (f", {result.files_skipped} already up to date" if result.files_skipped else "")
        )
    if result.errors:
        out.error(f"{len(result.errors)} path(s) could not be restored")
        raise typer.Exit(1)


@repo_app.command("dump")
def dump_cmd(
    ctx: typer.Context,
    snapshot: SnapshotPrefixArg,
    path: Annotated[
        str, typer.Argument(metavar="PATH", help="Absolute path of a file in the snapshot")
    ],
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    no_lock: NoLockOpt = False,
) -> None:
    """Write one file of a snapshot to stdout."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, no_lock=no_lock)
    with open_for_reading(opts, "dump") as repository:
        snap = repository.find_snapshot(snapshot)
        sys.stdout.flush()
        dump(repository, snap, path, sys.stdout.buffer)
        sys.stdout.buffer.flush()


# -- prune ---------------------------------------------------------------------------------------


def _parse_percent(text: str) -> float:
    """``10`` or ``10%`` -> 10.0, within 0..100."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a percentage (like 10 or 10%)", param_hint="--max-unused"
        ) from None
    if not 0 <= value <= 100:
        raise typer.BadParameter(f"{text!r} is not between 0 and 100", param_hint="--max-unused")
    return value


def _prune(
    repository: Repository, opts: RepoSettings, *, dry_run: bool, max_unused: float | None
) -> dict[str, Any]:
    """Run prune with a progress display, print its summary and return it for JSON."""
    options = PruneOptions(repack_threshold=max_unused / 100) if max_unused is not None else None
    with out.show_progress(opts.quiet) as shown:
        result = prune(repository, dry_run=dry_run, options=options, progress=shown.progress)
    if opts.summary:
        _print_prune(result)
    return result.to_dict()


def _print_prune(r: PruneResult) -> None:
    would = "would be " if r.dry_run else ""
    uses = "uses" if r.snapshots == 1 else "use"
    out.line(
        f"{out.plural(r.snapshots, 'snapshot')} {uses} {r.blobs_used} of {r.blobs_total} blobs"
    )
    out.line(
        f"packs: {r.packs_total} stored, {r.packs_kept} kept, "
        f"{r.packs_deleted} {would}deleted, {r.packs_repacked} {would}repacked "
        f"into {r.packs_written}"
    )
    if r.packs_unindexed:
        out.line(
            f"packs no index lists: {r.packs_unindexed}"
            + ("" if r.dry_run else f", {r.packs_unindexed_deleted} deleted")
        )
    if r.packs_missing:
        out.line(f"packs missing from the store: {r.packs_missing}")
    if r.blobs_duplicate:
        out.line(f"duplicate blobs: {r.blobs_duplicate}")
    out.line(
        f"unused blobs {would}removed: {r.blobs_removed}, "
        f"blobs {would}repacked: {r.blobs_repacked} ({out.human_bytes(r.bytes_repacked)})"
    )
    out.line(
        f"repository size: {out.human_bytes(r.bytes_before)} -> "
        f"{out.human_bytes(r.bytes_after)} ({out.human_bytes(r.bytes_freed)} {would}freed)"
    )
    for message in r.messages:
        out.note(message)


@repo_app.command("prune")
def prune_cmd(
    ctx: typer.Context,
    dry_run: DryRunOpt = False,
    max_unused: Annotated[
        str | None,
        typer.Option(
            "--max-unused",
            metavar="PERCENT",
            help="Repack a partly used pack once this share of it is unused (default: 20%)",
            show_default=False,
        ),
    ] = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Remove data that no snapshot uses any more."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, quiet=quiet)
    percent = _parse_percent(max_unused) if max_unused is not None else None
    with open_repository(opts) as repository:
        report = _prune(repository, opts, dry_run=dry_run, max_unused=percent)
    if opts.json:
        out.print_json(report)


# -- check ---------------------------------------------------------------------------------------


@repo_app.command("check")
def check_cmd(
    ctx: typer.Context,
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Also download and verify every pack")
    ] = False,
    read_data_subset: Annotated[
        str | None,
        typer.Option(
            "--read-data-subset",
            metavar="n/t|x%",
            help="Verify part of the packs: group n of t (1/5 ... 5/5), or x% chosen at random",
            show_default=False,
        ),
    ] = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    no_lock: NoLockOpt = False,
) -> None:
    """Verify that every snapshot can be restored; exit 1 and list the problems when not."""
    opts = settings(
        ctx,
        repo=repo,
        passphrase_file=passphrase_file,
        json=json_output,
        quiet=quiet,
        no_lock=no_lock,
    )
    with (
        open_repository(opts) as repository,
        shared_lock(repository, opts, "check"),
        out.show_progress(opts.quiet) as shown,
    ):
        result = check(repository, read_data, read_data_subset, shown.progress, lock=False)
    for problem in result.warnings:
        out.warn(problem.message)
    for problem in result.errors:
        out.error(problem.message)
    if opts.json:
        out.print_json(result.to_dict())
    elif not opts.quiet:
        read = (
            f", read {result.packs_read} packs ({out.human_bytes(result.bytes_read)})"
            if read_data or read_data_subset is not None
            else ""
        )
        out.line(
            f"checked {out.plural(result.snapshots, 'snapshot')}, {out.plural(result.trees, 'tree')}, "
            f"{out.plural(result.index_files, 'index file')}, {out.plural(result.packs, 'pack')}{read}"
        )
        if result.ok:
            out.line("no errors were found")
    if not result.ok:
        raise CheckFailedError(
            f"the repository has {out.plural(len(result.errors), 'error')}: "
            "some data cannot be restored"
        )


# -- unlock --------------------------------------------------------------------------------------


@repo_app.command("unlock")
def unlock_cmd(
    ctx: typer.Context,
    remove_all: Annotated[
        bool,
        typer.Option("--remove-all", help="Remove every lock, also live ones (be sure first)"),
    ] = False,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Remove stale locks left by crashed or killed processes."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output)
    with open_repository(opts) as repository:
        if remove_all:
            removed = 0
            for lock in list_locks(repository.store):
                try:
                    repository.store.delete(lock.name)
                    removed += 1
                except ObjectNotFoundError:
                    continue  # released meanwhile
        else:
            removed = remove_stale_locks(repository.store)
    out.json_or_line(opts.json, {"removed": removed}, f"removed {out.plural(removed, 'lock')}")
