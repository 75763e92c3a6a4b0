"""Builds a source tree with every kind of file system entry and compares trees exactly."""

from __future__ import annotations

import os
import stat
from pathlib import Path

UNICODE_NAME = "résumé-日本語-😀.txt"
BAD_UTF8_NAME = b"latin1-\xe9t\xe9"


def build_tree(root: Path) -> None:
    """Regular, empty, large, sparse, hardlinked, symlinked, special and oddly named entries."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty").write_bytes(b"")
    (root / "small.txt").write_text("hello vault\n" * 10)
    (root / UNICODE_NAME).write_text("unicode name\n")
    with open(os.path.join(os.fsencode(root), BAD_UTF8_NAME), "wb") as f:
        f.write(b"non-utf8 name\n")
    big = root / "dir" / "nested" / "big.bin"
    big.parent.mkdir(parents=True)
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "dir" / "text.log").write_bytes(
        b"".join(b"line %d of the log\n" % i for i in range(60000))
    )
    os.link(big, root / "dir" / "hardlink.bin")
    with open(root / "sparse.img", "wb") as f:
        f.seek(8 * 1024 * 1024)
        f.write(b"tail")
        f.truncate(16 * 1024 * 1024)
    os.symlink("small.txt", root / "link-relative")
    os.symlink("/nonexistent/target", root / "link-dangling")
    os.symlink(os.fsencode(BAD_UTF8_NAME), os.path.join(os.fsencode(root), b"link-bad-utf8"))
    os.mkfifo(root / "fifo")
    if os.geteuid() == 0:
        os.mknod(root / "null-device", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chown(root / "small.txt", 1234, 5678)
    os.chmod(root / "small.txt", 0o640)
    os.chmod(root / "dir" / "nested", 0o750)
    os.setxattr(root / "small.txt", "user.origin", b"vaultwatch test")
    os.setxattr(root / "dir", "user.dir-attr", b"\x00\x01binary")
    (root / "empty-dir").mkdir()
    os.utime(root / "small.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    os.utime(root / "dir" / "nested", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))


def _xattrs(path: bytes) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in names}


def describe(root: Path) -> dict[bytes, tuple[object, ...]]:
    """Everything a restore must reproduce, per relative path (hardlinks as groups)."""
    out: dict[bytes, tuple[object, ...]] = {}
    base = os.fsencode(root)
    inode_names: dict[int, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, base)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            content: object = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    content = f.read()
                first = inode_names.setdefault(st.st_ino, rel)
                link_group: object = first
            else:
                link_group = None
            if stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            out[rel] = (
                kind,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_mtime_ns,
                content,
                _xattrs(path),
                st.st_rdev if stat.S_ISCHR(st.st_mode) else 0,
                link_group,
            )
    return out
