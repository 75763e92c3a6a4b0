"""``vaultwatch repo``: work with a repository directly, with restic's commands and flags.

Each command parses its options, calls one engine function and renders the
result; the rules (what to keep, what to prune, what is damaged) live in the
engine so the agent and the servers apply exactly the same ones.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from vaultwatch.cli import output as out
from vaultwatch.cli.options import (
    CliError,
    JsonOpt,
    KdfMemoryOpt,
    KdfTimeOpt,
    NoLockOpt,
    PassphraseFileOpt,
    QuietOpt,
    RepoOpt,
    RepoSettings,
    kdf_params,
    open_repository,
    open_store_for,
    read_lock,
    resolve_new_passphrase,
    resolve_passphrase,
    settings,
)
from vaultwatch.engine import keys as keyslots
from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.errors import RepositoryExistsError
from vaultwatch.engine.lock import list_locks, remove_stale_locks
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import RestoreOptions, dump, restore
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.store.errors import ObjectNotFoundError

EXIT_PARTIAL = 3
"""restic's code for a snapshot that was written although some files could not be read."""

repo_app = typer.Typer(
    name="repo",
    help="Work with a repository directly: back up, restore, browse, maintain.",
    no_args_is_help=True,
)
key_app = typer.Typer(name="key", help="Manage the repository's key slots.", no_args_is_help=True)
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


def _escrow_public_key(path: Path) -> X25519PublicKey:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read escrow public key {path}: {exc.strerror or exc}") from None
    try:
        return keyslots.load_escrow_public_key(pem)
    except ValueError:
        raise CliError(f"{path} is not a PEM public key") from None


EscrowKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--escrow-public-key",
        metavar="FILE",
        help="Also seal the master key to this X25519 public key (PEM), for managed restores",
        show_default=False,
    ),
]

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
    escrow = _escrow_public_key(escrow_public_key) if escrow_public_key else None
    kdf = kdf_params(kdf_memory, kdf_time)
    with open_store_for(opts, create=True) as store:
        if store.exists("config"):  # before asking for a passphrase twice
            raise RepositoryExistsError(f"a repository already exists at {store.location}")
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
    paths: Annotated[list[Path], typer.Argument(help="Files and directories to back up")],
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
        typer.Option("--host", metavar="HOST", help="Hostname to record [default: this host]"),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option(
            "--parent",
            metavar="SNAPSHOT",
            help="Compare against this snapshot [default: latest of the same paths and host]",
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
    progress = Progress()
    with (
        open_repository(opts) as repository,
        out.ProgressDisplay(progress, enabled=out.progress_wanted(opts.quiet)),
    ):
        result = backup(repository, [str(p) for p in paths], options, progress)
    for problem in result.errors:
        out.error(f"{problem.path}: {problem.message}")
    for problem in result.warnings:
        out.warn(f"{problem.path}: {problem.message}")
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
                "errors": [{"path": e.path, "message": e.message} for e in result.errors],
                "warnings": [{"path": w.path, "message": w.message} for w in result.warnings],
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
            f"processed {files} files, {out.human_bytes(result.total_bytes)} "
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


def _snapshot_matches(snap: Snapshot, hosts: list[str], paths: list[str], tags: list[str]) -> bool:
    """restic's filter: any host, all paths, any tag group (a group "a,b" needs both)."""
    if hosts and snap.hostname not in hosts:
        return False
    if paths and not all(str(Path(p).absolute()) in snap.paths for p in paths):
        return False
    if tags:
        groups = [{t for t in g.split(",") if t} for g in tags]
        if not any(g <= set(snap.tags) for g in groups):
            return False
    return True


HostFilter = Annotated[
    list[str] | None,
    typer.Option("--host", metavar="HOST", help="Only snapshots of this host (repeatable)"),
]
PathFilter = Annotated[
    list[str] | None,
    typer.Option("--path", metavar="PATH", help="Only snapshots including this path (repeatable)"),
]
TagFilter = Annotated[
    list[str] | None,
    typer.Option("--tag", metavar="TAG[,TAG]", help="Only snapshots with these tags (repeatable)"),
]


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
    """List snapshots, oldest first."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output)
    with open_repository(opts) as repository:
        snaps = [
            s
            for s in repository.snapshots()
            if _snapshot_matches(s, host or [], path or [], tag or [])
        ]
    if opts.json:
        out.print_json([s.to_summary() for s in snaps])
        return
    table = out.new_table("ID", "Time", "Host", "Tags", "Paths", "Size", right=["Size"])
    for s in snaps:
        size = s.summary.get("total_bytes")
        table.add_row(
            out.cell(s.short_id),
            out.cell(out.local_time(s.time)),
            out.cell(s.hostname),
            out.cell(",".join(s.tags)),
            out.cell("\n".join(s.paths)),
            out.cell(out.human_bytes(size) if isinstance(size, int) else ""),
        )
    out.print_table(table)
    out.line(f"{len(snaps)} snapshot{'s' if len(snaps) != 1 else ''}")


# -- restore and dump ------------------------------------------------------------------------


@repo_app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    snapshot: Annotated[
        str, typer.Argument(metavar="SNAPSHOT", help="Snapshot id prefix or 'latest'")
    ],
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
    progress = Progress()
    with open_repository(opts) as repository, read_lock(repository, opts, "restore"):
        snap = repository.find_snapshot(snapshot)
        if not opts.quiet and not opts.json:
            out.note(f"restoring snapshot {snap.short_id} of {', '.join(snap.paths)} to {target}")
        with out.ProgressDisplay(progress, enabled=out.progress_wanted(opts.quiet)):
            result = restore(
                repository, snap, target, RestoreOptions(includes=list(include or [])), progress
            )
    for problem in result.errors:
        out.error(f"{problem.path}: {problem.message}")
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
                "errors": [{"path": e.path, "message": e.message} for e in result.errors],
            }
        )
    elif not opts.quiet:
        out.line(
            f"restored {result.files_restored} files ({out.human_bytes(result.bytes_written)}) "
            f"in {out.human_duration(result.duration)}"
            + (f", {result.files_skipped} already up to date" if result.files_skipped else "")
        )
    if result.errors:
        out.error(f"{len(result.errors)} path(s) could not be restored")
        raise typer.Exit(1)


@repo_app.command("dump")
def dump_cmd(
    ctx: typer.Context,
    snapshot: Annotated[
        str, typer.Argument(metavar="SNAPSHOT", help="Snapshot id prefix or 'latest'")
    ],
    path: Annotated[
        str, typer.Argument(metavar="PATH", help="Absolute path of a file in the snapshot")
    ],
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    no_lock: NoLockOpt = False,
) -> None:
    """Write one file of a snapshot to stdout."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, no_lock=no_lock)
    with open_repository(opts) as repository, read_lock(repository, opts, "dump"):
        snap = repository.find_snapshot(snapshot)
        repository.load_index()  # dump looks the path up in trees before loading it itself
        sys.stdout.flush()
        dump(repository, snap, path, sys.stdout.buffer)
        sys.stdout.buffer.flush()


# -- keys --------------------------------------------------------------------------------------


def _slot_doc(slot: keyslots.KeySlot, current: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": slot.slot_id,
        "current": current,
        "kind": slot.kind,
        "created": slot.created,
        "hostname": slot.hostname,
        "username": slot.username,
    }
    if slot.kind == keyslots.PASSPHRASE:
        doc["kdf"] = {k: v for k, v in slot.kdf.items() if k != "salt"}
    else:
        doc["recipient"] = slot.recipient
    return doc


def _slot_detail(slot: keyslots.KeySlot) -> str:
    if slot.kind == keyslots.PASSPHRASE:
        kdf = slot.kdf
        memory = int(kdf.get("memory_kib", 0)) // 1024
        return f"argon2id {memory} MiB, t={kdf.get('time_cost', '?')}"
    return f"recipient {slot.recipient}"


NewPassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--new-passphrase-file",
        metavar="FILE",
        help="Read the new passphrase from the first line of FILE [default: ask twice]",
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
    if opts.json:
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
    escrow = _escrow_public_key(escrow_public_key) if escrow_public_key else None
    with open_repository(opts) as repository:
        if escrow is not None:
            slot = repository.add_escrow(escrow)
        else:
            slot = repository.add_passphrase(
                resolve_new_passphrase(new_passphrase_file), kdf_params(kdf_memory, kdf_time)
            )
    if opts.json:
        out.print_json(_slot_doc(slot, False))
    else:
        out.line(f"added {slot.kind} key slot {slot.slot_id[:8]}")


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
    if opts.json:
        out.print_json({"removed": slot.slot_id, "kind": slot.kind})
    else:
        out.line(f"removed {slot.kind} key slot {slot.slot_id[:8]}")


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
    if opts.json:
        out.print_json({"removed": old, "added": slot.slot_id})
    else:
        out.line(f"passphrase changed: key slot {old[:8]} replaced by {slot.slot_id[:8]}")


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
    if opts.json:
        out.print_json({"removed": removed})
    else:
        out.line(f"removed {removed} lock{'s' if removed != 1 else ''}")
