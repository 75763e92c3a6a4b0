"""Reading a file system entry's metadata into a tree Node, and putting it back on restore."""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import stat
from functools import lru_cache

from vaultwatch.engine.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node

_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM, errno.EACCES}


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    """Owner name, or "" when the uid has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
    """Group name, or "" when the gid has none."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def node_type(mode: int) -> str | None:
    """The node type for a st_mode, None for what we do not back up (sockets)."""
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISFIFO(mode):
        return FIFO
    if stat.S_ISCHR(mode):
        return CHARDEV
    if stat.S_ISBLK(mode):
        return BLOCKDEV
    return None


def read_xattrs(path: bytes) -> dict[str, bytes]:
    """Extended attributes of the entry itself (not a symlink's target); {} where unsupported."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return {}
        raise
    out = {}
    for name in names:
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
    return out


def node_from_stat(name: bytes, path: bytes, st: os.stat_result) -> Node | None:
    """A Node describing ``path`` (content and subtree are filled in later).

    Access times are not recorded: reading a directory changes its atime, and
    recording it would make every tree new at every backup.
    """
    kind = node_type(st.st_mode)
    if kind is None:
        return None
    node = Node(
        name=name,
        type=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        user=user_name(st.st_uid),
        group=group_name(st.st_gid),
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
        device=st.st_dev,
        links=st.st_nlink,
        size=st.st_size if kind == FILE else 0,
    )
    if kind == SYMLINK:
        node.target = os.readlink(path)
    if kind in (CHARDEV, BLOCKDEV):
        node.rdev = st.st_rdev
    node.xattrs = read_xattrs(path)
    return node


def apply_metadata(path: bytes, node: Node, *, owner: bool) -> list[str]:
    """Put back ownership, xattrs, mode and times; returns what could not be set."""
    problems = []
    is_link = node.type == SYMLINK
    if owner:
        try:
            os.chown(path, node.uid, node.gid, follow_symlinks=False)
        except OSError as exc:
            problems.append(f"owner: {exc.strerror}")
    for key, value in node.xattrs.items():
        try:
            os.setxattr(path, key, value, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                problems.append(f"xattr {key}: {exc.strerror}")
    if not is_link:
        try:
            os.chmod(path, node.mode)
        except OSError as exc:
            problems.append(f"mode: {exc.strerror}")
    with contextlib.suppress(NotImplementedError):
        try:
            os.utime(
                path, ns=(node.atime_ns or node.mtime_ns, node.mtime_ns), follow_symlinks=False
            )
        except OSError as exc:
            problems.append(f"times: {exc.strerror}")
    return problems
