"""Getting data back: ``restore`` into a directory, ``dump`` to standard output."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vaultwatch.cli import output as out
from vaultwatch.cli.options import (
    JsonOpt,
    NoLockOpt,
    PassphraseFileOpt,
    QuietOpt,
    RepoOpt,
    RepoSettings,
    open_for_reading,
    settings,
)
from vaultwatch.cli.repo.app import repo_app
from vaultwatch.cli.repo.common import HostFilter, PathFilter, SnapshotArg, TagFilter, find
from vaultwatch.engine.dump import ARCHIVES, TAR, dump
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import RestoreOptions, restore
from vaultwatch.engine.snapshot import Snapshot

IncludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--include",
        "-i",
        metavar="PATTERN",
        help="Restore only what matches (a path like /home/u, or a glob like *.txt; repeatable)",
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        "-e",
        metavar="PATTERN",
        help="Leave out what matches, and all below it (repeatable)",
    ),
]


@repo_app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    snapshot: SnapshotArg,
    target: Annotated[
        Path,
        typer.Option("--target", "-t", metavar="DIR", help="Directory to restore into"),
    ],
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Read the restored files back and compare with the snapshot"),
    ] = False,
    host: HostFilter = None,
    path: PathFilter = None,
    tag: TagFilter = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    no_lock: NoLockOpt = False,
) -> None:
    """Restore a snapshot (or the parts of it that match) into a directory."""
    opts = settings(
        ctx,
        repo=repo,
        passphrase_file=passphrase_file,
        json=json_output,
        quiet=quiet,
        no_lock=no_lock,
    )
    with open_for_reading(opts, "restore") as repository:
        snap = find(repository, snapshot, host, path, tag)
        restore_snapshot(repository, snap, target, include, opts, exclude=exclude, verify=verify)


def restore_snapshot(
    repository: Repository,
    snap: Snapshot,
    target: Path,
    include: list[str] | None,
    opts: RepoSettings,
    *,
    exclude: list[str] | None = None,
    verify: bool = False,
) -> None:
    """Restore with a progress bar and print the outcome: ``repo restore`` and ``agent restore``.

    The engine's restore applies the safety rules (nothing written outside
    ``target``); exits 1 when some paths could not be restored or verified.
    """
    if opts.summary:
        out.note(f"restoring snapshot {snap.short_id} of {', '.join(snap.paths)} to {target}")
    with out.show_progress(opts.quiet) as shown:
        options = RestoreOptions(
            includes=list(include or []), excludes=list(exclude or []), verify=verify
        )
        result = restore(repository, snap, target, options, shown.progress)
    out.report_problems(result.errors)
    if opts.json:
        doc = {
            "message_type": "summary",
            "snapshot_id": snap.id,
            "target": str(target),
            "files_restored": result.files_restored,
            "files_skipped": result.files_skipped,
            "dirs": result.dirs,
            "bytes_written": result.bytes_written,
            "duration": round(result.duration, 3),
            "seconds_elapsed": int(result.duration),
            "errors": out.problem_docs(result.errors),
        }
        if verify:
            doc["files_verified"] = result.files_verified
        out.print_json(doc)
    elif not opts.quiet:
        out.line(
            f"restored {out.plural(result.files_restored, 'file')} ({out.human_bytes(result.bytes_written)}) "
            f"in {out.human_duration(result.duration)}"
            + (f", {result.files_skipped} already up to date" if result.files_skipped else "")
        )
        if verify:
            out.line(f"verified {out.plural(result.files_verified, 'file')}")
    if result.errors:
        out.error(f"{len(result.errors)} path(s) could not be restored")
        raise typer.Exit(1)


@repo_app.command("dump")
def dump_cmd(
    ctx: typer.Context,
    snapshot: SnapshotArg,
    path: Annotated[
        str,
        typer.Argument(
            metavar="PATH", help="A file (its bytes) or a directory (an archive) in the snapshot"
        ),
    ],
    archive: Annotated[
        str,
        typer.Option(
            "--archive",
            "-a",
            metavar="FORMAT",
            help=f"Archive format for a directory ({', '.join(ARCHIVES)})",
        ),
    ] = TAR,
    host: HostFilter = None,
    path_filter: PathFilter = None,
    tag: TagFilter = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    no_lock: NoLockOpt = False,
) -> None:
    """Write a file of a snapshot, or a directory as a tar archive, to stdout."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, no_lock=no_lock)
    if archive not in ARCHIVES:
        raise typer.BadParameter(
            f"{archive!r} is not one of: {', '.join(ARCHIVES)}", param_hint="--archive"
        )
    with open_for_reading(opts, "dump") as repository:
        snap = find(repository, snapshot, host, path_filter, tag)
        sys.stdout.flush()
        dump(repository, snap, path, sys.stdout.buffer, archive=archive)
        sys.stdout.buffer.flush()
