"""``repo backup``: back up paths (or standard input) into a new snapshot, or show what would be.

With --json the output streams as restic's does: ``status`` lines while the
backup runs, one ``summary`` line at the end (or ``verbose_status`` lines
and a summary for --dry-run).
"""

from __future__ import annotations

import glob
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from vaultwatch.cli import output as out
from vaultwatch.cli.options import (
    CliError,
    JsonOpt,
    PassphraseFileOpt,
    QuietOpt,
    RepoOpt,
    open_repository,
    settings,
)
from vaultwatch.cli.repo.app import repo_app
from vaultwatch.cli.repo.common import split_tags
from vaultwatch.engine.backup import BackupOptions, BackupResult, backup
from vaultwatch.engine.backup_plan import DryRunResult, dry_run
from vaultwatch.engine.stdin_backup import backup_stdin

EXIT_PARTIAL = 3
"""restic's code for a snapshot that was written although some files could not be read."""


def read_pattern_file(path: Path, what: str) -> list[str]:
    """restic's format: one entry a line; blank lines and lines starting with # ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{what} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    lines = []
    for raw in text.splitlines():
        entry = raw.strip()
        if entry and not entry.startswith("#"):
            lines.append(entry)
    return lines


def files_from(paths: list[Path]) -> list[str]:
    """The paths the --files-from files list; each line is a glob, kept as is when it matches nothing."""
    out_paths: list[str] = []
    for f in paths:
        for entry in read_pattern_file(f, "files-from file"):
            matches = sorted(glob.glob(entry)) if glob.has_magic(entry) else []
            out_paths.extend(matches or [entry])
    return out_paths


@repo_app.command("backup")
def backup_cmd(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(metavar="PATH", help="Files and directories to back up", show_default=False),
    ] = None,
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
    files_from_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--files-from",
            metavar="FILE",
            help="Back up the paths FILE lists, one a line (globs expanded; repeatable)",
        ),
    ] = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Back up standard input as one file")
    ] = False,
    stdin_filename: Annotated[
        str,
        typer.Option("--stdin-filename", metavar="NAME", help="File name for --stdin"),
    ] = "stdin",
    dry_run_opt: Annotated[
        bool,
        typer.Option("--dry-run", "-n", help="Show what would be backed up; write nothing"),
    ] = False,
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
    """Back up files and directories (or standard input) into a new snapshot."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, quiet=quiet)
    if force and parent is not None:
        raise typer.BadParameter(
            "--force and --parent cannot be used together", param_hint="--force"
        )
    targets = [str(p) for p in paths or []] + files_from(files_from_file or [])
    if stdin and targets:
        raise typer.BadParameter(
            "--stdin backs up standard input only: give no PATH", param_hint="--stdin"
        )
    if stdin and dry_run_opt:
        raise typer.BadParameter("--dry-run cannot be used with --stdin", param_hint="--dry-run")
    if not stdin and not targets:
        raise typer.BadParameter(
            "nothing to back up: give a PATH, --files-from FILE or --stdin", param_hint="PATH"
        )
    excludes = list(exclude or [])
    for f in exclude_file or []:
        excludes.extend(read_pattern_file(f, "exclude file"))
    options = BackupOptions(
        excludes=excludes,
        tags=split_tags(tag),
        hostname=host,
        parent=None if force else (parent or "auto"),
        one_file_system=one_file_system,
    )
    started = datetime.now(UTC)
    with open_repository(opts) as repository:
        if dry_run_opt:
            with out.show_progress(opts.quiet or opts.json) as shown:
                planned = dry_run(repository, targets, options, shown.progress)
            _report_dry_run(planned, opts.json, opts.quiet)
            return
        with (
            out.show_progress(opts.quiet or opts.json) as shown,
            out.JsonStatus(shown.progress, enabled=opts.json),
        ):
            if stdin:
                result = backup_stdin(
                    repository, sys.stdin.buffer, stdin_filename, options, shown.progress
                )
            else:
                result = backup(repository, targets, options, shown.progress)
    out.report_problems(result.errors, result.warnings)
    if opts.json:
        out.print_json(summary_doc(result, started))
    elif not opts.quiet:
        _print_summary(result)
    if result.errors:
        out.warn(
            f"{len(result.errors)} source file(s) could not be read: "
            f"snapshot {result.snapshot.short_id} is incomplete"
        )
        raise typer.Exit(EXIT_PARTIAL)


def summary_doc(result: BackupResult, started: datetime) -> dict[str, Any]:
    """The closing ``summary`` line: restic's field names, and the snapshot's own.

    Every count is the engine's summary (``BackupResult.to_dict``), under
    restic's name where restic has one; errors and warnings are listed.
    """
    snap = result.snapshot
    summary = result.to_dict()
    return {
        "message_type": "summary",
        "dry_run": False,
        "snapshot_id": snap.id,
        "short_id": snap.short_id,
        "parent": snap.parent,
        "paths": snap.paths,
        "hostname": snap.hostname,
        "tags": snap.tags,
        "files_new": summary["files_new"],
        "files_changed": summary["files_changed"],
        "files_unmodified": summary["files_unmodified"],
        "dirs": summary["dirs"],
        "data_added": summary["bytes_added"],
        "data_added_packed": summary["bytes_stored"],
        "total_files_processed": summary["files_total"],
        "total_bytes_processed": summary["total_bytes"],
        "total_duration": summary["duration"],
        "backup_start": started.isoformat(),
        "backup_end": datetime.now(UTC).isoformat(),
        "bytes_read": summary["bytes_read"],
        "bytes_added": summary["bytes_added"],
        "bytes_stored": summary["bytes_stored"],
        "total_bytes": summary["total_bytes"],
        "duration": summary["duration"],
        "errors": out.problem_docs(result.errors),
        "warnings": out.problem_docs(result.warnings),
    }


def _print_summary(result: BackupResult) -> None:
    files = result.files_total
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
    out.line(f"snapshot {result.snapshot.short_id} saved")


def _report_dry_run(r: DryRunResult, as_json: bool, quiet: bool) -> None:
    out.report_problems(r.errors)
    files = r.files_new + r.files_changed + r.files_unmodified
    if as_json:
        for f in r.files:
            out.print_json(
                {
                    "message_type": "verbose_status",
                    "action": f.action,
                    "item": f.path,
                    "data_size": f.size,
                    "data_added": f.data_added,
                }
            )
        out.print_json(
            {
                "message_type": "summary",
                "dry_run": True,
                "paths": r.paths,
                "hostname": r.hostname,
                "parent": r.parent,
                "files_new": r.files_new,
                "files_changed": r.files_changed,
                "files_unmodified": r.files_unmodified,
                "dirs": r.dirs,
                "data_added": r.bytes_added,
                "total_files_processed": files,
                "total_bytes_processed": r.total_bytes,
                "errors": out.problem_docs(r.errors),
            }
        )
        return
    if quiet:
        return
    for f in r.files:
        out.line(f"would back up {f.action:<8} {f.path}")
    out.line(
        f"Files:       {r.files_new:>6} new, {r.files_changed:>6} changed, "
        f"{r.files_unmodified:>6} unmodified"
    )
    out.line(f"Dirs:        {r.dirs:>6}")
    out.line(f"Would add to the repository: {out.human_bytes(r.bytes_added)}")
    out.line(
        f"dry run: {out.plural(files, 'file')}, {out.human_bytes(r.total_bytes)}; nothing was written"
    )
