"""``vaultwatch repo key``: the key slots that unlock a repository's master key.

Adding, changing and removing passphrases re-wraps the master key only; no
data is re-encrypted, so these commands are instant on any repository size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vaultwatch.cli import output as out
from vaultwatch.cli.options import (
    EscrowKeyOpt,
    JsonOpt,
    KdfMemoryOpt,
    KdfTimeOpt,
    PassphraseFileOpt,
    RepoOpt,
    kdf_params,
    load_escrow_public_key,
    open_repository,
    resolve_new_passphrase,
    settings,
)
from vaultwatch.engine import keys as keyslots

key_app = typer.Typer(name="key", help="Manage the repository's key slots.", no_args_is_help=True)


def _slot_doc(slot: keyslots.KeySlot, current: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": slot.slot_id,
        "current": current,
        "kind": slot.kind,
        "created": slot.created,
        "hostname": slot.hostname,
        "username": slot.username,
        "label": slot.label,
    }
    if slot.kind == keyslots.PASSPHRASE:
        doc["kdf"] = {k: v for k, v in slot.kdf.items() if k != "salt"}
    else:
        doc["recipient"] = slot.recipient
    return doc


def _slot_detail(slot: keyslots.KeySlot) -> str:
    """How the slot is sealed, then whose it is (an agent's, the recovery passphrase ...)."""
    if slot.kind == keyslots.PASSPHRASE:
        kdf = slot.kdf
        memory = int(kdf.get("memory_kib", 0)) // 1024
        detail = f"argon2id {memory} MiB, t={kdf.get('time_cost', '?')}"
    else:
        detail = f"recipient {slot.recipient}"
    return f"{detail}; {slot.label}" if slot.label else detail


NewPassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--new-passphrase-file",
        metavar="FILE",
        help="Read the new passphrase from the first line of FILE (default: ask twice)",
        show_default=False,
    ),
]


@key_app.command("list")
def key_list_cmd(
    ctx: typer.Context,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List key slots; the one this passphrase opened is marked with *."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output)
    with open_repository(opts) as repository:
        slots = repository.key_slots()
        current = repository.slot.slot_id
    print_slots(slots, current, as_json=opts.json)


def print_slots(slots: list[keyslots.KeySlot], current: str, *, as_json: bool) -> None:
    """The key slots as ``repo key list`` and ``agent key list`` print them (* marks ``current``)."""
    if as_json:
        out.print_json([_slot_doc(s, s.slot_id == current) for s in slots])
        return
    table = out.new_table(" ", "ID", "Kind", "User", "Host", "Created", "Detail")
    for s in slots:
        table.add_row(
            out.cell("*" if s.slot_id == current else ""),
            out.cell(s.slot_id[:8]),
            out.cell(s.kind),
            out.cell(s.username),
            out.cell(s.hostname),
            out.cell(s.created),
            out.cell(_slot_detail(s)),
        )
    out.print_table(table)


@key_app.command("add")
def key_add_cmd(
    ctx: typer.Context,
    new_passphrase_file: NewPassphraseFileOpt = None,
    escrow_public_key: EscrowKeyOpt = None,
    kdf_memory: KdfMemoryOpt = None,
    kdf_time: KdfTimeOpt = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Add a passphrase slot (or, with --escrow-public-key, an escrow slot)."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output)
    if escrow_public_key is not None and new_passphrase_file is not None:
        raise typer.BadParameter(
            "--escrow-public-key adds an escrow slot and takes no new passphrase",
            param_hint="--new-passphrase-file",
        )
    escrow = load_escrow_public_key(escrow_public_key)
    with open_repository(opts) as repository:
        if escrow is not None:
            slot = repository.add_escrow(escrow)
        else:
            slot = repository.add_passphrase(
                resolve_new_passphrase(new_passphrase_file), kdf_params(kdf_memory, kdf_time)
            )
    out.json_or_line(
        opts.json, _slot_doc(slot, False), f"added {slot.kind} key slot {slot.slot_id[:8]}"
    )


@key_app.command("remove")
def key_remove_cmd(
    ctx: typer.Context,
    slot_id: Annotated[str, typer.Argument(metavar="ID", help="Key slot id or unique prefix")],
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Remove a key slot (never the last passphrase slot)."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output)
    with open_repository(opts) as repository:
        slot = repository.remove_slot(slot_id)
    out.json_or_line(
        opts.json,
        {"removed": slot.slot_id, "kind": slot.kind},
        f"removed {slot.kind} key slot {slot.slot_id[:8]}",
    )


@key_app.command("passwd")
def key_passwd_cmd(
    ctx: typer.Context,
    new_passphrase_file: NewPassphraseFileOpt = None,
    kdf_memory: KdfMemoryOpt = None,
    kdf_time: KdfTimeOpt = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Change the passphrase: replace the slot it opens with one for a new passphrase."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output)
    with open_repository(opts) as repository:
        old = repository.slot.slot_id
        slot = repository.change_passphrase(
            resolve_new_passphrase(new_passphrase_file), kdf_params(kdf_memory, kdf_time)
        )
    out.json_or_line(
        opts.json,
        {"removed": old, "added": slot.slot_id},
        f"passphrase changed: key slot {old[:8]} replaced by {slot.slot_id[:8]}",
    )
