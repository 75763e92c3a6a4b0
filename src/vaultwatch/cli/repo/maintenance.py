"""Repository upkeep: ``prune``, ``check``, ``unlock``."""

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
    RepoSettings,
    open_repository,
    settings,
    shared_lock,
)
from vaultwatch.cli.repo.app import repo_app
from vaultwatch.cli.repo.common import DryRunOpt
from vaultwatch.engine.check import check
from vaultwatch.engine.errors import CheckFailedError
from vaultwatch.engine.lock import list_locks, remove_stale_locks
from vaultwatch.engine.prune import PruneOptions, PruneResult, prune
from vaultwatch.engine.repair import repair_index
from vaultwatch.engine.repository import Repository
from vaultwatch.store.errors import ObjectNotFoundError


def _parse_percent(text: str) -> float:
    """``10`` or ``10%`` -> 10.0, within 0..100."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a percentage (like 10 or 10%)", param_hint="--max-unused"
        ) from None
    if not 0 <= value <= 100:
        raise typer.BadParameter(f"{text!r} is not between 0 and 100", param_hint="--max-unused")
    return value


def run_prune(
    repository: Repository, opts: RepoSettings, *, dry_run: bool, max_unused: float | None
) -> dict[str, Any]:
    """Run prune with a progress display, print its summary and return it for JSON."""
    options = PruneOptions(repack_threshold=max_unused / 100) if max_unused is not None else None
    with out.show_progress(opts.quiet) as shown:
        result = prune(repository, dry_run=dry_run, options=options, progress=shown.progress)
    if opts.summary:
        _print_prune(result)
    return result.to_dict()


def _print_prune(r: PruneResult) -> None:
    would = "would be " if r.dry_run else ""
    uses = "uses" if r.snapshots == 1 else "use"
    out.line(
        f"{out.plural(r.snapshots, 'snapshot')} {uses} {r.blobs_used} of {r.blobs_total} blobs"
    )
    out.line(
        f"packs: {r.packs_total} stored, {r.packs_kept} kept, "
        f"{r.packs_deleted} {would}deleted, {r.packs_repacked} {would}repacked "
        f"into {r.packs_written}"
    )
    if r.packs_unindexed:
        out.line(
            f"packs no index lists: {r.packs_unindexed}"
            + ("" if r.dry_run else f", {r.packs_unindexed_deleted} deleted")
        )
    if r.packs_missing:
        out.line(f"packs missing from the store: {r.packs_missing}")
    if r.blobs_duplicate:
        out.line(f"duplicate blobs: {r.blobs_duplicate}")
    out.line(
        f"unused blobs {would}removed: {r.blobs_removed}, "
        f"blobs {would}repacked: {r.blobs_repacked} ({out.human_bytes(r.bytes_repacked)})"
    )
    out.line(
        f"repository size: {out.human_bytes(r.bytes_before)} -> "
        f"{out.human_bytes(r.bytes_after)} ({out.human_bytes(r.bytes_freed)} {would}freed)"
    )
    for message in r.messages:
        out.note(message)


@repo_app.command("prune")
def prune_cmd(
    ctx: typer.Context,
    dry_run: DryRunOpt = False,
    max_unused: Annotated[
        str | None,
        typer.Option(
            "--max-unused",
            metavar="PERCENT",
            help="Repack a partly used pack once this share of it is unused (default: 20%)",
            show_default=False,
        ),
    ] = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Remove data that no snapshot uses any more."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, quiet=quiet)
    percent = _parse_percent(max_unused) if max_unused is not None else None
    with open_repository(opts) as repository:
        report = run_prune(repository, opts, dry_run=dry_run, max_unused=percent)
    if opts.json:
        out.print_json(report)


@repo_app.command("check")
def check_cmd(
    ctx: typer.Context,
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Also download and verify every pack")
    ] = False,
    read_data_subset: Annotated[
        str | None,
        typer.Option(
            "--read-data-subset",
            metavar="n/t|x%",
            help="Verify part of the packs: group n of t (1/5 ... 5/5), or x% chosen at random",
            show_default=False,
        ),
    ] = None,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    no_lock: NoLockOpt = False,
) -> None:
    """Verify that every snapshot can be restored; exit 1 and list the problems when not."""
    opts = settings(
        ctx,
        repo=repo,
        passphrase_file=passphrase_file,
        json=json_output,
        quiet=quiet,
        no_lock=no_lock,
    )
    with (
        open_repository(opts) as repository,
        shared_lock(repository, opts, "check"),
        out.show_progress(opts.quiet) as shown,
    ):
        result = check(repository, read_data, read_data_subset, shown.progress, lock=False)
    for problem in result.warnings:
        out.warn(problem.message)
    for problem in result.errors:
        out.error(problem.message)
    if opts.json:
        out.print_json(result.to_dict())
    elif not opts.quiet:
        read = (
            f", read {result.packs_read} packs ({out.human_bytes(result.bytes_read)})"
            if read_data or read_data_subset is not None
            else ""
        )
        out.line(
            f"checked {out.plural(result.snapshots, 'snapshot')}, {out.plural(result.trees, 'tree')}, "
            f"{out.plural(result.index_files, 'index file')}, {out.plural(result.packs, 'pack')}{read}"
        )
        if result.ok:
            out.line("no errors were found")
    if not result.ok:
        raise CheckFailedError(
            f"the repository has {out.plural(len(result.errors), 'error')}: "
            "some data cannot be restored"
        )


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
    out.json_or_line(opts.json, {"removed": removed}, f"removed {out.plural(removed, 'lock')}")


repair_app = typer.Typer(
    name="repair", help="Rebuild damaged repository structures.", no_args_is_help=True
)
repo_app.add_typer(repair_app, name="repair")


@repair_app.command("index")
def repair_index_cmd(
    ctx: typer.Context,
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rebuild the index from the packs (after index files were lost or damaged)."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, json=json_output, quiet=quiet)
    with open_repository(opts) as repository, out.show_progress(opts.quiet) as shown:
        result = repair_index(repository, shown.progress)
    for name in result.damaged_packs:
        out.warn("damaged pack left out of the index (see 'check' and 'prune')", item=name)
    if opts.json:
        out.print_json({"message_type": "summary", **dataclasses.asdict(result)})
    elif opts.summary:
        out.line(
            f"indexed {out.plural(result.packs, 'pack')} ({out.plural(result.blobs, 'blob')}) "
            f"in {out.plural(result.index_files_written, 'index file')}; "
            f"removed {out.plural(result.index_files_removed, 'old index file')}"
        )
