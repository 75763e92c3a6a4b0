"""``repo init``: create a repository."""

from __future__ import annotations

import typer

from vaultwatch.cli import output as out
from vaultwatch.cli.options import (
    CliError,
    EscrowKeyOpt,
    JsonOpt,
    KdfMemoryOpt,
    KdfTimeOpt,
    PassphraseFileOpt,
    RepoOpt,
    kdf_params,
    load_escrow_public_key,
    open_store_for,
    resolve_passphrase,
    settings,
)
from vaultwatch.cli.repo.app import repo_app
from vaultwatch.engine.errors import RepositoryExistsError
from vaultwatch.engine.repository import Repository


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
        if store.holds_anything():
            raise CliError(
                f"{store.location} is not empty and holds no repository: "
                "init needs an empty or new directory (or bucket prefix)"
            )
        passphrase = resolve_passphrase(opts, confirm=True)
        repository = Repository.init(store, passphrase, kdf=kdf, escrow_public=escrow)
        if opts.json:
            out.print_json(
                {
                    "message_type": "initialized",
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
