"""``retention/state``: what the service's retention tells every reader and writer of a vault.

In a managed vault the service (which holds no key) removes packs that no
kept snapshot needs. Index files are encrypted, so it cannot take those packs
out of them: instead it announces the packs it is about to remove here
(``doomed``) and bumps ``generation`` whenever it does. Readers drop index
entries of packs gone from ``data/`` and keep doomed ones apart, so a backup
never deduplicates against data that is (about to be) removed and a restore
picks a copy of a duplicated blob that is not doomed, reading a doomed pack
only when no other copy exists.

The object is plaintext JSON written only by the service (agents cannot
write it: the gateway's layout does not allow ``retention/``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from vaultwatch.store.base import Store
from vaultwatch.store.errors import ObjectNotFoundError

RETENTION_STATE = "retention/state"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class RetentionState:
    """The announcement: its generation, the packs about to go, the locks it waits for."""

    generation: int = 0
    doomed: set[str] = field(default_factory=set)
    waiting_for_locks: list[str] = field(default_factory=list)
    updated: str = ""

    def to_json(self) -> bytes:
        """Serialized (sorted, so equal states are equal bytes)."""
        doc: dict[str, Any] = {
            "version": 1,
            "generation": self.generation,
            "doomed": sorted(self.doomed),
            "waiting_for_locks": sorted(self.waiting_for_locks),
            "updated": self.updated,
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RetentionState:
        """Parse; a malformed object reads as generation -1 with nothing doomed.

        Readers then still drop packs gone from ``data/`` (the safe part),
        and the next retention run rewrites the object.
        """
        try:
            doc = json.loads(data)
            doomed = {str(p) for p in doc.get("doomed", []) if _HEX64.match(str(p))}
            return cls(
                int(doc["generation"]),
                doomed,
                [str(n) for n in doc.get("waiting_for_locks", [])],
                str(doc.get("updated", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls(generation=-1)


def read_retention_state(store: Store) -> RetentionState | None:
    """The vault's retention state, or None when the service never removed anything."""
    try:
        return RetentionState.from_json(store.get(RETENTION_STATE))
    except ObjectNotFoundError:
        return None


def present_packs(store: Store) -> set[bytes]:
    """Ids of every pack in ``data/``."""
    present = set()
    for obj in store.list("data/"):
        try:
            present.add(bytes.fromhex(obj.name.rsplit("/", 1)[-1]))
        except ValueError:
            continue
    return present


def split_packs(store: Store, state: RetentionState) -> tuple[set[bytes], set[bytes]]:
    """The packs in ``data/``: those not doomed, and those doomed but still stored.

    Nothing may deduplicate against a doomed pack, but a snapshot whose
    backup was running at the announcement may still need one (the next run
    sees its manifest and withdraws the pack), so readers keep those as a
    last resort.
    """
    usable: set[bytes] = set()
    doomed: set[bytes] = set()
    for pack in present_packs(store):
        (doomed if pack.hex() in state.doomed else usable).add(pack)
    return usable, doomed
