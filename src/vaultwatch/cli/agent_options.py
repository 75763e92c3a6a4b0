"""Options every ``vaultwatch agent`` command shares: which configuration file to use.

In a module of its own so each group of agent commands (one module each)
can use it without importing the others.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from vaultwatch.agent.config import DEFAULT_CONFIG_PATH

CONFIG_ENV = "VAULTWATCH_AGENT_CONFIG"

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help=f"Agent configuration file [default: {DEFAULT_CONFIG_PATH}; env: {CONFIG_ENV}]",
        show_default=False,
    ),
]


def config_path(value: Path | None) -> Path:
    """The configuration file: --config, then $VAULTWATCH_AGENT_CONFIG, then the default."""
    if value is not None:
        return value
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH
