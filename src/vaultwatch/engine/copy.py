"""``copy``: snapshots from one repository into another, re-encrypted with the destination's keys.

For moving to new storage and for carrying backups out on media. Blob ids
are keyed by each repository's own id key, so nothing can be copied as
stored bytes: every blob is read and verified in the source, stored again
in the destination (deduplicated against what it already holds), and each
tree is written again naming the destination's ids. A snapshot already
copied (same time, host, paths, tags and user in the destination) is
skipped, so running copy again only adds the new ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from vaultwatch.engine.pack import DATA, TREE
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import BlobWriter, Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import Tree


@dataclass
class CopyResult:
    """Which snapshots were copied (source id -> destination id) and which were there already."""

    copied: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    blobs_copied: int = 0
    bytes_copied: int = 0


def _key(s: Snapshot) -> tuple[object, ...]:
    return (s.time, s.hostname, tuple(sorted(s.paths)), tuple(sorted(s.tags)), s.username)


class _Copier:
    def __init__(self, src: Repository, writer: BlobWriter, progress: Progress) -> None:
        self.src = src
        self.writer = writer
        self.progress = progress
        self.blobs: dict[bytes, bytes] = {}  # source id -> destination id
        self.trees: dict[bytes, bytes] = {}
        self.result = CopyResult()

    def blob(self, bid: bytes, kind: int = DATA) -> bytes:
        done = self.blobs.get(bid)
        if done is None:
            data = self.src.load_blob(bid)
            done, new = self.writer.save(kind, data)
            if new:
                self.result.blobs_copied += 1
                self.result.bytes_copied += len(data)
            self.progress.add(len(data))
            self.blobs[bid] = done
        return done

    def tree(self, tree_id: bytes) -> bytes:
        """The destination id of a source tree, written there with every blob it reaches."""
        done = self.trees.get(tree_id)
        if done is not None:
            return done
        self.progress.check()
        nodes = []
        for node in self.src.load_tree(tree_id).nodes:
            nodes.append(
                dataclasses.replace(
                    node,
                    content=[self.blob(b) for b in node.content],
                    subtree=self.tree(node.subtree) if node.subtree is not None else None,
                )
            )
        done = Tree(nodes).save(lambda data: self.writer.save(TREE, data)[0])
        self.trees[tree_id] = done
        return done


def copy_snapshots(
    src: Repository,
    dst: Repository,
    snapshots: Sequence[Snapshot],
    progress: Progress | None = None,
) -> CopyResult:
    """Copy ``snapshots`` of ``src`` into ``dst``; ones already there are skipped."""
    progress = progress or Progress()
    with (
        src.lock(exclusive=False, purpose="copy (source)"),
        dst.lock(exclusive=False, purpose="copy", on_lost=progress.cancel) as lock,
    ):
        src.load_index()
        dst.load_index()
        present = {_key(s) for s in dst.snapshots()}
        progress.phase = "copying"
        with dst.writer() as writer:
            copier = _Copier(src, writer, progress)
            todo = []
            for snap in snapshots:
                if _key(snap) in present:
                    copier.result.skipped.append(snap.id)
                    continue
                present.add(_key(snap))
                todo.append((snap, copier.tree(snap.tree)))
            writer.flush()
        lock.check()
        for snap, tree_id in todo:  # after their data is indexed, as a backup does
            copied = dataclasses.replace(
                snap, tree=tree_id, parent=None, id="", original=snap.original or snap.id
            )
            copier.result.copied[snap.id] = dst.save_snapshot(copied)
    progress.phase = "done"
    return copier.result
