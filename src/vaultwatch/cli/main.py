"""The root of the ``vaultwatch`` command: sub-apps, ``--version`` and error handling.

Every failure a user can cause ends as one ``error: ...`` line on stderr and
a meaningful exit code, never a traceback (set ``VAULTWATCH_DEBUG=1`` to see
one). The handling sits in the root group's ``invoke``, so it covers every
sub-app added below and also applies under typer's CliRunner in tests.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import traceback
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.main
from click.exceptions import ClickException
from typer.core import TyperGroup

from vaultwatch import __version__
from vaultwatch.cli.demo import demo
from vaultwatch.cli.output import error, exit_error, set_json_errors
from vaultwatch.cli.repo import repo_app
from vaultwatch.errors import VaultwatchError

if TYPE_CHECKING:
    from click import Command as ClickCommand
    from click import Context as ClickContext

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE
DEBUG_ENV = "VAULTWATCH_DEBUG"


def debug_enabled() -> bool:
    """Whether tracebacks are wanted (for developers, never the default)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def describe_os_error(exc: OSError) -> str:
    """A message naming what failed and where: 'permission denied: /srv/x'."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on device"
    reason = reason[:1].lower() + reason[1:]
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    if names:
        return f"{reason}: {' -> '.join(os.fsdecode(n) for n in names)}"
    return reason


def _fail(message: str, code: int) -> typer.Exit:
    if debug_enabled():
        traceback.print_exc()
    exit_error(message, code)
    return typer.Exit(code)


_LAZY_APPS: dict[str, str] = {}
"""Sub-app name -> ``module:attribute`` of its Typer, imported on first use."""


def add_lazy_typer(name: str, target: str) -> None:
    """Register a sub-app by import path, so its module loads only when that command runs.

    The server, admin and agent apps import the catalog, the web stack and
    more; a ``vaultwatch repo`` command should not pay a second for them, and
    a broken import there must not take the repository commands down.
    ``app.add_typer(...)`` works too, for sub-apps that are cheap to import.
    """
    _LAZY_APPS[name] = target


class VaultwatchGroup(TyperGroup):
    """Turns every expected failure of any sub-command into a message and an exit code."""

    def list_commands(self, ctx: ClickContext) -> list[str]:
        names = super().list_commands(ctx)
        return names + [n for n in _LAZY_APPS if n not in names]

    def get_command(self, ctx: ClickContext, cmd_name: str) -> ClickCommand | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY_APPS:
            module, _, attribute = _LAZY_APPS[cmd_name].partition(":")
            sub_app = getattr(importlib.import_module(module), attribute)
            command = typer.main.get_command(sub_app)
            command.name = cmd_name
            # Built standalone, it got the root's shell-completion options; a sub-command has none.
            command.params = [
                p for p in command.params if p.name not in ("install_completion", "show_completion")
            ]
            self.commands[cmd_name] = command
        return command

    def invoke(self, ctx: ClickContext) -> Any:
        set_json_errors(False)  # a command with --json switches it on for itself
        try:
            return super().invoke(ctx)
        except (ClickException, typer.Exit):
            raise
        except typer.Abort:
            raise _fail("aborted", EXIT_INTERRUPTED) from None
        except VaultwatchError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except OSError as exc:
            raise _fail(describe_os_error(exc), 1) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", EXIT_INTERRUPTED) from None
        except Exception as exc:
            message = f"unexpected {type(exc).__name__}: {exc}"
            if not debug_enabled():
                message += f" (set {DEBUG_ENV}=1 for details)"
            raise _fail(message, 1) from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


app = typer.Typer(
    name="vaultwatch",
    cls=VaultwatchGroup,
    help="Vaultwatch: continuous, encrypted, deduplicated backup.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks with locals could show secrets
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(repo_app, name="repo")
add_lazy_typer("agent", "vaultwatch.cli.agent:agent_app")
add_lazy_typer("server", "vaultwatch.cli.server:server_app")
add_lazy_typer("admin", "vaultwatch.cli.admin:admin_app")
add_lazy_typer("soc", "vaultwatch.cli.soc:soc_app")
app.command(name="demo")(demo)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"vaultwatch {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Vaultwatch: continuous, encrypted, deduplicated backup."""


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="vaultwatch")
    except KeyboardInterrupt:  # before or after a command ran, outside the group's handling
        error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
