"""Which snapshots a command works on: restic's host, path and tag filters, and ``latest``.

The filters only narrow down what ``latest`` means (and what a listing
shows); a snapshot named by its id is taken as named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vaultwatch.engine.errors import SnapshotNotFoundError
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.retention import select_snapshots
from vaultwatch.engine.snapshot import Snapshot


@dataclass(frozen=True)
class SnapshotFilter:
    """Any of ``hosts``; every one of ``paths``; all tags of any ``"a,b"`` group in ``tags``."""

    hosts: Sequence[str] | None = None
    paths: Sequence[str] | None = None
    tags: Sequence[str] | None = None

    @property
    def empty(self) -> bool:
        """Whether the filter lets every snapshot through."""
        return not (self.hosts or self.paths or self.tags)

    def apply(self, snapshots: Sequence[Snapshot]) -> list[Snapshot]:
        """The snapshots that pass, in the order given."""
        return select_snapshots(snapshots, hosts=self.hosts, paths=self.paths, tags=self.tags)

    def describe(self) -> str:
        """The filter in words, for the message when nothing passes."""
        parts = []
        if self.hosts:
            parts.append(f"host {' or '.join(self.hosts)}")
        if self.paths:
            parts.append(f"paths {', '.join(self.paths)}")
        if self.tags:
            parts.append(f"tags {' or '.join(self.tags)}")
        return "; ".join(parts)


def resolve_snapshot(repo: Repository, ref: str, where: SnapshotFilter | None = None) -> Snapshot:
    """``latest`` among the snapshots passing ``where``, or the snapshot with id prefix ``ref``."""
    if ref != "latest" or where is None or where.empty:
        return repo.find_snapshot(ref)
    candidates = where.apply(repo.snapshots())
    if not candidates:
        raise SnapshotNotFoundError(f"no snapshot matches {where.describe()}")
    return candidates[-1]
