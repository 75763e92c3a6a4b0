"""Which snapshots of the tenant's shared vault belong to a server and a backup set.

Every server of a tenant writes into one vault; an agent's snapshots are
told apart by their host name and the ``set:NAME`` tag of their backup set.
"""

from __future__ import annotations

import socket

from vaultwatch.agent.config import AgentConfig
from vaultwatch.engine.errors import SnapshotNotFoundError
from vaultwatch.engine.manifest import SET_TAG_PREFIX, backup_set_of
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.retention import select_snapshots
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.errors import VaultwatchError


class BackupSetChoiceError(VaultwatchError):
    """Which backup set is meant cannot be told from the command and the configuration."""

    exit_code = 2


def set_tag(name: str) -> str:
    """The tag every snapshot of backup set ``name`` carries."""
    return f"{SET_TAG_PREFIX}{name}"


def snapshot_set(snap: Snapshot) -> str | None:
    """The backup set a snapshot was made for (None for snapshots made outside the agent)."""
    return backup_set_of(snap.tags)


def agent_hostname(config: AgentConfig) -> str:
    """The host name this agent's snapshots carry."""
    return config.hostname or socket.gethostname()


def server_snapshots(repo: Repository, host: str | None, backup_set: str | None) -> list[Snapshot]:
    """The snapshots of ``host`` (None: every server) and ``backup_set`` (None: every set), oldest first."""
    return select_snapshots(
        repo.snapshots(),
        hosts=[host] if host else None,
        tags=[set_tag(backup_set)] if backup_set else None,
    )


def restore_set(config: AgentConfig, given: str | None) -> str:
    """The backup set to restore from: the one given, or the agent's only one."""
    if given:
        return given
    names = [s.name for s in config.backup_sets]
    if len(names) == 1:
        return names[0]
    listed = ", ".join(names) if names else "none configured"
    raise BackupSetChoiceError(f"name the backup set with --set NAME (this agent's sets: {listed})")


def choose_snapshot(repo: Repository, ref: str, *, host: str | None, backup_set: str) -> Snapshot:
    """``latest``: the set's newest snapshot from ``host``; otherwise a snapshot id (prefix)."""
    if ref != "latest":
        return repo.find_snapshot(ref)
    snaps = server_snapshots(repo, host, backup_set)
    if not snaps:
        where = f" from {host}" if host else ""
        raise SnapshotNotFoundError(
            f"no snapshot of backup set {backup_set!r}{where} yet (see `vaultwatch agent "
            "snapshots`; --host NAME picks another server's)"
        )
    return snaps[-1]
