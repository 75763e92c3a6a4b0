"""``retention/suspects``: unreferenced packs no manifest ever named, watched before they are announced.

A backup uploads its packs first and its manifest last, so while it runs its
packs look like garbage. Announcing them would make readers drop them from
their index and the finished snapshot unreadable until the next run. A pack
that no kept or forgotten manifest names is therefore only a *suspect*: it is
remembered with the locks that were live when it was first seen, and it is
announced only when a later run finds it still unreferenced after every one
of those locks is gone (its writer finished and would have stored the
manifest first, or died and left it behind for good).

Plaintext JSON written only by the service; agents never read it.
"""

from __future__ import annotations

import json
import re
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vaultwatch.store.base import Store
from vaultwatch.store.errors import ObjectNotFoundError

SUSPECTS = "retention/suspects"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class SuspectGroup:
    """Packs first seen unreferenced in one run, and the locks live at that time."""

    locks: frozenset[str]
    packs: frozenset[str]


@dataclass
class Suspects:
    """Every group still watched."""

    groups: list[SuspectGroup] = field(default_factory=list)

    @property
    def packs(self) -> frozenset[str]:
        """Every pack watched."""
        return frozenset().union(*(g.packs for g in self.groups))

    def sift(
        self, unreferenced: set[str], live_at_start: set[str], live_now: set[str]
    ) -> tuple[set[str], Suspects]:
        """The packs confirmed unused, and the suspects to keep watching.

        ``live_at_start`` must be listed before the run read the manifests: a
        writer whose lock was gone by then stored its manifest before that,
        so a pack of it that the run still finds unreferenced is no longer
        awaited by anyone. New suspects get every lock live at either time.
        """
        confirmed: set[str] = set()
        groups: list[SuspectGroup] = []
        for group in self.groups:
            packs = group.packs & unreferenced
            if not packs:
                continue
            waiting = group.locks & live_at_start
            if waiting:
                groups.append(SuspectGroup(frozenset(waiting), frozenset(packs)))
            else:
                confirmed |= packs
        new = unreferenced - self.packs
        if new:
            groups.append(SuspectGroup(frozenset(live_at_start | live_now), frozenset(new)))
        return confirmed, Suspects(groups)

    def to_json(self, now: datetime) -> bytes:
        """Serialized (sorted, so equal states are equal bytes apart from the time)."""
        doc: dict[str, Any] = {
            "version": 1,
            "groups": [
                {"locks": sorted(g.locks), "packs": sorted(g.packs)}
                for g in sorted(self.groups, key=lambda g: sorted(g.packs))
            ],
            "updated": now.isoformat(timespec="seconds"),
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Suspects:
        """Parse; a malformed object reads as no suspects (they are simply seen anew)."""
        try:
            doc = json.loads(data)
            groups = [
                SuspectGroup(
                    frozenset(str(n) for n in g.get("locks", [])),
                    frozenset(str(p) for p in g.get("packs", []) if _HEX64.match(str(p))),
                )
                for g in doc.get("groups", [])
            ]
        except (ValueError, TypeError, AttributeError):
            return cls()
        return cls([g for g in groups if g.packs])


def read_suspects(store: Store) -> Suspects:
    """The vault's watched packs (none when the object does not exist)."""
    try:
        return Suspects.from_json(store.get(SUSPECTS))
    except ObjectNotFoundError:
        return Suspects()


def write_suspects(store: Store, suspects: Suspects, now: datetime) -> None:
    """Replace the object (removed when nothing is watched)."""
    if suspects.groups:
        store.put(SUSPECTS, suspects.to_json(now), overwrite=True)
    else:
        with suppress(ObjectNotFoundError):
            store.delete(SUSPECTS)
