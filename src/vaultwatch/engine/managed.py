"""A managed vault as any writer must treat it: manifests first, the service's retention followed.

The service applies retention to a tenant's vault without the key (see
:mod:`vaultwatch.engine.manifest`), so every snapshot written there needs its
reference manifest, stored before the snapshot; the gateway refuses a
snapshot without one. Whoever writes (the agent, or a customer's own
``vaultwatch repo backup`` or ``repo copy`` through the gateway) opens the
vault as a :class:`ManagedRepository`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress

from vaultwatch.engine.lock import RepositoryLock
from vaultwatch.engine.manifest import Manifest
from vaultwatch.engine.references import PackReferences
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.retention_state import read_retention_state
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.store.errors import ObjectExistsError

log = logging.getLogger("vaultwatch.engine.managed")


class ManagedRepository(Repository):
    """The engine's repository with the managed-vault rules for writers.

    - Every snapshot gets its reference manifest, stored before the snapshot.
    - A lock is followed by a look at ``retention/state``: when the service
      announced or removed packs since the index was loaded, the index is
      read again without them.
    """

    _references: PackReferences | None = None

    @property
    def references(self) -> PackReferences:
        """Pack ids per tree, kept for the life of this object."""
        if self._references is None:
            self._references = PackReferences(self)
        return self._references

    def lock(
        self, *, exclusive: bool, purpose: str, on_lost: Callable[[], None] | None = None
    ) -> AbstractContextManager[RepositoryLock]:
        """The engine's lock; then the service's retention is followed."""
        return self._lock_then_follow(exclusive, purpose, on_lost)

    @contextmanager
    def _lock_then_follow(
        self, exclusive: bool, purpose: str, on_lost: Callable[[], None] | None
    ) -> Iterator[RepositoryLock]:
        with super().lock(exclusive=exclusive, purpose=purpose, on_lost=on_lost) as held:
            # After the lock exists: the service waits for the locks it saw when it
            # announced packs, and every later lock holder reads the announcement here.
            self.follow_retention()
            yield held

    def follow_retention(self) -> bool:
        """Reload the index when ``retention/state`` changed since it was loaded; True if it did."""
        if not self._index_loaded:
            return False  # the first load reads the state anyway
        state = read_retention_state(self.store)
        generation = state.generation if state is not None else 0
        if generation == self.retention_generation:
            return False
        log.info("the service's retention removed data: reading the vault index again")
        self.load_index(reload=True)
        self.references.forget()
        return True

    def save_snapshot(self, snapshot: Snapshot) -> str:
        """Store the manifest, then the snapshot (a retried upload finds both may exist)."""
        packs = self.references.packs(snapshot.tree)
        snapshot_id, data = self.seal("snapshot", snapshot.to_json())
        manifest = Manifest.describing(snapshot_id, snapshot, packs)
        with suppress(ObjectExistsError):
            self.store.put(manifest.name, manifest.to_json())
        with suppress(ObjectExistsError):
            self.store.put(f"snapshots/{snapshot_id}", data)
        snapshot.id = snapshot_id
        return snapshot_id
