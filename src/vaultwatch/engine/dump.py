"""``dump``: a file of a snapshot as its bytes, a directory as a tar stream, for piping.

As in restic, the archive holds everything below the directory asked for
(not the directory itself), named by its path in the snapshot without the
leading slash (``home/u/docs/report.txt``), in PAX format so long and
non-UTF-8 names, nanosecond times, owners and extended attributes survive.
Hard-linked files are stored as separate files. Every blob is verified
before a byte of it is written.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from vaultwatch.engine.browse import resolve, walk
from vaultwatch.engine.errors import EngineError
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node

TAR = "tar"
ARCHIVES = (TAR,)

_TAR_TYPES = {
    FILE: tarfile.REGTYPE,
    DIR: tarfile.DIRTYPE,
    SYMLINK: tarfile.SYMTYPE,
    FIFO: tarfile.FIFOTYPE,
    CHARDEV: tarfile.CHRTYPE,
    BLOCKDEV: tarfile.BLKTYPE,
}


class _Content:
    """A file's blobs as a readable stream, for tarfile to copy from."""

    def __init__(self, repo: Repository, node: Node) -> None:
        self._blobs = iter(node.content)
        self._repo = repo
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            bid = next(self._blobs, None)
            if bid is None:
                break
            self._buf += self._repo.load_blob(bid)
        if n < 0:
            n = len(self._buf)
        data, self._buf = self._buf[:n], self._buf[n:]
        return data


def write_file(repo: Repository, node: Node, out: BinaryIO) -> int:
    """A file's content to ``out``; the bytes written."""
    written = 0
    for bid in node.content:
        data = repo.load_blob(bid)
        out.write(data)
        written += len(data)
    return written


def _pax_time(ns: int) -> str:
    """Nanoseconds as PAX's decimal seconds, without a float's rounding."""
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    return f"{sign}{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def tar_info(path: bytes, node: Node) -> tarfile.TarInfo:
    """The tar header of one entry (path without the leading slash)."""
    name = os.fsdecode(path.lstrip(b"/"))
    info = tarfile.TarInfo(name)
    info.type = _TAR_TYPES.get(node.type, tarfile.REGTYPE)
    info.mode = node.mode & 0o7777
    info.uid, info.gid = node.uid, node.gid
    info.uname, info.gname = node.user, node.group
    info.mtime = node.mtime_ns // 1_000_000_000
    info.size = node.size if node.type == FILE else 0
    if node.type == SYMLINK and node.target is not None:
        info.linkname = os.fsdecode(node.target)
    if node.type in (CHARDEV, BLOCKDEV):
        info.devmajor, info.devminor = os.major(node.rdev), os.minor(node.rdev)
    pax: dict[str, str] = {"mtime": _pax_time(node.mtime_ns)}  # exact to the nanosecond
    if node.atime_ns:
        pax["atime"] = _pax_time(node.atime_ns)
    for key, value in node.xattrs.items():
        pax[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
    info.pax_headers = pax
    return info


def entries(repo: Repository, snapshot: Snapshot, path: str) -> Iterator[tuple[bytes, Node]]:
    """What a tar of ``path`` holds: every entry below the directory, parents first."""
    where, node = resolve(repo, snapshot, path)
    tree_id = snapshot.tree if node is None else node.subtree
    if tree_id is None:
        return iter([])
    return walk(repo, tree_id, where)


def write_tar(repo: Repository, snapshot: Snapshot, path: str, out: BinaryIO) -> int:
    """The directory at ``path`` as a tar stream on ``out``; the number of entries."""
    count = 0
    with tarfile.open(
        fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, errors="surrogateescape"
    ) as tar:
        for entry_path, node in entries(repo, snapshot, path):
            if node.type not in _TAR_TYPES:
                continue
            info = tar_info(entry_path, node)
            tar.addfile(info, _Content(repo, node) if node.type == FILE else None)
            count += 1
    return count


def dump(
    repo: Repository, snapshot: Snapshot, path: str, out: BinaryIO, *, archive: str = TAR
) -> int:
    """``path`` of the snapshot to ``out``: a file's bytes, or a directory as an archive.

    Returns the bytes written for a file, the entries written for a directory.
    """
    if archive not in ARCHIVES:
        raise EngineError(f"unknown archive format {archive!r} (supported: {', '.join(ARCHIVES)})")
    _, node = resolve(repo, snapshot, path)
    if node is None or node.type == DIR:
        return write_tar(repo, snapshot, path, out)
    if node.type != FILE:
        raise EngineError(f"{path} is a {node.type}: only files and directories can be dumped")
    return write_file(repo, node, out)
