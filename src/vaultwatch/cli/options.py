"""Options shared by the repository commands: where the repository is and how to unlock it.

Every option can be given on the ``repo`` group (``vaultwatch repo -r X backup``)
or on the command itself (``vaultwatch repo backup -r X``), as restic accepts
its global flags anywhere; the command's own value wins, then the group's,
then the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from vaultwatch.cli.output import set_json_errors, warn
from vaultwatch.engine import keys as keyslots
from vaultwatch.engine.managed import ManagedRepository
from vaultwatch.engine.repository import Repository
from vaultwatch.errors import VaultwatchError
from vaultwatch.passphrases import read_passphrase_file
from vaultwatch.store.base import Store
from vaultwatch.store.errors import RepositoryNotFoundError, StorePermissionError
from vaultwatch.store.url import names_managed_vault, open_store

REPO_ENV = "VAULTWATCH_REPO"
PASSPHRASE_ENV = "VAULTWATCH_PASSPHRASE"
PASSPHRASE_FILE_ENV = "VAULTWATCH_PASSPHRASE_FILE"


class CliError(VaultwatchError):
    """Bad input on the command line (missing repository, unreadable passphrase file...)."""


# -- option types --------------------------------------------------------------------------

RepoOpt = Annotated[
    str | None,
    typer.Option(
        "--repo",
        "-r",
        metavar="PATH_OR_URL",
        help=f"Repository: a directory, local:PATH or s3:URL (env: {REPO_ENV})",
        show_default=False,
    ),
]
PassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        metavar="FILE",
        help=f"Read the passphrase from the first line of FILE (env: {PASSPHRASE_FILE_ENV})",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout (nothing else)")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display, no summary")]
NoLockOpt = Annotated[
    bool,
    typer.Option("--no-lock", help="Do not lock the repository (for read-only media)"),
]
KdfMemoryOpt = Annotated[
    int | None,
    typer.Option(
        "--kdf-memory",
        metavar="MiB",
        min=8,
        help="Argon2id memory for the new passphrase slot, in MiB (default: 64)",
        show_default=False,
    ),
]
KdfTimeOpt = Annotated[
    int | None,
    typer.Option(
        "--kdf-time",
        metavar="N",
        min=1,
        help="Argon2id iterations for the new passphrase slot (default: 3)",
        show_default=False,
    ),
]
EscrowKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--escrow-public-key",
        metavar="FILE",
        help="Also seal the master key to this X25519 public key (PEM), for managed restores",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class RepoSettings:
    """The repository options in effect for one command."""

    repo: str | None = None
    passphrase_file: Path | None = None
    json: bool = False
    quiet: bool = False
    no_lock: bool = False

    @property
    def summary(self) -> bool:
        """Whether to print the summary for a person: neither --json nor --quiet."""
        return not self.json and not self.quiet


def settings(
    ctx: typer.Context,
    *,
    repo: str | None = None,
    passphrase_file: Path | None = None,
    json: bool = False,
    quiet: bool = False,
    no_lock: bool = False,
) -> RepoSettings:
    """Merge a command's options over the group's, then fill the rest from the environment."""
    base = ctx.find_object(RepoSettings) or RepoSettings()
    merged = replace(
        base,
        repo=repo or base.repo or os.environ.get(REPO_ENV) or None,
        passphrase_file=passphrase_file
        or base.passphrase_file
        or (Path(os.environ[PASSPHRASE_FILE_ENV]) if os.environ.get(PASSPHRASE_FILE_ENV) else None),
        json=json or base.json,
        quiet=quiet or base.quiet,
        no_lock=no_lock or base.no_lock,
    )
    if merged.json:
        set_json_errors(True)  # from here on an error is one JSON object on stderr
    return merged


def kdf_params(memory_mib: int | None, time_cost: int | None) -> keyslots.KdfParams | None:
    """KDF parameters for a new passphrase slot, None for the engine's defaults."""
    if memory_mib is None and time_cost is None:
        return None
    default = keyslots.KdfParams()
    return keyslots.KdfParams(
        time_cost=time_cost if time_cost is not None else default.time_cost,
        memory_kib=memory_mib * 1024 if memory_mib is not None else default.memory_kib,
        parallelism=default.parallelism,
    )


def load_escrow_public_key(path: Path | None) -> X25519PublicKey | None:
    """The escrow public key in a PEM file (None without one), with a clear error for anything else."""
    if path is None:
        return None
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read escrow public key {path}: {exc.strerror or exc}") from None
    try:
        return keyslots.load_escrow_public_key(pem)
    except ValueError:
        raise CliError(f"{path} is not a PEM public key") from None


# -- passphrases -----------------------------------------------------------------------------


def stdin_is_tty() -> bool:
    """Whether a person can be asked (a function so tests can pretend)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def prompt_secret(text: str, *, confirm: bool) -> str:
    """Ask on the terminal with hidden input; asked twice when ``confirm``."""
    first = str(typer.prompt(text, hide_input=True, err=True, default="", show_default=False))
    if not first:
        raise CliError("the passphrase must not be empty")
    if confirm:
        again = str(
            typer.prompt(
                f"{text} (again)", hide_input=True, err=True, default="", show_default=False
            )
        )
        if again != first:
            raise CliError("the passphrases do not match")
    return first


def resolve_passphrase(opts: RepoSettings, *, confirm: bool = False) -> str:
    """The repository passphrase: --passphrase-file, then the environment, then a prompt."""
    if opts.passphrase_file is not None:
        return read_passphrase_file(opts.passphrase_file)
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        if not env:
            raise CliError(f"{PASSPHRASE_ENV} is set but empty")
        return env
    if stdin_is_tty():
        return prompt_secret("Repository passphrase", confirm=confirm)
    raise CliError(
        f"no passphrase: set {PASSPHRASE_ENV}, use --passphrase-file FILE, or run on a terminal"
    )


def resolve_new_passphrase(new_file: Path | None) -> str:
    """A new passphrase (key add, key passwd): --new-passphrase-file or asked twice.

    Never taken from the environment, which holds the current passphrase.
    """
    if new_file is not None:
        return read_passphrase_file(new_file)
    if stdin_is_tty():
        return prompt_secret("New passphrase", confirm=True)
    raise CliError("no new passphrase: use --new-passphrase-file FILE or run on a terminal")


# -- opening --------------------------------------------------------------------------------


def repo_url(opts: RepoSettings) -> str:
    """The repository location, or a clear error when none was given."""
    if not opts.repo:
        raise CliError(f"no repository given: use -r/--repo PATH_OR_URL or set {REPO_ENV}")
    return opts.repo


@contextmanager
def open_store_for(opts: RepoSettings, *, create: bool = False) -> Iterator[Store]:
    """The Store the options name, closed afterwards."""
    store = open_store(repo_url(opts), create=create)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def open_repository(opts: RepoSettings) -> Iterator[Repository]:
    """Open the repository; the passphrase is asked only once the repository is known to exist."""
    with open_store_for(opts) as store:
        if not store.exists("config"):
            raise RepositoryNotFoundError(f"no repository at {store.location}")
        # A tenant's vault through a gateway takes snapshots only with their reference
        # manifests, and the service's retention is followed there.
        kind = ManagedRepository if names_managed_vault(repo_url(opts)) else Repository
        yield kind.open(store, resolve_passphrase(opts))


@contextmanager
def shared_lock(repo: Repository, opts: RepoSettings, purpose: str) -> Iterator[None]:
    """A shared lock while reading, so prune cannot delete what is being read.

    Skipped with --no-lock, and with a warning on a read-only store (physical
    media), where no lock can be written and nothing can be pruned anyway.
    """
    with ExitStack() as stack:
        if not opts.no_lock:
            try:
                stack.enter_context(repo.lock(exclusive=False, purpose=purpose))
            except StorePermissionError:
                warn("the repository is read-only: continuing without a lock")
        yield


@contextmanager
def reading(repo: Repository, opts: RepoSettings, purpose: str) -> Iterator[None]:
    """The shared lock, then the index loaded: what every command reading data needs."""
    with shared_lock(repo, opts, purpose):
        repo.load_index()
        yield


@contextmanager
def open_for_reading(opts: RepoSettings, purpose: str) -> Iterator[Repository]:
    """The repository opened, then :func:`reading` it: for the commands that read its data."""
    with open_repository(opts) as repository, reading(repository, opts, purpose):
        yield repository
