"""``copy``: snapshots from another repository into this one (migration, media)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

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
from vaultwatch.cli.repo.common import HostFilter, PathFilter, TagFilter, find, select
from vaultwatch.engine.copy import copy_snapshots

FROM_REPO_ENV = "VAULTWATCH_FROM_REPO"
FROM_PASSPHRASE_FILE_ENV = "VAULTWATCH_FROM_PASSPHRASE_FILE"


@repo_app.command("copy")
def copy_cmd(
    ctx: typer.Context,
    snapshots: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SNAPSHOT",
            help="Snapshots of the source to copy (default: all the filters select)",
            show_default=False,
        ),
    ] = None,
    from_repo: Annotated[
        str | None,
        typer.Option(
            "--from-repo",
            metavar="PATH_OR_URL",
            help=f"The repository to copy from (env: {FROM_REPO_ENV})",
            show_default=False,
        ),
    ] = None,
    from_passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--from-passphrase-file",
            metavar="FILE",
            help=f"The source's passphrase (env: {FROM_PASSPHRASE_FILE_ENV}; default: ask)",
            show_default=False,
        ),
    ] = None,
    host: HostFilter = None,
    path: PathFilter = None,
    tag: TagFilter = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Copy snapshots from --from-repo into this repository, encrypted with this one's keys.

    Snapshots already copied are skipped, so the same command can run again
    to bring over only the new ones.
    """
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, quiet=quiet)
    env_file = os.environ.get(FROM_PASSPHRASE_FILE_ENV)
    source = RepoSettings(
        repo=from_repo or os.environ.get(FROM_REPO_ENV) or None,
        passphrase_file=from_passphrase_file or (Path(env_file) if env_file else None),
    )
    if not source.repo:
        raise typer.BadParameter(
            f"give the source with --from-repo or {FROM_REPO_ENV}", param_hint="--from-repo"
        )
    with open_repository(source) as src, open_repository(opts) as dst:
        if snapshots:
            snaps = [find(src, s, host, path, tag) for s in snapshots]
        else:
            snaps = select(src, host, path, tag)
        with out.show_progress(opts.quiet) as shown:
            result = copy_snapshots(src, dst, snaps, shown.progress)
    if opts.json:
        out.print_json(
            {
                "message_type": "summary",
                "copied": result.copied,
                "skipped": result.skipped,
                "blobs_copied": result.blobs_copied,
                "bytes_copied": result.bytes_copied,
            }
        )
    elif opts.summary:
        for old, new in result.copied.items():
            out.line(f"snapshot {old[:8]} copied as {new[:8]}")
        for old in result.skipped:
            out.line(f"snapshot {old[:8]} is already in the destination")
        out.line(
            f"copied {out.plural(len(result.copied), 'snapshot')}, "
            f"{out.human_bytes(result.bytes_copied)} of new data"
        )
