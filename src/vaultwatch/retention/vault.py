"""The service's side of a managed vault: what it can read without a key, and the trash.

The service reads the names of snapshots, the reference manifests and the
pack listing; it never opens an encrypted object. What retention removes is
moved under ``trash/`` (same name below it) and deleted only when the grace
period is over; until then it can be put back exactly as it was.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.lock import list_locks
from vaultwatch.engine.manifest import MANIFESTS, Manifest
from vaultwatch.engine.pack import pack_name
from vaultwatch.engine.retention_state import RETENTION_STATE, RetentionState
from vaultwatch.store.base import Store
from vaultwatch.store.errors import ObjectNotFoundError

log = logging.getLogger("vaultwatch.retention")

TRASH = "trash/"
#: A manifest whose snapshot never arrived (an interrupted backup) protects its packs this long.
ORPHAN_MANIFEST_AGE = timedelta(days=1)
#: A claimed snapshot time is believed when it is this close before the gateway's stamp...
PLAUSIBLE_BEFORE = timedelta(hours=1)
#: ...or this close after it (clock skew); otherwise the stamp is the snapshot's time.
PLAUSIBLE_AFTER = timedelta(minutes=5)


def trash_name(name: str) -> str:
    """Where a removed object waits out the grace period."""
    return f"{TRASH}{name}"


def pack_object(pack_hex: str) -> str:
    """The store name of a pack given as hex."""
    return pack_name(bytes.fromhex(pack_hex))


def trusted_time(manifest: Manifest) -> datetime:
    """The snapshot's time for retention: the claimed one when the gateway's stamp agrees.

    An agent cannot place a snapshot in another hour, day or year than the
    one it was uploaded in (to push a real snapshot out of that bucket).
    """
    if manifest.received is None:
        return manifest.time  # written with the service's own access
    stamped = manifest.received.at
    if stamped - PLAUSIBLE_BEFORE <= manifest.time <= stamped + PLAUSIBLE_AFTER:
        return manifest.time
    return stamped


@dataclass
class VaultContents:
    """Everything retention needs to know about one vault, read without the key."""

    snapshots: set[str] = field(default_factory=set)
    manifests: dict[str, Manifest] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    packs: dict[str, int] = field(default_factory=dict)
    """Pack id (hex) -> stored size, for every pack in ``data/``."""

    @property
    def live(self) -> dict[str, Manifest]:
        """Manifests of snapshots that exist."""
        return {sid: m for sid, m in self.manifests.items() if sid in self.snapshots}

    @property
    def orphans(self) -> dict[str, Manifest]:
        """Manifests whose snapshot does not exist (yet, or ever)."""
        return {sid: m for sid, m in self.manifests.items() if sid not in self.snapshots}

    @property
    def unmanifested(self) -> list[str]:
        """Snapshots without a readable manifest: what they need is unknown to the service."""
        return sorted(self.snapshots - self.manifests.keys())


def read_contents(store: Store) -> VaultContents:
    """List snapshots, read every manifest, list the packs."""
    contents = VaultContents()
    for obj in store.list("snapshots/"):
        contents.snapshots.add(obj.name.split("/", 1)[1])
    for obj in store.list(MANIFESTS):
        try:
            manifest = Manifest.from_json(store.get(obj.name), obj.name)
        except ObjectNotFoundError:
            continue
        except IntegrityError as exc:
            log.warning("%s: %s", store.location, exc)
            contents.unreadable.append(obj.name)
            continue
        contents.manifests[manifest.snapshot] = manifest
    for obj in store.list("data/"):
        contents.packs[obj.name.rsplit("/", 1)[-1]] = obj.size
    return contents


def move_to_trash(store: Store, name: str) -> int | None:
    """Move one object under ``trash/``; its size, or None when it was already gone."""
    try:
        data = store.get(name)
    except ObjectNotFoundError:
        return None
    store.put(trash_name(name), data, overwrite=True)
    store.delete(name)
    return len(data)


def restore_from_trash(store: Store, name: str) -> bool:
    """Put a trashed object back where it was; False when the trash no longer has it."""
    try:
        data = store.get(trash_name(name))
    except ObjectNotFoundError:
        return store.exists(name)
    store.put(name, data, overwrite=True)
    store.delete(trash_name(name))
    return True


def purge_from_trash(store: Store, name: str) -> None:
    """Delete a trashed object for good."""
    with contextlib.suppress(ObjectNotFoundError):
        store.delete(trash_name(name))


def read_state(store: Store) -> RetentionState:
    """The vault's announcement (a fresh one when there is none)."""
    try:
        return RetentionState.from_json(store.get(RETENTION_STATE))
    except ObjectNotFoundError:
        return RetentionState()


def write_state(store: Store, state: RetentionState, now: datetime) -> None:
    """Replace the announcement."""
    state.updated = now.isoformat(timespec="seconds")
    store.put(RETENTION_STATE, state.to_json(), overwrite=True)


def live_locks(store: Store) -> list[str]:
    """Names of the locks held now (stale ones do not count: their holder is gone)."""
    now = time.time()
    return sorted(lock.name for lock in list_locks(store) if not lock.is_stale(now))
