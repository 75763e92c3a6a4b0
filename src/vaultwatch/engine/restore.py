"""Restore: put a snapshot (or some of its paths) back into a target directory.

Safety first: every stored name is checked before use (no ``..``, no ``/``,
no NUL, no empty name), every directory on the way is created by us or checked
to be a real directory (a symlink planted in the target is refused, never
followed), files are opened with O_NOFOLLOW, and every blob is verified
(authenticated, decompressed, id recomputed) before a byte of it is written.
A file that depends on a damaged blob is removed and reported: no bad data is
left behind.

Speed: blobs are fetched pack by pack (one ranged read per pack) by a thread
pool and written with pwrite at their offsets; all-zero chunks are not written
at all, so sparse files stay sparse.

Memory: the snapshot is walked depth first, in the order a backup stores it,
and its files are planned, written and given their metadata a batch at a time
(``_BATCH_FILES``), with trees read a bounded number of nodes ahead of the
walk. A restore holds one batch's plans, the trees near the walk's position
and a few bytes per directory, not a node per file.

Resuming: a file already present with the snapshot's size and mtime was
finished by an earlier run and is left alone; any other existing file is
compared chunk by chunk and only the chunks that differ are rewritten.

A full target (ENOSPC, or the quota reached) stops the restore at once with
RestoreTargetFullError: every later file would fail the same way. Run again
once there is room, and it continues where it stopped.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from vaultwatch.engine.errors import EngineError, IntegrityError, UnsafePathError
from vaultwatch.engine.index import BlobLocation
from vaultwatch.engine.memory import rare_young_collections, short_gil_slices, tune_allocator
from vaultwatch.engine.metadata import apply_metadata
from vaultwatch.engine.patterns import PathSelector
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import (
    BLOCKDEV,
    CHARDEV,
    DIR,
    FIFO,
    FILE,
    SYMLINK,
    Node,
    Tree,
    child_path,
)

_ZEROS = bytes(16 * 1024 * 1024)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
_METADATA_BATCH = 256
# Files planned, written and finished together: a restore holds one batch's plans and
# nodes, not the snapshot's (the memory a file costs is paid once per batch).
_BATCH_FILES = 8192
_BATCH_CHUNKS = 65536
# Trees are read ahead of the walk, breadth first below its position, until about this many
# nodes are held (some 600 bytes each parsed), at most _TREE_READ trees a read: each read
# costs a range of every tree pack it touches.
_READ_AHEAD_NODES = 20_000
_TREE_READ = 512
_TREE_SPAN = 256 * 1024
LOCAL_SPAN = 2 * 1024 * 1024
_PROGRESS_STEP = 1024 * 1024  # bytes written between progress updates (one lock each)
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class RestoreTargetFullError(EngineError):
    """The restore target has no space left: restoring stopped (run it again once there is room)."""


@dataclass
class RestoreOptions:
    """What to restore and how."""

    includes: list[str] = field(default_factory=list)  # restic patterns (see engine.patterns)
    excludes: list[str] = field(default_factory=list)
    verify: bool = False  # read every restored file back and compare it with the snapshot
    owner: bool | None = None  # restore ownership; default: when running as root
    workers: int | None = None  # default: see default_workers


@dataclass
class RestoreError:
    """A path that could not be restored and why."""

    path: str
    message: str


@dataclass
class RestoreResult:
    """What one restore did."""

    files_restored: int = 0
    files_skipped: int = 0
    dirs: int = 0
    bytes_written: int = 0
    files_verified: int = 0
    duration: float = 0.0
    errors: list[RestoreError] = field(default_factory=list)


def default_workers(repo: Repository) -> int:
    """Packs fetched at once: one per core from a local disk, more over a network.

    On a local disk the work is decrypting and writing, so more threads than
    cores only add packs in memory (measured on 2 cores: 4 threads held 18 MiB
    more than 2 and were no faster); a remote store's latency wants four.
    """
    if repo.store.reads_cheaply:
        return max(2, min(4, os.cpu_count() or 2))
    return 4


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """pwrite until every byte is written (a short write is legal)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def check_name(name: bytes) -> bytes:
    """Refuse a stored name that could leave its directory."""
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise UnsafePathError(f"refusing unsafe name {name!r} in the snapshot")
    return name


def _split_include(path: str) -> list[bytes]:
    parts = [p for p in os.fsencode(path).split(b"/") if p]
    for p in parts:
        if p in (b".", b".."):
            raise EngineError(f"include path {path!r} must be absolute and without '..'")
    return parts


@dataclass(slots=True)
class _FilePlan:
    path: bytes
    node: Node
    chunks: list[tuple[int, bytes]]  # (offset, blob id) still to write
    fresh: bool
    damaged: str = ""
    create_on_write: bool = False
    rewritten: bool = False  # fresh, or some chunks differed: counted as restored


@dataclass(slots=True)
class _Frame:
    """A directory being walked: its entries, and the next one to plan."""

    nodes: list[Node]
    rel: list[bytes]
    all_in: bool
    next: int = 0


class _SafeDirs:
    """Creates directories under the target, refusing any path through a symlink."""

    def __init__(self, root: bytes, root_is_new: bool) -> None:
        self.root = root
        self._known: set[bytes] = {root}
        # Directories this restore made (or found empty): nothing in them needs an lstat.
        self.created: set[bytes] = {root} if root_is_new else set()
        self._lock = threading.Lock()
        # Every file of a directory asks for the same parent: answer those from here
        # instead of walking and checking the path's parts again (8 % of a restore).
        self._checked: dict[tuple[bytes, ...], bytes] = {(): root}

    def ensure(self, rel: list[bytes]) -> bytes:
        """The absolute path of ``rel`` as a real directory, created as needed."""
        key = tuple(rel)
        checked = self._checked.get(key)
        if checked is not None:
            return checked
        path = self.root
        for part in rel:
            path = child_path(path, check_name(part))
            with self._lock:
                if path in self._known:
                    continue
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    os.mkdir(path, 0o700)
                    self.created.add(path)
                else:
                    if stat.S_ISLNK(st.st_mode):
                        raise UnsafePathError(
                            f"refusing to restore through the symlink {os.fsdecode(path)}"
                        )
                    if not stat.S_ISDIR(st.st_mode):
                        raise UnsafePathError(f"{os.fsdecode(path)} exists and is not a directory")
                self._known.add(path)
        self._checked[key] = path
        return path

    def existing(self, rel: list[bytes]) -> bytes | None:
        """The path of ``rel`` if this restore already made or checked it, else None."""
        path = self.root
        for part in rel:
            path = child_path(path, part)
        with self._lock:
            return path if path in self._known else None


class _Restore:
    def __init__(
        self,
        repo: Repository,
        target: bytes,
        options: RestoreOptions,
        progress: Progress,
        *,
        target_is_new: bool = False,
    ) -> None:
        self.repo = repo
        self.target = target
        self.options = options
        self.progress = progress
        self.owner = options.owner if options.owner is not None else os.geteuid() == 0
        self.workers = options.workers or default_workers(repo)
        # A local read costs little, so each worker holds 2 MiB of a pack, not all 8.
        self.max_span = LOCAL_SPAN if repo.store.reads_cheaply else None
        # Trees are read a few hundred at a time, mostly neighbours in their packs: from a
        # local disk, ranges around them, not every pack from its first to its last.
        self.tree_span = _TREE_SPAN if repo.store.reads_cheaply else None
        # ... in this thread: parsing holds the GIL, and a pool for each read cost 2 ms.
        self.tree_workers = 1 if repo.store.reads_cheaply else self.workers
        self.dirs = _SafeDirs(target, target_is_new)
        self.selector = PathSelector(options.includes, options.excludes)
        self.result = RestoreResult()
        self.files: list[_FilePlan] = []
        self.dir_nodes: list[tuple[bytes, Node]] = []
        self.links: list[tuple[bytes, bytes, Node]] = []
        self.others: list[tuple[bytes, Node]] = []
        self._inode_first: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()
        self.locations: dict[bytes, BlobLocation] = {}
        self._wanted_files: list[tuple[bytes, Node, bool]] = []  # path, node, in a new directory
        self._wanted_chunks = 0
        self._on_the_way: list[tuple[list[bytes], Node]] = []  # unselected dirs above includes
        self._damaged: set[bytes] = set()  # files removed as damaged (hard links to them fail)
        self.planned = 0  # entries of every kind planned: none means the includes matched nothing
        self.planned_bytes = 0
        self.planned_files = 0
        self.grow_totals = True  # add each file to the progress totals as it is planned
        self.full: OSError | None = None
        """The first write that found the target full; set, the writers stop."""

    def error(self, path: bytes, message: str) -> None:
        with self._lock:
            self.result.errors.append(RestoreError(os.fsdecode(path), message))

    def note_full(self, exc: OSError) -> bool:
        """Whether `exc` says the target is full (the first such error is kept)."""
        if exc.errno not in _NO_SPACE:
            return False
        with self._lock:
            if self.full is None:
                self.full = exc
        return True

    def stop_if_full(self, exc: OSError | None = None) -> None:
        """Raise RestoreTargetFullError when the target is full: one message, not one per file."""
        if exc is not None:
            self.note_full(exc)
        if self.full is None:
            return
        reason = "no space left" if self.full.errno == errno.ENOSPC else "the disk quota is reached"
        where = os.fsdecode(self.full.filename) if self.full.filename else os.fsdecode(self.target)
        raise RestoreTargetFullError(
            f"{reason} on the restore target (at {where}): restore stopped; make room and "
            "run the same restore again, it continues where it stopped"
        )

    # -- walking and planning ---------------------------------------------------------

    def run(self, root: bytes) -> None:
        """Walk the snapshot depth first, restoring the files a batch at a time.

        Entries are visited in name order, a subdirectory where its name
        falls: the order a backup stores them in, so a batch reads a run of
        neighbouring packs. Only the trees of the directories being walked
        and those read ahead of the walk are held, so memory follows the
        batch and the depth, not the number of files.
        """
        loaded: dict[bytes, Tree | IntegrityError] = {}
        frames: list[_Frame] = []
        self._enter(root, [], False, frames, loaded)
        while frames:
            frame = frames[-1]
            if frame.next == len(frame.nodes):
                frames.pop()
                continue
            node = frame.nodes[frame.next]
            frame.next += 1
            subdir = self.plan(node, frame.rel, frame.all_in)
            if subdir is not None:
                self._enter(*subdir, frames, loaded)
        self.restore_batch()
        for rel, node in self._on_the_way:
            made = self.dirs.existing(rel)
            if made is not None:
                self.dir_nodes.append((made, node))
                self.result.dirs += 1

    def _enter(
        self,
        tree_id: bytes,
        rel: list[bytes],
        all_in: bool,
        frames: list[_Frame],
        loaded: dict[bytes, Tree | IntegrityError],
    ) -> None:
        """Start walking a directory (its tree read ahead with the next ones if not yet)."""
        tree = loaded.pop(tree_id, None)
        if tree is None:
            tree = self._read_ahead(tree_id, frames, loaded)
        if isinstance(tree, IntegrityError):
            self.error(os.path.join(self.target, *rel), f"directory not restored: {tree}")
            return
        frames.append(_Frame(tree.nodes, rel, all_in))

    def _read_ahead(
        self,
        tree_id: bytes,
        frames: list[_Frame],
        loaded: dict[bytes, Tree | IntegrityError],
    ) -> Tree | IntegrityError:
        """Read ``tree_id`` with the trees the walk visits next, breadth first below it.

        Reading a tree at a time cost a pack range per tree (1,138 reads for
        the 5,000 directories of a kernel tree, 3.7 s); reading ahead level by
        level takes a few reads per level.
        """
        upcoming = (
            n.subtree
            for frame in reversed(frames)
            for n in frame.nodes[frame.next :]
            if n.subtree is not None and n.subtree not in loaded
        )
        frontier = [tree_id, *itertools.islice(upcoming, _TREE_READ)]
        budget, per_tree = _READ_AHEAD_NODES, 1
        while frontier and budget > 0:
            # as many as the budget holds if they are like the trees read last
            count = max(1, min(_TREE_READ, budget // per_tree))
            wanted = list(dict.fromkeys(frontier))[:count]
            got = self.repo.load_trees(wanted, workers=self.tree_workers, max_span=self.tree_span)
            loaded.update(got)
            trees = [t for t in got.values() if isinstance(t, Tree)]
            nodes = sum(len(t.nodes) for t in trees)
            budget -= nodes
            per_tree = max(1, nodes // max(1, len(trees)))
            frontier = [
                n.subtree
                for t in trees
                for n in t.nodes
                if n.subtree is not None and n.subtree not in loaded
            ]
        return loaded.pop(tree_id)

    def plan(
        self, node: Node, rel: list[bytes], all_in: bool
    ) -> tuple[bytes, list[bytes], bool] | None:
        """Plan one entry of the directory ``rel``; a subdirectory to walk, if it is one.

        ``all_in``: an include pattern took the directory whole.
        """
        try:
            name = check_name(node.name)
        except UnsafePathError as exc:
            self.error(os.path.join(self.target, *rel, b"?"), str(exc))
            return None
        child = [*rel, name]
        if self.selector.excluded(child):
            return None
        selected = all_in or self.selector.included(child)
        if node.type == DIR:
            if not selected:
                # restic: a directory on the way to included entries is made only when
                # something below it is restored, and then counted and given its metadata
                if node.subtree is not None and self.selector.child_may_be_included(child):
                    self._on_the_way.append((child, node))
                    return node.subtree, child, False
                return None
            try:
                path = self.dirs.ensure(child)
            except OSError as exc:
                self.stop_if_full(exc)
                self.error(os.path.join(self.target, *child), str(exc))
                return None
            except UnsafePathError as exc:
                self.error(os.path.join(self.target, *child), str(exc))
                return None
            self.dir_nodes.append((path, node))
            self.result.dirs += 1
            self.planned += 1
            return (node.subtree, child, True) if node.subtree is not None else None
        if not selected:
            return None
        try:
            parent = self.dirs.ensure(rel)
        except (UnsafePathError, OSError) as exc:
            self.error(os.path.join(self.target, *child), str(exc))
            return None
        path = child_path(parent, name)
        self.planned += 1
        if node.type != FILE:
            self.others.append((path, node))
            return None
        key = (node.device, node.inode)
        if node.links > 1 and node.inode and key in self._inode_first:
            self.links.append((self._inode_first[key], path, node))
            return None
        if node.links > 1 and node.inode:
            self._inode_first[key] = path
        self.planned_bytes += node.size
        self.planned_files += 1
        if self.grow_totals:
            self.progress.add_total(node.size, 1)
        self._wanted_files.append((path, node, parent in self.dirs.created))
        self._wanted_chunks += len(node.content)
        if len(self._wanted_files) >= _BATCH_FILES or self._wanted_chunks >= _BATCH_CHUNKS:
            self.restore_batch()  # even inside a directory of a million files
        return None

    def restore_batch(self) -> None:
        """Restore the files planned so far, then let their plans and nodes go."""
        self.resolve_files()
        self._wanted_files = []
        self._wanted_chunks = 0
        self.write_files()
        self.finish_files()
        if self.options.verify:
            self.verify()
        self.files, self.links, self.others = [], [], []

    def resolve_files(self) -> None:
        """Find every file's chunks (one vectorised index search) and what existing files lack."""
        self.locations = self.repo.lookup_many(
            b for _, node, _ in self._wanted_files for b in node.content
        )
        for path, node, in_new_dir in self._wanted_files:
            self._plan_file(path, node, in_new_dir)

    def _chunks(self, node: Node) -> tuple[list[tuple[int, bytes]], bytes | None]:
        """(offset, blob id) of every chunk, and the first blob missing from the index."""
        out: list[tuple[int, bytes]] = []
        offset = 0
        for bid in node.content:
            loc = self.locations.get(bid)
            if loc is None:
                return out, bid
            out.append((offset, bid))
            offset += loc.raw_length
        return out, None

    def _plan_file(self, path: bytes, node: Node, in_new_dir: bool) -> None:
        chunks, missing = self._chunks(node)
        if missing is not None:
            self.error(path, f"data missing from the repository: blob {missing.hex()[:8]}")
            return
        if in_new_dir:  # nothing can be in the way: no lstat (a sixth of planning's time)
            self.files.append(_FilePlan(path, node, chunks, fresh=True))
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.files.append(_FilePlan(path, node, chunks, fresh=True))
            return
        if stat.S_ISREG(st.st_mode) and st.st_size == node.size and st.st_mtime_ns == node.mtime_ns:
            self.result.files_skipped += 1
            self.progress.add(node.size, 1)
            self.files.append(_FilePlan(path, node, [], fresh=False))
            return
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                self.error(path, "a directory is in the way of this file")
                return
            os.unlink(path)  # a symlink or other entry is replaced, never followed
            self.files.append(_FilePlan(path, node, chunks, fresh=True))
            return
        self.files.append(_FilePlan(path, node, self._differing(path, chunks), fresh=False))

    def _differing(self, path: bytes, chunks: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        """Chunks of an existing file that do not hold the snapshot's bytes."""
        out = []
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            for off, bid in chunks:
                length = self.locations[bid].raw_length
                data = os.pread(fd, length, off)
                if len(data) != length or self.repo.blob_id(data) != bid:
                    out.append((off, bid))
                else:
                    self.progress.add(length)
        finally:
            os.close(fd)
        return out

    # -- writing ----------------------------------------------------------------------

    def write_files(self) -> None:
        wanted: dict[bytes, list[tuple[_FilePlan, int]]] = defaultdict(list)
        for plan in self.files:
            # A fresh file of one chunk is created where its chunk is written; others
            # are created here at full size (holes where zero chunks will be skipped).
            plan.create_on_write = plan.fresh and len(plan.chunks) == 1
            if (plan.fresh or plan.chunks) and not plan.create_on_write:
                flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if plan.fresh else 0)
                try:
                    fd = os.open(plan.path, flags, 0o600)
                    os.ftruncate(fd, plan.node.size)
                    os.close(fd)
                except OSError as exc:
                    self.stop_if_full(exc)
                    plan.damaged = f"cannot write: {exc.strerror}"
                    continue
            for off, bid in plan.chunks:
                wanted[bid].append((plan, off))
            plan.rewritten = plan.fresh or bool(plan.chunks)
            plan.chunks = []  # in `wanted` now: one list per chunk is enough while writing
        by_pack: dict[bytes, list[BlobLocation]] = defaultdict(list)
        for bid in wanted:
            loc = self.locations[bid]
            by_pack[loc.pack_id].append(loc)
        self.locations = {}  # the packs' lists hold what writing needs
        with ThreadPoolExecutor(self.workers, thread_name_prefix="restore") as pool:
            for _ in pool.map(
                lambda item: self._restore_pack(item[0], item[1], wanted), sorted(by_pack.items())
            ):
                pass
        self.stop_if_full()

    def _restore_pack(
        self,
        pack_id: bytes,
        locs: list[BlobLocation],
        wanted: dict[bytes, list[tuple[_FilePlan, int]]],
    ) -> None:
        fds: dict[bytes, int] = {}
        written = done = 0  # counted here, added to the shared totals under one lock at the end
        if self.full is not None:
            return
        try:
            for loc, data in self.repo.read_pack(pack_id, locs, self.max_span):
                if self.full is not None:
                    return
                targets = wanted[loc.blob_id]
                if isinstance(data, IntegrityError):
                    for plan, _ in targets:
                        plan.damaged = str(data)
                    continue
                zero = data == _ZEROS[: len(data)]
                for plan, off in targets:
                    if plan.damaged:
                        continue
                    if plan.create_on_write:
                        new_fd = os.open(plan.path, _CREATE, 0o600)
                        try:
                            if zero:
                                os.ftruncate(new_fd, len(data))
                            else:
                                _pwrite_all(new_fd, data, 0)
                        finally:
                            os.close(new_fd)
                    elif not (zero and plan.fresh):
                        fd = fds.get(plan.path)
                        if fd is None:
                            fd = fds[plan.path] = os.open(plan.path, os.O_WRONLY | os.O_NOFOLLOW)
                        _pwrite_all(fd, data, off)
                    if not zero or not plan.fresh:
                        written += len(data)
                    done += len(data)
                if done >= _PROGRESS_STEP:
                    self.progress.add(done)
                    done = 0
        except OSError as exc:
            if self.note_full(exc):
                return
            for loc in locs:
                for plan, _ in wanted[loc.blob_id]:
                    plan.damaged = plan.damaged or f"cannot write: {exc.strerror}"
        finally:
            for fd in fds.values():
                os.close(fd)
            self.progress.add(done)
            with self._lock:
                self.result.bytes_written += written

    def finish_files(self) -> None:
        """The batch's files: damaged ones removed, metadata set, hard links and specials made."""
        done = []
        for plan in self.files:
            if plan.damaged:
                with contextlib.suppress(OSError):
                    os.unlink(plan.path)
                self.error(plan.path, f"not restored: {plan.damaged}")
                self._damaged.add(plan.path)
                continue
            if plan.rewritten:
                self.result.files_restored += 1
                self.progress.add(files=1)
            done.append(plan)
        # Four or five system calls a file, all releasing the GIL: worth a few threads,
        # handed batches of files (a task per file cost more in futures than the calls).
        batches = [done[i : i + _METADATA_BATCH] for i in range(0, len(done), _METADATA_BATCH)]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="metadata") as pool:
            for _ in pool.map(self._metadata_of, batches):
                pass
        for source, path, _node in self.links:
            if source in self._damaged:
                self.error(path, "not restored: its hard link source is damaged")
                continue
            try:
                with contextlib.suppress(FileNotFoundError):
                    if os.path.samestat(os.lstat(source), os.lstat(path)):
                        continue
                    os.unlink(path)
                os.link(source, path, follow_symlinks=False)
                self.result.files_restored += 1
            except OSError as exc:
                self.stop_if_full(exc)
                self.error(path, f"cannot link: {exc.strerror}")
        for path, node in self.others:
            self._special(path, node)

    def finish_dirs(self) -> None:
        """Directories' metadata, deepest first, once nothing more is written inside them."""
        for path, node in sorted(self.dir_nodes, key=lambda item: -item[0].count(b"/")):
            self._metadata(path, node)

    def verify(self) -> None:
        """Read each restored file back: every chunk must hash to the snapshot's content id.

        What ``restore --verify`` promises: the bytes on disk, not only the
        bytes fetched, are the snapshot's (a full disk, a bad cable or a
        concurrent writer would show here).
        """
        plans = [p for p in self.files if not p.damaged]
        paths = [(p.path, p.node) for p in plans] + [(path, node) for _, path, node in self.links]
        lengths = {
            bid: loc.raw_length
            for bid, loc in self.repo.lookup_many(b for _, n in paths for b in n.content).items()
        }
        failed: set[bytes] = {os.fsencode(e.path) for e in self.result.errors}
        with ThreadPoolExecutor(self.workers, thread_name_prefix="verify") as pool:
            for path, problem in pool.map(
                lambda item: (item[0], self._verify_file(item[0], item[1], lengths)),
                [item for item in paths if item[0] not in failed],
            ):
                if problem:
                    self.error(path, f"verification failed: {problem}")
                else:
                    self.result.files_verified += 1

    def _verify_file(self, path: bytes, node: Node, lengths: dict[bytes, int]) -> str:
        """Why the file at ``path`` does not hold ``node``'s content ('' when it does)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            return f"cannot read: {exc.strerror}"
        try:
            offset = 0
            for bid in node.content:
                length = lengths.get(bid)
                if length is None:
                    return f"blob {bid.hex()[:8]} is not in the index"
                data = os.pread(fd, length, offset)
                if len(data) != length or self.repo.blob_id(data) != bid:
                    return f"content differs at offset {offset}"
                offset += length
            if os.fstat(fd).st_size != offset:
                return f"size is {os.fstat(fd).st_size}, the snapshot says {offset}"
        except OSError as exc:
            return f"cannot read: {exc.strerror}"
        finally:
            os.close(fd)
        return ""

    def _special(self, path: bytes, node: Node) -> None:
        try:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    self.error(path, "a directory is in the way")
                    return
                os.unlink(path)
            if node.type == SYMLINK:
                assert node.target is not None
                os.symlink(node.target, path)
            elif node.type == FIFO:
                os.mkfifo(path, 0o600)
            elif node.type in (CHARDEV, BLOCKDEV):
                kind = stat.S_IFCHR if node.type == CHARDEV else stat.S_IFBLK
                os.mknod(path, 0o600 | kind, node.rdev)
        except OSError as exc:
            self.stop_if_full(exc)
            self.error(path, f"cannot create {node.type}: {exc.strerror}")
            return
        self._metadata(path, node)

    def _metadata_of(self, plans: list[_FilePlan]) -> None:
        for plan in plans:
            self._metadata(plan.path, plan.node)

    def _metadata(self, path: bytes, node: Node) -> None:
        for problem in apply_metadata(path, node, owner=self.owner):
            self.error(path, problem)


def restore(
    repo: Repository,
    snapshot: Snapshot,
    target: Path,
    options: RestoreOptions | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore ``snapshot`` under ``target``; each backed-up absolute path is recreated below it."""
    options = options or RestoreOptions()
    progress = progress or Progress()
    tune_allocator()
    started = time.monotonic()
    if target.exists() and not target.is_dir():
        raise EngineError(f"restore target {target} exists and is not a directory")
    target_is_new = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    target_is_new = target_is_new or not any(target.iterdir())
    with rare_young_collections(repo.store.leaves_no_cycles), short_gil_slices():
        repo.load_index()
        run = _Restore(
            repo, os.fsencode(target.resolve()), options, progress, target_is_new=target_is_new
        )
        estimate = None if options.includes or options.excludes else snapshot.totals()
        if estimate is not None:  # the bar's length from the start; corrected once walked
            files, nbytes = estimate
            progress.add_total(nbytes, files)
            run.grow_totals = False
        progress.phase = "restoring"
        run.run(snapshot.tree)
        if options.includes and not run.planned:
            raise EngineError(
                "nothing in the snapshot matches the include paths: " + ", ".join(options.includes)
            )
        if estimate is not None:
            progress.add_total(run.planned_bytes - nbytes, run.planned_files - files)
        progress.phase = "setting metadata"
        run.finish_dirs()
    run.result.duration = time.monotonic() - started
    progress.phase = "done"
    return run.result


def find_node(repo: Repository, snapshot: Snapshot, path: str) -> Node:
    """The node at an absolute path inside a snapshot."""
    parts = _split_include(path)
    tree_id: bytes | None = snapshot.tree
    node: Node | None = None
    for i, part in enumerate(parts):
        if tree_id is None:
            break
        node = repo.load_tree(tree_id).find(part)
        if node is None:
            break
        tree_id = node.subtree
        if i == len(parts) - 1:
            return node
    raise EngineError(f"{path} is not in snapshot {snapshot.short_id}")


def dump(repo: Repository, snapshot: Snapshot, path: str, out: BinaryIO) -> int:
    """Write one file's content to ``out`` (every blob verified); returns the bytes written."""
    node = find_node(repo, snapshot, path)
    if node.type != FILE:
        raise EngineError(f"{path} is a {node.type}, not a file")
    repo.load_index()
    written = 0
    for bid in node.content:
        data = repo.load_blob(bid)
        out.write(data)
        written += len(data)
    return written
