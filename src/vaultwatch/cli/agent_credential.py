"""``vaultwatch agent rotate-credential``: a new credential for this server, no re-enrollment."""

from __future__ import annotations

from typing import Annotated

import typer

from vaultwatch.agent.config import load_config
from vaultwatch.agent.status import pid_alive, read_status, status_path
from vaultwatch.cli import output as out
from vaultwatch.cli.agent_options import ConfigOpt, config_path


def rotate_credential_cmd(
    config: ConfigOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Replace the agent's credential with a new one from the service (config rewritten 0600).

    While the agent runs, its current credential keeps working until it is
    restarted with the new one; when it does not run, the rotation is finished
    at once and the old credential stops working.
    """
    from vaultwatch.agent.credential import rotate_credential

    path = config_path(config)
    cfg = load_config(path)
    doc = read_status(status_path(cfg.state_dir))
    running = doc is not None and pid_alive(int(doc.get("pid", 0)))
    rotation = rotate_credential(path, complete=not running)
    if json_output:
        out.print_json(
            {
                "agent_id": rotation.agent_id,
                "config": str(rotation.config_path),
                "completed": rotation.completed,
                "agent_running": running,
            }
        )
    else:
        out.line(f"new credential for agent {rotation.agent_id} written to {rotation.config_path}")
    if rotation.completed:
        out.note("the old credential no longer works")
    elif running:
        out.note(
            "the agent is running with the old credential, which works until the agent uses the "
            "new one: restart it now (systemctl restart vaultwatch-agent)"
        )
    else:
        out.warn(
            "the service could not be told yet; the old credential stops working at the "
            "agent's next request with the new one"
        )


def register(app: typer.Typer) -> None:
    """Add this command to ``vaultwatch agent``."""
    app.command("rotate-credential")(rotate_credential_cmd)
