"""Which directories an incremental backup rescans, and the paths that lead to them.

A change-driven backup gets the directories that had file-system events since
the last snapshot. Each of them is listed again; every directory between one
of them and the file-system root has its tree rebuilt from the parent
snapshot's entries (only the child on the way down is looked at again);
every other directory keeps the parent snapshot's subtree as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def _normal(path: bytes) -> bytes:
    norm = os.path.normpath(path)
    return b"/" + norm.lstrip(b"/") if norm.startswith(b"/") else norm


class DirtySet:
    """Dirty directories, and for every ancestor of one the names of its children on the way."""

    def __init__(self, paths: Iterable[bytes]) -> None:
        self.dirty: set[bytes] = set()
        self.leads: dict[bytes, set[bytes]] = {}
        for raw in paths:
            path = _normal(raw)
            if not path.startswith(b"/"):
                continue  # only absolute paths name a place in the backup
            self.dirty.add(path)
            while path != b"/":
                parent, name = os.path.split(path)
                children = self.leads.setdefault(parent, set())
                if name in children:
                    break  # this ancestor chain is recorded already
                children.add(name)
                path = parent

    def __len__(self) -> int:
        return len(self.dirty)

    def is_dirty(self, path: bytes) -> bool:
        """Whether the directory had events itself: list it again."""
        return path in self.dirty

    def children_on_way(self, path: bytes) -> set[bytes] | None:
        """Names of the entries of ``path`` that lead to a dirty directory (None: none do)."""
        return self.leads.get(path)

    def touches(self, path: bytes) -> bool:
        """Whether ``path`` is dirty or leads to a dirty directory."""
        return path in self.dirty or path in self.leads
