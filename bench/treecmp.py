"""Fast comparison of a restored tree with its source.

A restore only counts if it gave back every byte, so names, types, sizes and contents
must match exactly; permission and mtime differences are reported but do not fail it.
Contents are compared in large blocks on a few threads, since reads release the GIL.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 4 * 1024 * 1024


@dataclass
class Entry:
    kind: str  # "file", "dir", "link" or "other"
    size: int
    mode: int
    mtime_ns: int
    target: str = ""


@dataclass
class TreeDiff:
    """Differences between a source tree and its restored copy."""

    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    wrong_type: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    wrong_content: list[str] = field(default_factory=list)
    wrong_mode: list[str] = field(default_factory=list)
    wrong_mtime: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (
            self.missing or self.extra or self.wrong_type or self.wrong_size or self.wrong_content
        )

    def summary(self, examples: int = 3) -> str:
        """One line per kind of difference, with a few example paths."""
        lines = []
        for name in ("missing", "extra", "wrong_type", "wrong_size", "wrong_content"):
            paths: list[str] = getattr(self, name)
            if paths:
                shown = ", ".join(paths[:examples]) + (" ..." if len(paths) > examples else "")
                lines.append(f"{len(paths)} {name.replace('_', ' ')}: {shown}")
        return "; ".join(lines) if lines else "identical"

    def to_dict(self) -> dict[str, object]:
        lists = ("missing", "extra", "wrong_type", "wrong_size", "wrong_content")
        data: dict[str, object] = {
            "identical": self.identical,
            "files": self.files,
            "bytes": self.bytes,
        }
        for name in (*lists, "wrong_mode", "wrong_mtime"):
            paths: list[str] = getattr(self, name)
            data[name] = len(paths)
            if paths and name in lists:
                data[f"{name}_examples"] = paths[:10]
        return data


def scan(root: Path) -> dict[str, Entry]:
    """Every entry under root by relative path, without following symlinks."""
    entries: dict[str, Entry] = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as it:
            for de in it:
                path = f"{rel}/{de.name}" if rel else de.name
                st = de.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    kind = "dir"
                    stack.append(path)
                elif stat.S_ISREG(st.st_mode):
                    kind = "file"
                elif stat.S_ISLNK(st.st_mode):
                    kind = "link"
                else:
                    kind = "other"
                entries[path] = Entry(
                    kind=kind,
                    size=st.st_size if kind == "file" else 0,
                    mode=stat.S_IMODE(st.st_mode),
                    mtime_ns=st.st_mtime_ns,
                    target=os.readlink(de.path) if kind == "link" else "",
                )
    return entries


def same_content(a: Path, b: Path) -> bool:
    """Byte-for-byte equality of two files of equal size."""
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        while True:
            ba = fa.read(BLOCK)
            bb = fb.read(BLOCK)
            if ba != bb:
                return False
            if not ba:
                return True


def compare_trees(source: Path, restored: Path, workers: int = 4) -> TreeDiff:
    """Compare restored against source; see TreeDiff.identical for the verdict."""
    src = scan(source)
    dst = scan(restored)
    diff = TreeDiff()
    diff.missing = sorted(set(src) - set(dst))
    diff.extra = sorted(set(dst) - set(src))
    to_read: list[str] = []
    for rel in sorted(set(src) & set(dst)):
        a, b = src[rel], dst[rel]
        if a.kind != b.kind or a.target != b.target:
            diff.wrong_type.append(rel)
            continue
        if a.mode != b.mode:
            diff.wrong_mode.append(rel)
        if a.kind != "file":
            continue
        diff.files += 1
        diff.bytes += a.size
        if a.size != b.size:
            diff.wrong_size.append(rel)
            continue
        if a.mtime_ns // 1_000_000_000 != b.mtime_ns // 1_000_000_000:
            diff.wrong_mtime.append(rel)
        to_read.append(rel)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda r: same_content(source / r, restored / r), to_read)
        diff.wrong_content = [rel for rel, same in zip(to_read, results, strict=True) if not same]
    return diff
