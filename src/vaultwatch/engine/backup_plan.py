"""``backup --dry-run``: what a backup of these paths would store, with nothing written.

The same walk a backup makes (its exclude rules, ``--one-file-system``, the
parent snapshot found the same way), comparing each entry's metadata with the
parent's as a backup does; new and changed files are read and cut into
chunks so the bytes that would be added are exact, before compression.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass, field

from vaultwatch.engine.backup import (
    BackupOptions,
    Excluder,
    FileError,
    _find_parent,
    _normalize,
    _unchanged,
)
from vaultwatch.engine.chunker import Chunker
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.tree import DIR, Node, Tree

NEW = "new"
CHANGED = "changed"
UNMODIFIED = "unmodified"


@dataclass
class PlannedFile:
    """A file the backup would read: ``action`` is new or changed; ``data_added`` its new bytes."""

    path: str
    action: str
    size: int
    data_added: int


@dataclass
class DryRunResult:
    """What a backup would do."""

    paths: list[str]
    hostname: str
    parent: str | None
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs: int = 0
    total_bytes: int = 0
    bytes_added: int = 0
    files: list[PlannedFile] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)


class _Plan:
    def __init__(self, repo: Repository, options: BackupOptions, progress: Progress) -> None:
        self.repo = repo
        self.options = options
        self.progress = progress
        self.excluder = Excluder(options.excludes)
        p = repo.config.chunker
        self.chunker = Chunker(p.min_size, p.avg_size, p.max_size, repo.master.chunker_seed)
        self.seen: set[bytes] = set()
        self.devices: set[int] = set()
        self.result: DryRunResult

    def _old_tree(self, old: Node | None) -> Tree | None:
        if old is None or old.type != DIR or old.subtree is None:
            return None
        return self.repo.load_tree(old.subtree)

    def entry(self, path: bytes, old: Node | None) -> None:
        self.progress.check()
        try:
            st = os.lstat(path)
        except OSError as exc:
            self.result.errors.append(FileError(os.fsdecode(path), exc.strerror or str(exc)))
            return
        if stat.S_ISDIR(st.st_mode):
            self.result.dirs += 1
            if self.options.one_file_system and st.st_dev not in self.devices:
                return
            self.directory(path, self._old_tree(old))
        elif stat.S_ISREG(st.st_mode):
            self.file(path, st, old)

    def directory(self, path: bytes, old_tree: Tree | None) -> None:
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            self.result.errors.append(FileError(os.fsdecode(path), exc.strerror or str(exc)))
            return
        for name in names:
            child = os.path.join(path, name)
            if self.excluder.excluded(child, name):
                continue
            self.entry(child, old_tree.find(name) if old_tree is not None else None)

    def file(self, path: bytes, st: os.stat_result, old: Node | None) -> None:
        r = self.result
        r.total_bytes += st.st_size
        self.progress.add(st.st_size, 1)
        if old is not None and _unchanged(old, st):
            r.files_unmodified += 1
            return
        added = self.new_bytes(path)
        if added is None:
            return
        action = NEW if old is None else CHANGED
        if action == NEW:
            r.files_new += 1
        else:
            r.files_changed += 1
        r.bytes_added += added
        r.files.append(PlannedFile(os.fsdecode(path), action, st.st_size, added))

    def new_bytes(self, path: bytes) -> int | None:
        """Bytes of the file's chunks the repository (and this run) does not hold yet."""
        added = 0
        try:
            with open(path, "rb") as f:
                for data in self.chunker.chunks(f):
                    bid = self.repo.blob_id(data)
                    if bid not in self.seen and not self.repo.has_blob(bid):
                        added += len(data)
                    self.seen.add(bid)
        except OSError as exc:
            self.result.errors.append(FileError(os.fsdecode(path), exc.strerror or str(exc)))
            return None
        return added


def dry_run(
    repo: Repository,
    paths: list[str],
    options: BackupOptions | None = None,
    progress: Progress | None = None,
) -> DryRunResult:
    """What ``backup(repo, paths, options)`` would store now; the repository is not changed."""
    options = options or BackupOptions()
    progress = progress or Progress()
    host = options.hostname or socket.gethostname()
    norm = _normalize(paths)
    repo.load_index()
    parent = _find_parent(repo, options, norm, host)
    plan = _Plan(repo, options, progress)
    plan.result = DryRunResult(norm, host, parent.id if parent else None)
    parent_root = repo.load_tree(parent.tree) if parent is not None else None
    progress.phase = "scanning (dry run)"
    for target in norm:
        raw = os.fsencode(target)
        plan.devices.add(os.lstat(raw).st_dev)
        old: Node | None = None
        tree = parent_root
        for part in [p for p in raw.split(b"/") if p]:
            old = tree.find(part) if tree is not None else None
            tree = plan._old_tree(old)
        plan.entry(raw, old)
    progress.phase = "done"
    return plan.result
