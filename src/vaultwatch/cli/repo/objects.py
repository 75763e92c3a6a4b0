"""``list`` and ``cat``: the stored objects themselves, for debugging and scripts."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vaultwatch.cli import output as out
from vaultwatch.cli.options import (
    NoLockOpt,
    PassphraseFileOpt,
    RepoOpt,
    open_repository,
    settings,
    shared_lock,
)
from vaultwatch.cli.repo.app import repo_app
from vaultwatch.engine.objects import CATABLE, LISTABLE, cat, list_ids


@repo_app.command("list")
def list_cmd(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(metavar="TYPE", help=f"One of: {', '.join(LISTABLE)}")],
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Print the id of every object of one type, one a line."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file)
    if kind not in LISTABLE:
        raise typer.BadParameter(
            f"{kind!r} is not one of: {', '.join(LISTABLE)}", param_hint="TYPE"
        )
    with open_repository(opts) as repository:
        for object_id in list_ids(repository, kind):
            out.line(object_id)


@repo_app.command("cat")
def cat_cmd(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(metavar="TYPE", help=f"One of: {', '.join(CATABLE)}")],
    object_id: Annotated[
        str | None,
        typer.Argument(metavar="ID", help="Id (a unique prefix; blobs and trees in full)"),
    ] = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    no_lock: NoLockOpt = False,
) -> None:
    """Print one object decrypted: JSON, or a blob's plaintext bytes."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, no_lock=no_lock)
    if kind not in CATABLE:
        raise typer.BadParameter(f"{kind!r} is not one of: {', '.join(CATABLE)}", param_hint="TYPE")
    with open_repository(opts) as repository, shared_lock(repository, opts, "cat"):
        value = cat(repository, kind, object_id)
    if isinstance(value, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
        return
    out.print_json(value)
