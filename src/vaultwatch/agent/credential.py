"""Rotating this server's agent credential without enrolling again.

The gateway issues a new credential while the current one keeps working;
it is written into the configuration in place (the rest of the file, its
comments included, is left as it is), atomically and 0600. The first
request made with the new credential tells the service it was stored, and
the old one stops working. So a running agent keeps working until it is
restarted with the new file; when no agent runs, the new credential is used
at once, finishing the rotation.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from vaultwatch.agent.client import ApiError, GatewayClient, NetworkDown
from vaultwatch.agent.config import AgentConfig, ConfigError, load_config
from vaultwatch.files import write_private

SELF_CREDENTIAL = "/agents/self/credential"
#: A cheap authenticated request that proves the new credential was stored.
CONFIRM_PATH = "/vault/objects?limit=1"


@dataclass(frozen=True)
class Rotation:
    """What a rotation did (no secret in here)."""

    agent_id: str
    config_path: Path
    completed: bool
    """True when the new credential was used already, so the old one no longer works."""


def _replace_credential(path: Path, old: str, new: str) -> None:
    """Put `new` where `old` is in the file, refusing anything but exactly one occurrence."""
    text = path.read_text(encoding="utf-8")
    if text.count(old) != 1:
        raise ConfigError(f"{path}: cannot find the current credential once; not changed")
    updated = text.replace(old, new)
    if tomllib.loads(updated).get("server", {}).get("credential") != new:
        raise ConfigError(f"{path}: the credential is not the [server] credential; not changed")
    write_private(path, updated.encode("utf-8"))


def _client(config: AgentConfig, credential: str) -> GatewayClient:
    return GatewayClient(
        config.server.urls, credential, config.server.ca_cert, timeout=config.server.timeout
    )


def rotate_credential(config_path: Path, *, complete: bool) -> Rotation:
    """Ask for a new credential, store it in the configuration, and (with `complete`) use it.

    Leave `complete` off while an agent is running with the old credential:
    it keeps working until the agent restarts with the new one.
    """
    config = load_config(config_path)
    current = _client(config, config.server.credential)
    try:
        answer = current.request("POST", SELF_CREDENTIAL)
    finally:
        current.close()
    if not isinstance(answer, dict) or not answer.get("credential"):
        raise ConfigError("the gateway's answer holds no credential; nothing was changed")
    new = str(answer["credential"])
    _replace_credential(config.path, config.server.credential, new)
    completed = False
    if complete:
        confirming = _client(config, new)
        try:
            confirming.request("GET", CONFIRM_PATH)
            completed = True
        except (NetworkDown, ApiError):
            # Stored already: the agent's next request with it finishes the rotation.
            completed = False
        finally:
            confirming.close()
    return Rotation(str(answer.get("agent_id", config.agent_id)), config.path, completed)
