"""``vaultwatch agent join`` and ``agent key``: this agent's key slot in the tenant's shared vault.

The rules (who may add a slot, what is refused) live in
:mod:`vaultwatch.agent.membership`; these commands parse and print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vaultwatch.agent.config import load_config
from vaultwatch.agent.membership import (
    add_recovery_key,
    default_recovery_label,
    join,
    open_with_config,
)
from vaultwatch.cli import output as out
from vaultwatch.cli.agent_options import ConfigOpt, config_path
from vaultwatch.cli.keys import print_slots
from vaultwatch.cli.options import JsonOpt

key_app = typer.Typer(
    name="key",
    help="Passphrases of the tenant's vault, made with this agent's access.",
    no_args_is_help=True,
)


def join_cmd(
    passphrase_file: Annotated[
        Path,
        typer.Option(
            "--passphrase-file",
            metavar="FILE",
            help="A passphrase that opens the tenant's vault (recovery passphrase, another server's file)",
        ),
    ],
    config: ConfigOpt = None,
) -> None:
    """Give this enrolled agent its own passphrase and key slot in the tenant's vault."""
    cfg = load_config(config_path(config))
    setup = join(cfg, passphrase_file)
    if setup.joined_with is not None:
        out.line(
            f"joined the tenant's vault with key slot {setup.slot_id[:8]} "
            f"(passphrase in {setup.passphrase_file})"
        )
        out.note(f"{passphrase_file} is no longer needed on this server")
    else:
        out.line(f"the vault opens with {setup.passphrase_file} (key slot {setup.slot_id[:8]})")
    out.note("restart the agent if it runs (it also retries by itself within seconds)")


@key_app.command("add")
def key_add_cmd(
    out_file: Annotated[
        Path,
        typer.Option(
            "--out", metavar="FILE", help="Write the new passphrase here (0600; must not exist)"
        ),
    ],
    label: Annotated[
        str | None,
        typer.Option("--label", help="What the slot is for (default: recovery passphrase ...)"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Add a passphrase (a new random one) to the tenant's vault: its recovery passphrase.

    Keep it off the servers. It joins new servers to the vault and restores
    from any machine after a server is lost.
    """
    cfg = load_config(config_path(config))
    slot_id = add_recovery_key(cfg, out_file, label or default_recovery_label())
    out.line(f"added key slot {slot_id[:8]}; its passphrase is in {out_file.absolute()}")
    out.warn(
        f"move {out_file} off this server to a safe place: whoever holds it can read every "
        "backup of the tenant"
    )


@key_app.command("list")
def key_list_cmd(config: ConfigOpt = None, json_output: JsonOpt = False) -> None:
    """List the vault's key slots: one per agent, the recovery passphrases; * is this agent's."""
    cfg = load_config(config_path(config))
    repository = open_with_config(cfg)
    try:
        slots = repository.key_slots()
        current = repository.slot.slot_id
    finally:
        repository.close()
    print_slots(slots, current, as_json=json_output)


def register(app: typer.Typer) -> None:
    """Add these commands to ``vaultwatch agent``."""
    app.command("join")(join_cmd)
    app.add_typer(key_app, name="key")
