"""``vaultwatch agent snapshots`` and ``agent restore``: a customer's restores with the agent's own config.

The agent's configuration already says how to reach the tenant's vault (the
gateways, the credential, the CA, the passphrase file), so nobody has to
copy the credential out of it. Listing and restoring are the repository
commands' own code (:func:`vaultwatch.cli.repo.print_snapshots`,
:func:`vaultwatch.cli.repo.restore_snapshot`) on the vault the config opens;
which snapshots are this server's is :mod:`vaultwatch.agent.snapshots`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vaultwatch.agent.config import load_config
from vaultwatch.agent.membership import open_with_config
from vaultwatch.agent.snapshots import (
    agent_hostname,
    choose_snapshot,
    restore_set,
    server_snapshots,
)
from vaultwatch.cli.agent_options import ConfigOpt, config_path
from vaultwatch.cli.options import JsonOpt, QuietOpt, RepoSettings, reading
from vaultwatch.cli.repo import print_snapshots, restore_snapshot, terminate_as_interrupt

SetOpt = Annotated[
    str | None,
    typer.Option("--set", "-s", metavar="NAME", help="Backup set (default: every set)"),
]
HostOpt = Annotated[
    str | None,
    typer.Option(
        "--host",
        metavar="NAME",
        help="Server whose snapshots to use (default: this agent's); another server of the "
        "tenant after it was lost",
    ),
]
AllHostsOpt = Annotated[
    bool, typer.Option("--all-hosts", help="Snapshots of every server of the tenant")
]
AgentPassphraseOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        metavar="FILE",
        help="Unlock with this passphrase (default: the agent's own)",
        show_default=False,
    ),
]


def snapshots_cmd(
    backup_set: SetOpt = None,
    host: HostOpt = None,
    all_hosts: AllHostsOpt = False,
    config: ConfigOpt = None,
    passphrase_file: AgentPassphraseOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List this server's snapshots (of one backup set with --set), newest last."""
    cfg = load_config(config_path(config))
    opts = RepoSettings(json=json_output)
    server = None if all_hosts else (host or agent_hostname(cfg))
    repository = open_with_config(cfg, passphrase_file)
    try:
        snaps = server_snapshots(repository, server, backup_set)
    finally:
        repository.close()
    print_snapshots(snaps, opts)


def restore_cmd(
    target: Annotated[
        Path, typer.Option("--target", "-t", metavar="DIR", help="Directory to restore into")
    ],
    snapshot: Annotated[
        str,
        typer.Argument(metavar="SNAPSHOT", help="Snapshot id (prefix) or latest (the default)"),
    ] = "latest",
    backup_set: Annotated[
        str | None,
        typer.Option(
            "--set",
            "-s",
            metavar="NAME",
            help="Backup set whose latest snapshot to restore (default: the agent's only set)",
        ),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            "-i",
            metavar="PATH",
            help="Restore only this path of the snapshot (repeatable)",
        ),
    ] = None,
    host: HostOpt = None,
    config: ConfigOpt = None,
    passphrase_file: AgentPassphraseOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Restore a snapshot of this server (default: the latest of the set) into a directory."""
    cfg = load_config(config_path(config))
    opts = RepoSettings(json=json_output, quiet=quiet)
    name = restore_set(cfg, backup_set) if snapshot == "latest" else backup_set or ""
    with terminate_as_interrupt():
        repository = open_with_config(cfg, passphrase_file)
        try:
            with reading(repository, opts, "restore"):
                snap = choose_snapshot(
                    repository, snapshot, host=host or agent_hostname(cfg), backup_set=name
                )
                restore_snapshot(repository, snap, target, include, opts)
        finally:
            repository.close()


def register(app: typer.Typer) -> None:
    """Add these commands to ``vaultwatch agent``."""
    app.command("snapshots")(snapshots_cmd)
    app.command("restore")(restore_cmd)
