"""`vaultwatch demo`: the whole service on this machine, on its embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vaultwatch.cli.output import err_console, line, note

if TYPE_CHECKING:  # the demo pulls in the server: imported only when it runs
    from vaultwatch.demo import DemoFacts, DemoLayout


def _show(facts: DemoFacts, layout: DemoLayout) -> None:
    line("")
    line("Vaultwatch is running (server + one enrolled agent, continuous protection)")
    line(f"  gateway API      {facts.url}/api/v1   (schema: {facts.url}/api/v1/openapi.json)")
    line(f"  CA certificate   {facts.ca_cert}")
    line(f"  administrator    {facts.admin_email} / {facts.admin_password}")
    line(f"  tenant vault     {facts.vault}")
    line(f"  agent            {facts.agent_id}  (config {layout.agent_config})")
    line(f"  protected folder {layout.protected}")
    line(f"  logs             {layout.logs}")
    line("")
    line("Change anything in the protected folder and watch the snapshots below. The vault")
    line("is readable with the customer's passphrase alone, no server needed:")
    line(f"  vaultwatch repo snapshots -r {facts.vault} --passphrase-file {facts.passphrase_file}")
    line(f"  vaultwatch agent status --config {layout.agent_config}")
    line("Press Ctrl-C to stop.")
    line("")


def _tick(snapshots: list[tuple[str, str, int]]) -> None:
    if not snapshots:
        line("waiting for the first snapshot ...")
        return
    short_id, at, files = snapshots[-1]
    line(f"{len(snapshots)} snapshot(s); latest {short_id} at {at}, {files} files protected")


def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo keeps its server, agent and sample data")
    ] = Path(".vaultwatch-demo"),
    port: Annotated[int, typer.Option("--port", help="Gateway port on 127.0.0.1")] = 8443,
    once: Annotated[
        bool,
        typer.Option("--once", help="Prove a change is protected and restorable, then stop"),
    ] = False,
) -> None:
    """Run the service on its embedded defaults (SQLite catalog, local vault) with a sample agent."""
    from vaultwatch.demo import run_demo

    console = err_console()
    seconds = run_demo(
        directory, port, once=once, report=lambda text: console.print(text), show=_show, tick=_tick
    )
    if seconds is not None:
        note(f"demo check passed: a new file was protected and restored in {seconds:.1f}s")
