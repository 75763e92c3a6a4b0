"""`vaultwatch demo`: the whole service on this machine, on its embedded defaults."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vaultwatch.cli.output import err_console, line, note, plural
from vaultwatch.protocol import API_PREFIX

if TYPE_CHECKING:  # the demo pulls in the server: imported only when it runs
    from vaultwatch.demo import DemoFacts, DemoLayout


def activation() -> str | None:
    """The line that puts this ``vaultwatch`` on PATH, or None when it already is.

    A checkout runs it from .venv/bin, which is not on PATH: its ``bin/``
    wrapper (next to .venv) is what the README puts there.
    """
    if shutil.which("vaultwatch"):
        return None
    venv_bin = Path(sys.executable).parent
    wrapper = Path(sys.prefix).parent / "bin" / "vaultwatch"
    where = wrapper.parent if wrapper.is_file() else venv_bin
    return f'export PATH="{where}:$PATH"'


def _show(facts: DemoFacts, layout: DemoLayout) -> None:
    line("")
    line("Vaultwatch is running (server + one enrolled agent, continuous protection)")
    line(f"  web console      {facts.url}/   (sign in as the administrator below)")
    line(f"  API schema       {facts.url}{API_PREFIX}/openapi.json   (health: {facts.url}/healthz)")
    line(f"  CA certificate   {facts.ca_cert}")
    line(f"  administrator    {facts.admin_email} / {facts.admin_password}")
    line(f"  tenant vault     {facts.vault}")
    line(f"  agent            {facts.agent_id}  (config {layout.agent_config})")
    line(f"  protected folder {layout.protected}")
    line(f"  logs             {layout.logs}")
    line("")
    line("Change anything in the protected folder and watch the snapshots below. The vault")
    line("is readable with the customer's passphrase alone, no server needed:")
    path_line = activation()
    if path_line is not None:
        line(f"  {path_line}   # once per shell: puts `vaultwatch` on PATH")
    line(f"  vaultwatch repo snapshots -r {facts.vault} --passphrase-file {facts.passphrase_file}")
    line(f"  vaultwatch agent status --config {layout.agent_config}")
    line("Press Ctrl-C to stop.")
    line("")


def _tick(snapshots: list[tuple[str, str, int]]) -> None:
    if not snapshots:
        line("waiting for the first snapshot ...")
        return
    short_id, at, files = snapshots[-1]
    line(
        f"{plural(len(snapshots), 'snapshot')}; latest {short_id} at {at}, {files} files protected"
    )


def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo keeps its server, agent and sample data")
    ] = Path(".vaultwatch-demo"),
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Server port on 127.0.0.1 for a new demo [default: 8443, or a free one if taken]",
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Prove a change is protected and restorable, then stop"),
    ] = False,
) -> None:
    """Run the service on its embedded defaults (SQLite catalog, local vault) with a sample agent."""
    from vaultwatch.demo import run_demo

    console = err_console()
    try:
        seconds = run_demo(
            directory,
            port,
            once=once,
            report=lambda text: console.print(text),
            show=_show,
            tick=_tick,
        )
    except KeyboardInterrupt:  # Ctrl-C is how the demo ends: server and agent are stopped by now
        from vaultwatch.cli.main import EXIT_INTERRUPTED

        console.print("stopped; everything is kept, and the same command resumes the demo")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if seconds is not None:
        note(f"demo check passed: a new file was protected and restored in {seconds:.1f}s")
