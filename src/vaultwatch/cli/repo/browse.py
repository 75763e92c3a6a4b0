"""Reading snapshots without restoring them: ``ls``, ``find``, ``diff``, ``stats``."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from vaultwatch.cli import output as out
from vaultwatch.cli.options import (
    JsonOpt,
    NoLockOpt,
    PassphraseFileOpt,
    QuietOpt,
    RepoOpt,
    open_for_reading,
    settings,
)
from vaultwatch.cli.repo.app import repo_app
from vaultwatch.cli.repo.common import (
    HostFilter,
    LongOpt,
    PathFilter,
    SnapshotArg,
    TagFilter,
    find,
    select,
)
from vaultwatch.engine import browse
from vaultwatch.engine.snapshot import Snapshot


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
    host: HostFilter = None,
    path_filter: PathFilter = None,
    tag: TagFilter = None,
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
        snap = find(repository, snapshot, host, path_filter, tag)
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
            snaps = select(repository, host, path, tag)
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
            else select(repository, host, path, tag)
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
