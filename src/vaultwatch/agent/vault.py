"""Opening the tenant's vault from the agent: the passphrase stays on this server.

Every server of a tenant backs up into one shared vault (content is
deduplicated across servers), and each agent unlocks it with a passphrase of
its own, held in a key slot of its own (docs/agent.md, "Many servers, one
vault"). The first agent's enrollment creates the vault; later ones join it
with a passphrase that already opens it (see :mod:`vaultwatch.agent.membership`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from vaultwatch.engine.errors import RepositoryExistsError, WrongPassphraseError
from vaultwatch.engine.managed import ManagedRepository
from vaultwatch.engine.repository import BlobWriter, Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import Node
from vaultwatch.files import write_private
from vaultwatch.store.base import Store
from vaultwatch.store.errors import RepositoryNotFoundError


class AgentRepository(ManagedRepository):
    """The tenant vault as the agent writes it: the managed-vault rules, with the agent's settings.

    - The writer uses the agent's upload concurrency and reports each pack.
      One upload at a time by default: an agent shares the customer's uplink,
      and after a cut at most one pack was in flight and must be sent again.
    - Every snapshot gets its reference manifest first, and retention is
      followed after each lock (:class:`ManagedRepository`).
    - A snapshot identical to its parent (same paths, tags and host, and the
      same root tree or the same tree at each path) is not written: the
      parent's id stands for it (see :func:`is_unchanged`).
    """

    upload_workers: int = 1
    on_pack_uploaded: Callable[[bytes, int], None] | None = None
    skip_unchanged: bool = True

    def writer(self, *, upload_workers: int | None = None) -> BlobWriter:
        """The engine's writer, with the agent's settings."""
        writer = super().writer(upload_workers=upload_workers or self.upload_workers)
        writer.on_pack_uploaded = self.on_pack_uploaded
        return writer

    def save_snapshot(self, snapshot: Snapshot) -> str:
        """Store the manifest, then the snapshot; an unchanged snapshot is not stored."""
        if self.skip_unchanged and snapshot.parent is not None:
            parent = self.load_snapshot(snapshot.parent)
            if self.unchanged_since(parent, snapshot):
                snapshot.id = parent.id
                return parent.id
        return super().save_snapshot(snapshot)

    def unchanged_since(self, parent: Snapshot, snapshot: Snapshot) -> bool:
        """Whether ``snapshot`` records exactly what ``parent`` did.

        The same root tree, or (the directories above the set's paths are
        not the set's: another program creating files in ``/srv`` changes its
        times) the same node, metadata and content, for each of the paths.
        """
        if not parent.same_origin_as(snapshot):
            return False
        if parent.tree == snapshot.tree:
            return True
        for path in snapshot.paths:
            old = self._node_at(parent.tree, path)
            if old is None or old != self._node_at(snapshot.tree, path):
                return False
        return True

    def _node_at(self, root: bytes, path: str) -> Node | None:
        parts = [p for p in os.fsencode(path).split(b"/") if p]
        if not parts:
            return None  # "/" itself: only an equal root tree is unchanged
        tree = self.load_tree(root)
        for depth, part in enumerate(parts):
            node = tree.find(part)
            if node is None or depth == len(parts) - 1:
                return node
            if node.subtree is None:
                return None
            tree = self.load_tree(node.subtree)
        return None


def is_unchanged(snapshot: Snapshot) -> bool:
    """Whether a backup's snapshot was skipped as identical to its parent (it carries the parent's id)."""
    return snapshot.parent is not None and snapshot.id == snapshot.parent


def create_passphrase_file(path: Path) -> None:
    """Write a new random passphrase (0600); refuses to replace an existing file."""
    write_private(path, (secrets.token_urlsafe(32) + "\n").encode(), exclusive=True)


WRONG_PASSPHRASE = (
    "the tenant's vault does not open with this agent's passphrase file {path}: no key slot "
    "of the vault holds its passphrase. Give this agent a key slot with `vaultwatch agent "
    "join --passphrase-file FILE` (FILE: a passphrase that opens the vault, e.g. the tenant's "
    "recovery passphrase), then restart the agent"
)


def open_vault(
    store: Store,
    passphrase: str,
    *,
    upload_workers: int = 1,
    slot_id: str | None = None,
    passphrase_file: Path | None = None,
) -> AgentRepository:
    """Open the tenant vault (trying the agent's own slot first), creating it when it does not exist yet."""
    repo: Repository
    try:
        repo = AgentRepository.open(store, passphrase, slot_id=slot_id)
    except RepositoryNotFoundError:
        try:
            repo = AgentRepository.init(store, passphrase)
        except RepositoryExistsError:  # another agent of the tenant was faster
            repo = AgentRepository.open(store, passphrase)
    except WrongPassphraseError:
        raise WrongPassphraseError(
            WRONG_PASSPHRASE.format(path=passphrase_file or "(unknown)")
        ) from None
    assert isinstance(repo, AgentRepository)
    repo.upload_workers = upload_workers
    return repo


def beside_config(configured: Path, config_path: Path) -> Path:
    """A file the config names (CA, passphrase), or the one of that name next to the config.

    A configuration copied off a lost server to another machine, together
    with its ``ca.pem`` and passphrase file, names paths of the old server;
    the copies beside it are the same files.
    """
    if configured.exists():
        return configured
    beside = config_path.parent / configured.name
    return beside if beside.is_file() else configured


def command_store(
    urls: list[str], credential: str, ca_cert: Path | None, *, timeout: float = 30.0
) -> Store:
    """The tenant's vault through the gateways for a command a person waits for.

    A few tries over every gateway, then a clear error: unlike the daemon's
    backups, a command must not wait for ever.
    """
    from vaultwatch.store.http import GatewayStore, RetryPolicy

    policy = RetryPolicy(max_attempts=4 * len(urls), base_delay=0.5, max_delay=5.0)
    policy.gateways = urls[1:]
    return GatewayStore(urls[0], credential, ca_cert, timeout=timeout, retry=policy)
