"""The read-only view ``mount`` serves: every snapshot as a directory, reached several ways.

Like restic's: ``ids/<short id>/``, ``snapshots/<time>/`` (with ``latest``
a symlink to the newest), ``hosts/<host>/<time>/`` and ``tags/<tag>/<time>/``,
each holding the snapshot's backed-up paths. The layout and the reading
live here, free of any FUSE library, so they are tested directly; the
``mount`` command only forwards the kernel's calls.
"""

from __future__ import annotations

import bisect
import errno
import os
import stat
import threading
from dataclasses import dataclass

from vaultwatch.engine.repository import Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node

_MODES = {
    FILE: stat.S_IFREG,
    DIR: stat.S_IFDIR,
    SYMLINK: stat.S_IFLNK,
    FIFO: stat.S_IFIFO,
    CHARDEV: stat.S_IFCHR,
    BLOCKDEV: stat.S_IFBLK,
}
_TOP = ("ids", "snapshots", "hosts", "tags")


class FsError(OSError):
    """An errno for the kernel (ENOENT, ENOTDIR...)."""

    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))


@dataclass(frozen=True)
class Attr:
    """What ``stat`` shows of an entry."""

    mode: int
    size: int = 0
    mtime_ns: int = 0
    uid: int = 0
    gid: int = 0
    nlink: int = 1
    rdev: int = 0


def _time_name(s: Snapshot) -> str:
    return s.time.astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")


class SnapshotFS:
    """Paths of the mounted view resolved to listings, nodes and file bytes (thread-safe)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._lock = threading.Lock()
        self._offsets: dict[tuple[bytes, ...], list[int]] = {}
        repo.load_index()
        self.reload()

    def reload(self) -> None:
        """Read the snapshot list again."""
        snaps = self.repo.snapshots()
        by_id = {s.short_id: s for s in snaps}
        by_time: dict[str, Snapshot] = {}
        for s in snaps:
            name = _time_name(s)
            if name in by_time:
                name = f"{name}-{s.short_id}"
            by_time[name] = s
        self.views: dict[str, dict[str, Snapshot]] = {"ids": by_id, "snapshots": by_time}
        self.groups: dict[str, dict[str, dict[str, Snapshot]]] = {"hosts": {}, "tags": {}}
        for name, s in by_time.items():
            self.groups["hosts"].setdefault(s.hostname, {})[name] = s
            for tag in s.tags:
                self.groups["tags"].setdefault(tag, {})[name] = s
        self.latest = max(by_time, key=lambda n: by_time[n].time) if by_time else None

    # -- resolving -----------------------------------------------------------------------

    def _split(self, path: str) -> tuple[Snapshot | None, list[str], list[str]]:
        """(snapshot, the path's parts inside it, the parts naming it) or (None, [], parts)."""
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] in self.views:
            snap = self.views[parts[0]].get(parts[1])
            if snap is None:
                raise FsError(errno.ENOENT)
            return snap, parts[2:], parts[:2]
        if len(parts) >= 3 and parts[0] in self.groups:
            snap = self.groups[parts[0]].get(parts[1], {}).get(parts[2])
            if snap is None:
                raise FsError(errno.ENOENT)
            return snap, parts[3:], parts[:3]
        return None, [], parts

    def _node(self, snap: Snapshot, inner: list[str]) -> Node | None:
        """The node at ``inner`` in the snapshot (None for its root)."""
        tree_id: bytes | None = snap.tree
        node: Node | None = None
        for part in inner:
            if tree_id is None:
                raise FsError(errno.ENOTDIR)
            node = self.repo.load_tree(tree_id).find(os.fsencode(part))
            if node is None:
                raise FsError(errno.ENOENT)
            tree_id = node.subtree if node.type == DIR else None
        return node

    # -- the calls a file system answers --------------------------------------------------

    def readdir(self, path: str) -> list[str]:
        """The names in a directory."""
        snap, inner, outer = self._split(path)
        if snap is None:
            if not outer:
                return list(_TOP)
            if len(outer) == 1 and outer[0] in self.views:
                names = list(self.views[outer[0]])
                return names + (["latest"] if outer[0] == "snapshots" and self.latest else [])
            if len(outer) == 1 and outer[0] in self.groups:
                return list(self.groups[outer[0]])
            if len(outer) == 2 and outer[0] in self.groups and outer[1] in self.groups[outer[0]]:
                return list(self.groups[outer[0]][outer[1]])
            raise FsError(errno.ENOENT)
        node = self._node(snap, inner)
        if node is not None and node.type != DIR:
            raise FsError(errno.ENOTDIR)
        tree_id = snap.tree if node is None else node.subtree
        if tree_id is None:
            return []
        return [os.fsdecode(n.name) for n in self.repo.load_tree(tree_id).nodes]

    def getattr(self, path: str) -> Attr:
        """The attributes of an entry."""
        parts = [p for p in path.split("/") if p]
        if parts == ["snapshots", "latest"] and self.latest is not None:
            return Attr(stat.S_IFLNK | 0o777, size=len(self.latest))
        snap, inner, _ = self._split(path)
        if snap is None:
            self.readdir(path)  # raises ENOENT for names that are not there
            return Attr(stat.S_IFDIR | 0o555, nlink=2)
        node = self._node(snap, inner)
        if node is None:
            return Attr(stat.S_IFDIR | 0o555, mtime_ns=int(snap.time.timestamp() * 1e9), nlink=2)
        return Attr(
            _MODES.get(node.type, stat.S_IFREG) | (node.mode & 0o7777),
            size=node.size if node.type in (FILE, SYMLINK) else 0,
            mtime_ns=node.mtime_ns,
            uid=node.uid,
            gid=node.gid,
            nlink=node.links if node.type == FILE else 1,
            rdev=node.rdev,
        )

    def readlink(self, path: str) -> str:
        """A symlink's target."""
        if [p for p in path.split("/") if p] == ["snapshots", "latest"] and self.latest:
            return self.latest
        snap, inner, _ = self._split(path)
        node = self._node(snap, inner) if snap is not None else None
        if node is None or node.type != SYMLINK or node.target is None:
            raise FsError(errno.EINVAL)
        return os.fsdecode(node.target)

    def read(self, path: str, size: int, offset: int) -> bytes:
        """``size`` bytes of a file from ``offset`` (fewer at its end); every blob verified."""
        snap, inner, _ = self._split(path)
        node = self._node(snap, inner) if snap is not None else None
        if node is None or node.type != FILE:
            raise FsError(errno.EISDIR if node is not None or snap is not None else errno.ENOENT)
        starts = self._starts(tuple(node.content))
        out = []
        end = min(offset + size, node.size)
        i = max(0, bisect.bisect_right(starts, offset) - 1)
        pos = offset
        while pos < end and i < len(node.content):
            data = self.repo.load_blob(node.content[i])
            out.append(data[pos - starts[i] : end - starts[i]])
            pos = starts[i] + len(data)
            i += 1
        return b"".join(out)

    def _starts(self, content: tuple[bytes, ...]) -> list[int]:
        """Where each chunk of a file begins (from the index, no data read)."""
        with self._lock:
            cached = self._offsets.get(content)
        if cached is not None:
            return cached
        locations = self.repo.lookup_many(content)
        starts, pos = [], 0
        for bid in content:
            starts.append(pos)
            loc = locations.get(bid)
            if loc is None:
                raise FsError(errno.EIO)
            pos += loc.raw_length
        with self._lock:
            self._offsets[content] = starts
        return starts
