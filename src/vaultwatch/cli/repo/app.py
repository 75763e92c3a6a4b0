"""The ``vaultwatch repo`` group itself: its options and the SIGTERM handling every command gets."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import typer

from vaultwatch.cli import output as out
from vaultwatch.cli.keys import key_app
from vaultwatch.cli.options import (
    JsonOpt,
    NoLockOpt,
    PassphraseFileOpt,
    QuietOpt,
    RepoOpt,
    RepoSettings,
)

repo_app = typer.Typer(
    name="repo",
    help="Work with a repository directly: back up, restore, browse, maintain.",
    no_args_is_help=True,
)
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
    out.set_json_errors(json_output)
    ctx.with_resource(terminate_as_interrupt())


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM (``kill``, a service or container stop) acts as Ctrl-C.

    Python's default lets SIGTERM end the process on the spot, leaving the
    repository lock behind and the packs written so far unindexed. Raised
    as KeyboardInterrupt in the main thread, it unwinds through the same
    cleanup as Ctrl-C and ends with the same message and exit code.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread (a test runner's worker thread)
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
