"""The backup pipeline: scan, chunk, deduplicate, compress, encrypt, pack, snapshot.

The main thread walks the file system and builds trees; files that changed
since the parent snapshot are read by ``file_workers`` threads, which cut them
into chunks and hand batches of chunks to ``hash_workers`` threads for
hashing and compression (both release the GIL, so both cores stay busy even
on one large file). Small files are read in batches, each reader keeping the
disk busy with the next files of its batch while it works on one. Memory
stays bounded: each file keeps at most two batches in flight, and the pack
writer holds at most a few packs.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import getpass
import os
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal, Protocol

from vaultwatch import __version__
from vaultwatch.engine.chunker import Chunker
from vaultwatch.engine.compress import compress
from vaultwatch.engine.dirty import DirtySet
from vaultwatch.engine.errors import EngineError, IntegrityError
from vaultwatch.engine.filereader import TOO_LARGE, LazyReaderPool, ReaderParams, ReaderPool
from vaultwatch.engine.filereader import open_ahead as _open_ahead
from vaultwatch.engine.filereader import open_for_reading as _open_for_reading
from vaultwatch.engine.filereader import read_to_end as _read_to_end
from vaultwatch.engine.memory import rare_young_collections, short_gil_slices, tune_allocator
from vaultwatch.engine.metadata import node_from_stat, node_type
from vaultwatch.engine.pack import DATA, TREE
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import BlobWriter, Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import DIR, FILE, Node, Tree, child_path

BATCH_BYTES = 2 * 1024 * 1024
SMALL_FILE = 1024 * 1024
SMALL_BATCH_FILES = 256
MAX_PENDING_FILES = 4096
# Files of a batch opened (and their reading started) ahead of the one being read: on
# a cold cache two reader threads otherwise keep only two small reads in flight.
READ_AHEAD_FILES = 16


class FileCache(Protocol):
    """Files already backed up by an interrupted run of the same job (the agent's journal).

    A file whose path and (size, mtime, ctime, inode) match an entry is not
    read again: its recorded content is reused when every blob is stored.
    """

    def get(self, path: bytes, node: Node) -> list[bytes] | None:
        """The content ids recorded for this path and metadata, if any."""
        ...

    def put(self, path: bytes, node: Node, content: list[bytes]) -> None:
        """Record a file whose content is now fully handed to the pack writer.

        Called from worker threads once the batch holding the file is stored.
        """
        ...


@dataclass
class BackupOptions:
    """What to back up and how."""

    excludes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    hostname: str | None = None
    parent: str | None = "auto"
    one_file_system: bool = False
    file_workers: int = 2  # measured on 2 cores: 3 readers cost 20 % more CPU and were slower
    hash_workers: int = 2
    read_retries: int = 2
    file_cache: FileCache | None = None
    # Processes that read, cut and hash batches of small files (0: reader threads do it).
    reader_processes: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    # Small files listed before the reader processes start: fewer are read faster by
    # threads than by two interpreters that must first start (a continuous snapshot).
    reader_processes_after: int = 2048
    # Directories with changes since the parent snapshot: only they are listed again,
    # every other subtree is the parent's (None: walk everything). Ignored without a
    # parent snapshot of the same paths.
    dirty_paths: set[bytes] | None = None


@dataclass
class FileError:
    """A path that could not be backed up (or changed while read) and why."""

    path: str
    message: str


#: How a backup found what to read: it listed every directory, only the directories with
#: changes since the parent snapshot, or it read standard input.
Scan = Literal["full", "incremental", "stdin"]


@dataclass
class BackupResult:
    """What one backup did; :meth:`to_dict` is its one summary, wherever it is shown."""

    snapshot: Snapshot
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    # Files left out of the snapshot because their content could not be read. Each is in
    # errors, which also lists entries that could not be examined (their kind is unknown)
    # and directories that could not be listed (kept in the snapshot, empty).
    files_unreadable: int = 0
    dirs: int = 0
    bytes_read: int = 0
    bytes_added: int = 0
    bytes_stored: int = 0
    total_bytes: int = 0
    duration: float = 0.0
    errors: list[FileError] = field(default_factory=list)
    warnings: list[FileError] = field(default_factory=list)
    scan: Scan = "full"

    @property
    def incremental(self) -> bool:
        """Whether only the directories with changes were listed."""
        return self.scan == "incremental"

    @property
    def files_total(self) -> int:
        """The files the snapshot holds (unreadable ones are not among them)."""
        return self.files_new + self.files_changed + self.files_unmodified

    def to_dict(self) -> dict[str, Any]:
        """The summary: the snapshot records it, the CLI prints it, the agent reports it.

        One place computes the counts, so they cannot disagree: files and
        bytes are those of the whole snapshot (after an incremental run too);
        ``files_unreadable`` were to be backed up but are not in it.
        """
        return {
            "files_new": self.files_new,
            "files_changed": self.files_changed,
            "files_unmodified": self.files_unmodified,
            "files_total": self.files_total,
            "files_unreadable": self.files_unreadable,
            "dirs": self.dirs,
            "bytes_read": self.bytes_read,
            "bytes_added": self.bytes_added,
            "bytes_stored": self.bytes_stored,
            "total_bytes": self.total_bytes,
            "duration": round(self.duration, 3),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "scan": self.scan,
        }


class Excluder:
    """Exclude patterns: without a slash they match a name anywhere; with one, the whole path."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.name_patterns = [p for p in patterns if "/" not in p.rstrip("/")]
        self.path_patterns = [p.rstrip("/") for p in patterns if "/" in p.rstrip("/")]

    def excluded(self, path: bytes, name: bytes) -> bool:
        """Whether the entry (and, for a directory, everything below it) is left out."""
        if not (self.name_patterns or self.path_patterns):
            return False
        sname, spath = os.fsdecode(name), os.fsdecode(path)
        return any(fnmatch.fnmatchcase(sname, p) for p in self.name_patterns) or any(
            fnmatch.fnmatchcase(spath, p) for p in self.path_patterns
        )


@dataclass(slots=True)
class _FileOutcome:
    content: list[bytes]
    size: int
    st: os.stat_result | None
    error: str = ""
    warning: str = ""
    # A small file's chunks, stored together with the rest of its batch (then in content).
    unstored: list[bytes] | None = None


class _Batch:
    """Files read by one task: many small files share one, a large file has its own.

    One task per file would cost more in thread hand-offs than reading a small file.
    """

    def __init__(self) -> None:
        self.items: list[tuple[bytes, Node]] = []
        self.size = 0
        self.future: Future[list[_FileOutcome]] | None = None

    def add(self, path: bytes, node: Node) -> _FileRef:
        self.items.append((path, node))
        self.size += node.size
        return _FileRef(self, len(self.items) - 1)


@dataclass(slots=True)
class _FileRef:
    batch: _Batch
    index: int

    def result(self) -> _FileOutcome:
        assert self.batch.future is not None
        return self.batch.future.result()[self.index]


@dataclass(slots=True)
class _DirJob:
    node: Node
    path: bytes = b"/"
    entries: list[tuple[Node, _FileRef | _DirJob | None]] = field(default_factory=list)
    error: str = ""
    tree_id: bytes | None = None
    # The same directory in the parent snapshot. While every entry is the parent's own
    # node (nothing changed), the parent's tree id is this tree's id too.
    old_tree: Tree | None = None
    old_tree_id: bytes | None = None
    unchanged: bool = False

    def ready(self) -> bool:
        """Whether every file of this directory has been read (sub-directories finish first)."""
        for _, pending in self.entries:
            if isinstance(pending, _FileRef):
                future = pending.batch.future
                if future is None or not future.done():
                    return False
        return True


class _Backup:
    """One run of the pipeline."""

    def __init__(self, repo: Repository, options: BackupOptions, progress: Progress) -> None:
        self.repo = repo
        self.options = options
        self.progress = progress
        self.excluder = Excluder(options.excludes)
        self.result_errors: list[FileError] = []
        self.result_warnings: list[FileError] = []
        self.counts = {"new": 0, "changed": 0, "unmodified": 0, "dirs": 0, "unreadable": 0}
        self.bytes_read = 0
        self.total_bytes = 0
        self._count_lock = threading.Lock()
        self._local = threading.local()
        self._seen_inodes: dict[tuple[int, int], _FileRef] = {}
        self._small = _Batch()
        self._category: dict[int, str] = {}  # id(node) -> "new" or "changed", counted once read
        # Scanned directories in post-order, waiting for their files: finishing them as
        # soon as they are ready keeps memory bounded by MAX_PENDING_FILES, not the tree size.
        self._unfinished: deque[_DirJob] = deque()
        self._pending_files = 0
        self.root_devices: set[int] = set()
        # An incremental run: the dirty directories, and what the parent snapshot held in
        # the directories this run rebuilt (so the totals cover the whole snapshot).
        self.dirty: DirtySet | None = None
        self.replaced_files = 0
        self.replaced_bytes = 0
        self.writer: BlobWriter | None = None
        self.file_pool: ThreadPoolExecutor | None = None
        self.hash_pool: ThreadPoolExecutor | None = None
        self.readers: LazyReaderPool | None = None
        self.small_files_listed = 0

    # -- chunk processing (hash pool) -------------------------------------------------

    def _chunker(self) -> Chunker:
        c: Chunker | None = getattr(self._local, "chunker", None)
        if c is None:
            p = self.repo.config.chunker
            c = self._local.chunker = Chunker(
                p.min_size, p.avg_size, p.max_size, self.repo.master.chunker_seed
            )
        return c

    def _store_batch(self, chunks: list[bytes]) -> list[bytes]:
        """Hash the chunks, then compress and pack the new ones; their ids in order.

        One vectorised index search for the whole batch: a search per chunk
        held the writer's lock for microseconds each, with four threads
        waiting on it.
        """
        assert self.writer is not None
        ids = [self.repo.blob_id(data) for data in chunks]
        for data, bid, new in zip(chunks, ids, self.writer.reserve_many(ids), strict=True):
            if new:
                self.writer.add(DATA, bid, compress(data), len(data))
        return ids

    # -- file reading (file pool) -----------------------------------------------------

    def _read_small(self, fd: int, expected: int) -> tuple[list[bytes], int]:
        """Read and cut in this thread (a hand-off would cost more); stored with its batch."""
        data = _read_to_end(fd, expected)
        chunks = self._chunker().cut(data)
        self.progress.add(len(data))
        return chunks, len(data)

    def _read_large(self, f: BinaryIO) -> tuple[list[bytes], int]:
        """Stream the file; batches of chunks go to the hash pool, at most two in flight."""
        assert self.hash_pool is not None
        content: list[bytes] = []
        pending: list[Future[list[bytes]]] = []
        batch: list[bytes] = []
        batch_bytes = size = 0

        def drain(limit: int) -> None:
            while len(pending) > limit:
                content.extend(pending.pop(0).result())

        for chunk in self._chunker().chunks(f):
            batch.append(chunk)
            batch_bytes += len(chunk)
            size += len(chunk)
            self.progress.add(len(chunk))
            if batch_bytes >= BATCH_BYTES:
                self.progress.check()
                pending.append(self.hash_pool.submit(self._store_batch, batch))
                batch, batch_bytes = [], 0
                drain(1)
        drain(0)
        if batch:
            content.extend(self._store_batch(batch))
        return content, size

    def _read_once(self, path: bytes, opened: int | OSError | None = None) -> _FileOutcome:
        """Read one file (``opened``: what opening it ahead gave; a descriptor is closed here)."""
        assert self.hash_pool is not None
        if isinstance(opened, OSError):
            raise opened
        fd = opened if opened is not None else _open_for_reading(path)
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise OSError(errno.EINVAL, "no longer a regular file")
            unstored: list[bytes] | None = None
            content: list[bytes] = []
            if before.st_size <= SMALL_FILE:
                unstored, size = self._read_small(fd, before.st_size)
            else:
                with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
                    content, size = self._read_large(f)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        changed = (before.st_size, before.st_mtime_ns, before.st_ctime_ns) != (
            after.st_size,
            after.st_mtime_ns,
            after.st_ctime_ns,
        ) or size != after.st_size
        return _FileOutcome(
            content,
            size,
            after,
            warning="changed while being read" if changed else "",
            unstored=unstored,
        )

    def _read_with_retries(self, path: bytes, opened: int | OSError | None = None) -> _FileOutcome:
        attempts = self.options.read_retries + 1
        outcome: _FileOutcome | None = None
        for attempt in range(attempts):
            try:
                outcome = self._read_once(path, opened if attempt == 0 else None)
            except OSError as exc:
                return _FileOutcome([], 0, None, error=exc.strerror or str(exc))
            with self._count_lock:
                self.bytes_read += outcome.size
            if not outcome.warning:
                return outcome
            if attempt + 1 < attempts:
                self.progress.add(-outcome.size)
                time.sleep(0.05)
        assert outcome is not None
        return outcome

    # -- scanning (main thread) -------------------------------------------------------

    def _parent_match(self, node: Node, old: Node | None, known: set[bytes]) -> bool:
        if old is None or old.type != FILE or node.type != FILE:
            return False
        if (old.size, old.mtime_ns, old.ctime_ns, old.inode) != (
            node.size,
            node.mtime_ns,
            node.ctime_ns,
            node.inode,
        ):
            return False
        return all(b in known for b in old.content)

    def _cached_content(self, path: bytes, node: Node) -> list[bytes] | None:
        cache = self.options.file_cache
        if cache is None:
            return None
        content = cache.get(path, node)
        if content is None or not all(self.repo.has_blob(b) for b in content):
            return None
        return content

    def _submit_file(self, path: bytes, node: Node) -> _FileRef:
        key = (node.device, node.inode)
        if node.links > 1:
            seen = self._seen_inodes.get(key)
            if seen is not None:
                return seen
        if node.size > SMALL_FILE:
            batch = _Batch()
            ref = batch.add(path, node)
            self._start(batch)
        else:
            ref = self._small.add(path, node)
            self.small_files_listed += 1
            if len(self._small.items) >= SMALL_BATCH_FILES or self._small.size >= BATCH_BYTES:
                self.flush_small()
        if node.links > 1:
            self._seen_inodes[key] = ref
        return ref

    def _start(self, batch: _Batch) -> None:
        assert self.file_pool is not None
        batch.future = self.file_pool.submit(self._read_batch, batch.items)

    def flush_small(self) -> None:
        """Send the batch of small files collected so far to a reader."""
        if self._small.items:
            self._start(self._small)
            self._small = _Batch()

    def _read_batch(self, items: list[tuple[bytes, Node]]) -> list[_FileOutcome]:
        """Read a batch of files; small files' chunks are stored together at the end.

        The next READ_AHEAD_FILES files are opened and their reading started
        (posix_fadvise WILLNEED) before the current one is read, so the disk
        works on several files at once instead of one per reader thread.
        Batches of small files go to the reader processes when there are any.
        """
        pool = self.readers.get(self.small_files_listed) if self.readers is not None else None
        if pool is not None and all(n.size <= SMALL_FILE for _, n in items):
            return self._read_in_processes(pool, items)
        outcomes = []
        ahead: dict[int, int | OSError] = {}
        try:
            for i, (path, _) in enumerate(items):
                for j in range(i, min(i + READ_AHEAD_FILES, len(items))):
                    if j not in ahead:
                        ahead[j] = _open_ahead(items[j][0])
                self.progress.check()
                outcomes.append(self._read_with_retries(path, ahead.pop(i)))
        finally:
            for fd in ahead.values():  # cancelled half-way: close what was opened ahead
                if isinstance(fd, int):
                    os.close(fd)
        unstored = [chunk for o in outcomes if o.unstored for chunk in o.unstored]
        ids = iter(self._store_batch(unstored) if unstored else [])
        cache = self.options.file_cache
        for (path, node), outcome in zip(items, outcomes, strict=True):
            if outcome.unstored is not None:
                outcome.content = [next(ids) for _ in outcome.unstored]
                outcome.unstored = None
            if cache is not None and not (outcome.error or outcome.warning):
                cache.put(path, node, outcome.content)
        return outcomes

    def _read_in_processes(
        self, pool: ReaderPool, items: list[tuple[bytes, Node]]
    ) -> list[_FileOutcome]:
        """A batch of small files read, cut, hashed (and its new chunks compressed) elsewhere."""
        assert self.writer is not None
        self.progress.check()
        writer = self.writer
        reads = pool.read_batch(
            [path for path, _ in items],
            writer.reserve_many,
            lambda bid, body, size: writer.add(DATA, bid, body, size),
        )
        outcomes = []
        read = 0
        cache = self.options.file_cache
        for (path, node), r in zip(items, reads, strict=True):
            if r.error == TOO_LARGE:  # grew since it was listed: streamed here instead
                outcome = self._read_with_retries(path)
            elif r.error:
                outcome = _FileOutcome([], 0, None, error=r.error)
            else:
                outcome = _FileOutcome(r.content, r.size, None, warning=r.warning)
                read += r.size
            if cache is not None and not (outcome.error or outcome.warning):
                cache.put(path, node, outcome.content)
            outcomes.append(outcome)
        with self._count_lock:
            self.bytes_read += read
        self.progress.add(read)
        return outcomes

    def _stored_parent_blobs(self, parent_tree: Tree | None) -> set[bytes]:
        """Which content of the parent's files is still stored: one index search per directory."""
        if parent_tree is None:
            return set()
        ids = [b for n in parent_tree.nodes if n.type == FILE for b in n.content]
        return self.repo.stored_blobs(ids) if ids else set()

    def _scan_dir(
        self, path: bytes, node: Node, parent_tree: Tree | None, parent_tree_id: bytes | None
    ) -> _DirJob:
        job = _DirJob(node, path, old_tree=parent_tree, old_tree_id=parent_tree_id)
        job.unchanged = parent_tree is not None and parent_tree_id is not None
        self.counts["dirs"] += 1
        if self.dirty is not None and parent_tree is not None and not self.dirty.is_dirty(path):
            way = self.dirty.children_on_way(path)
            if way is not None:
                return self._rebuild_on_way(job, parent_tree, way)
        try:
            with os.scandir(path) as it:
                names = sorted(e.name for e in it)
        except OSError as exc:
            job.error = exc.strerror or str(exc)
            self.result_errors.append(
                FileError(os.fsdecode(path), f"cannot list directory: {job.error}")
            )
            return job
        known = self._stored_parent_blobs(parent_tree)
        if parent_tree is not None:
            self.repo.cache_trees(
                n.subtree for n in parent_tree.nodes if n.type == DIR and n.subtree is not None
            )
        self.progress.check()
        for name in names:
            entry_path = child_path(path, name)
            if self.excluder.excluded(entry_path, name):
                continue
            old = parent_tree.find(name) if parent_tree is not None else None
            self._scan_entry(job, entry_path, name, old, known)
        if parent_tree is not None and len(job.entries) != len(parent_tree.nodes):
            job.unchanged = False  # entries were removed (or could not be read)
        self._unfinished.append(job)
        self._finish_ready()
        return job

    def _rebuild_on_way(self, job: _DirJob, parent_tree: Tree, way: set[bytes]) -> _DirJob:
        """A directory above a dirty one: the parent's entries, but the children on the way.

        Not listed: an entry created or removed here would have made this
        directory dirty itself.
        """
        known = self._stored_parent_blobs(parent_tree)
        path = job.path
        for old in parent_tree.nodes:
            entry_path = child_path(path, old.name)
            if self.excluder.excluded(entry_path, old.name):
                continue
            if old.name in way:
                self._scan_entry(job, entry_path, old.name, old, known)
            else:
                self._keep_unchanged(job, old)
        for name in sorted(way.difference(n.name for n in parent_tree.nodes)):
            entry_path = child_path(path, name)  # new since the parent, events on the way only
            if not self.excluder.excluded(entry_path, name):
                self._scan_entry(job, entry_path, name, None, known)
        if len(job.entries) != len(parent_tree.nodes):
            job.unchanged = False
        self._unfinished.append(job)
        self._finish_ready()
        return job

    def _reuse_subtree(
        self, job: _DirJob, path: bytes, old: Node | None, node: Node, st: os.stat_result
    ) -> bool:
        """In an incremental run, keep a clean directory's subtree from the parent snapshot.

        Clean means no events at or below it, and the same directory (inode,
        device) with the same list of names (mtime) as the parent recorded.
        """
        if (
            self.dirty is None
            or old is None
            or old.type != DIR
            or old.subtree is None
            or self.dirty.touches(path)
            or (old.inode, old.device, old.mtime_ns) != (st.st_ino, st.st_dev, st.st_mtime_ns)
        ):
            return False
        if _unchanged(old, st):
            job.entries.append((old, None))
        else:
            node.subtree = old.subtree
            job.entries.append((node, None))
            job.unchanged = False
        return True

    def _keep_unchanged(self, job: _DirJob, old: Node) -> None:
        """Reuse the parent snapshot's node as it is: no xattr calls, no new node."""
        if old.type == FILE:
            self.progress.add_total(old.size, 1)
            with self._count_lock:
                self.total_bytes += old.size
            self.counts["unmodified"] += 1
            self.progress.add(old.size, 1)
        job.entries.append((old, None))

    def _scan_entry(
        self, job: _DirJob, path: bytes, name: bytes, old: Node | None, known: set[bytes]
    ) -> None:
        try:
            st = os.lstat(path)
            if (
                old is not None
                and old.type != DIR
                and _unchanged(old, st)
                and (old.type != FILE or all(b in known for b in old.content))
            ):
                self._keep_unchanged(job, old)
                return
            node = node_from_stat(name, path, st)
        except FileNotFoundError:
            return  # deleted since the directory was listed: nothing to back up
        except OSError as exc:
            self.result_errors.append(FileError(os.fsdecode(path), exc.strerror or str(exc)))
            return
        if node is None:
            return  # sockets and other unsupported kinds
        if node.type == DIR:
            if self.options.one_file_system and st.st_dev not in self.root_devices:
                job.entries.append((node, None))  # keep the mount point, not its content
                job.unchanged = False
                return
            if self._reuse_subtree(job, path, old, node, st):
                return
            old_tree, old_tree_id = None, None
            if old is not None and old.type == DIR and old.subtree is not None:
                with contextlib.suppress(Exception):
                    old_tree, old_tree_id = self.repo.load_tree(old.subtree), old.subtree
            sub = self._scan_dir(path, node, old_tree, old_tree_id)
            job.entries.append((node, sub))
            if old is None or not _unchanged(old, st):
                job.unchanged = False
            return
        job.unchanged = False
        if node.type == FILE:
            self.progress.add_total(node.size, 1)
            with self._count_lock:
                self.total_bytes += node.size
            cached = self._cached_content(path, node)
            if cached is not None or self._parent_match(node, old, known):
                node.content = list(cached if cached is not None else old.content)  # type: ignore[union-attr]
                self.counts["unmodified"] += 1
                self.progress.add(node.size, 1)
                job.entries.append((node, None))
                return
            self._category[id(node)] = "changed" if old is not None and old.type == FILE else "new"
            job.entries.append((node, self._submit_file(path, node)))
            self._pending_files += 1
            return
        job.entries.append((node, None))

    # -- trees (main thread, post-order) ------------------------------------------------

    def _finish_ready(self) -> None:
        """Finish scanned directories whose files are read; wait when too many are pending."""
        while self._unfinished:
            head = self._unfinished[0]
            if not head.ready():
                if self._pending_files < MAX_PENDING_FILES:
                    return
                self.flush_small()  # the head may wait on the batch being collected
            self._unfinished.popleft()
            self._finish_dir(head)

    def _finish_dir(self, job: _DirJob) -> bytes:
        """Save one directory's tree; its sub-directories are finished already."""
        assert self.writer is not None
        tree = Tree()
        unchanged = job.unchanged and not job.error
        for node, pending in job.entries:
            if isinstance(pending, _DirJob):
                if pending.tree_id is None:
                    self._finish_dir(pending)  # an ancestor of a backed-up path
                node.subtree = pending.tree_id
                if unchanged and job.old_tree is not None:
                    old = job.old_tree.find(node.name)
                    unchanged = old is not None and old.subtree == node.subtree and not node.error
            elif pending is not None:
                self._pending_files -= 1
                outcome = pending.result()
                if outcome.error:
                    child = child_path(job.path, node.name)
                    self.result_errors.append(FileError(os.fsdecode(child), outcome.error))
                    self.counts["unreadable"] += 1
                    with self._count_lock:
                        self.total_bytes -= node.size  # not in the snapshot after all
                    continue
                self.counts[self._category.pop(id(node), "new")] += 1
                if outcome.warning:
                    child = child_path(job.path, node.name)
                    self.result_warnings.append(FileError(os.fsdecode(child), outcome.warning))
                    node.error = outcome.warning
                node.content = outcome.content
                node.size = outcome.size
                self.progress.add(files=1)
            elif node.type == DIR and node.subtree is None:
                node.subtree = Tree().save(self._save_tree_blob)
            tree.nodes.append(node)
        if job.error:
            job.node.error = job.error
        if self.dirty is not None and job.old_tree is not None:
            self._count_replaced(job.old_tree, {n.name for n in tree.nodes if n.type == DIR})
        if unchanged and job.old_tree_id is not None:
            job.tree_id = job.old_tree_id  # the same entries: the stored tree, not a new one
        else:
            job.tree_id = tree.save(self._save_tree_blob)
        job.entries = []  # the parent needs only the id
        return job.tree_id

    def _save_tree_blob(self, data: bytes) -> bytes:
        assert self.writer is not None
        return self.writer.save(TREE, data)[0]

    def _count_replaced(self, old_tree: Tree, new_dirs: set[bytes]) -> None:
        """Count what the parent held in a rebuilt directory (its files, its vanished subtrees)."""
        for old in old_tree.nodes:
            if old.type == FILE:
                self.replaced_files += 1
                self.replaced_bytes += old.size
            elif old.type == DIR and old.subtree is not None and old.name not in new_dirs:
                files, size = self._subtree_totals(old.subtree)
                self.replaced_files += files
                self.replaced_bytes += size

    def _subtree_totals(self, tree_id: bytes) -> tuple[int, int]:
        """Files and bytes below a tree of the parent snapshot."""
        files = size = 0
        stack = [tree_id]
        while stack:
            try:
                tree = self.repo.load_tree(stack.pop())
            except IntegrityError:
                continue  # an unreadable parent tree: the totals are an estimate then
            for n in tree.nodes:
                if n.type == FILE:
                    files += 1
                    size += n.size
                elif n.type == DIR and n.subtree is not None:
                    stack.append(n.subtree)
        return files, size

    def run(self, paths: list[str], parent: Snapshot | None) -> tuple[bytes, list[str]]:
        """Back up ``paths``; returns the root tree id and the normalized paths."""
        targets = _normalize(paths)
        for t in targets:
            self.root_devices.add(os.lstat(t).st_dev)
        dirty = self.options.dirty_paths
        if dirty is not None and parent is not None and sorted(parent.paths) == targets:
            self.dirty = DirtySet(dirty)
        parent_root = self.repo.load_tree(parent.tree) if parent is not None else None
        root = _DirJob(Node(name=b"", type=DIR), b"/")
        for target in targets:
            self._add_target(root, os.fsencode(target), parent_root)
        self.flush_small()
        while self._unfinished:
            self._finish_dir(self._unfinished.popleft())
        return self._finish_dir(root), targets

    def _add_target(self, root: _DirJob, target: bytes, parent_root: Tree | None) -> None:
        """Place one backed-up path under the root, creating its ancestors' nodes."""
        parts = [p for p in target.split(b"/") if p]
        job, old_tree, prefix = root, parent_root, b"/"
        for i, part in enumerate(parts):
            path = child_path(prefix, part)
            old = old_tree.find(part) if old_tree is not None else None
            if i == len(parts) - 1:
                self._scan_entry(job, path, part, old, self._stored_parent_blobs(old_tree))
                return
            existing = next(
                (p for n, p in job.entries if n.name == part and isinstance(p, _DirJob)), None
            )
            if existing is None:
                st = os.lstat(path)
                node = node_from_stat(part, path, st)
                assert node is not None
                existing = _DirJob(node, path)
                job.entries.append((node, existing))
            job = existing
            old_tree = (
                self.repo.load_tree(old.subtree)
                if old is not None and old.type == DIR and old.subtree is not None
                else None
            )
            prefix = path


def _whole_snapshot_totals(result: BackupResult, run: _Backup, parent: Snapshot) -> None:
    """Files and bytes of the whole snapshot after an incremental run.

    The run counted only what it scanned; the rest is the parent's, minus
    what the parent held in the directories this run rebuilt.
    """
    totals = parent.totals()
    if totals is None:
        return  # a parent without totals: the counts stay those of the scanned part
    parent_files, parent_bytes = totals
    scanned = result.files_total
    files = max(parent_files - run.replaced_files + scanned, scanned)
    result.files_unmodified = files - result.files_new - result.files_changed
    result.total_bytes = max(parent_bytes - run.replaced_bytes + run.total_bytes, run.total_bytes)


def _unchanged(old: Node, st: os.stat_result) -> bool:
    """Whether the parent snapshot's node still describes this entry's metadata exactly.

    Any change to content, mode, owner, link count or extended attributes
    moves ctime, so with ctime, mtime, inode and device equal the old node
    (xattrs included) stands without another listxattr. An entry recorded
    with an error is always read again.
    """
    return (
        old.ctime_ns == st.st_ctime_ns
        and old.mtime_ns == st.st_mtime_ns
        and old.inode == st.st_ino
        and old.device == st.st_dev
        and old.links == st.st_nlink
        and old.mode == stat.S_IMODE(st.st_mode)
        and old.uid == st.st_uid
        and old.gid == st.st_gid
        and old.type == node_type(st.st_mode)
        and (old.type != FILE or old.size == st.st_size)
        and not old.error
    )


def _normalize(paths: list[str]) -> list[str]:
    """Absolute, existing, de-duplicated paths; nested ones are covered by their ancestor."""
    if not paths:
        raise EngineError("nothing to back up: give at least one path")
    out: list[str] = []
    for p in sorted({os.path.abspath(p) for p in paths}):
        if not os.path.lexists(p):
            raise EngineError(f"{p} does not exist")
        if any(p == o or p.startswith(o.rstrip("/") + "/") for o in out):
            continue
        out.append(p)
    return out


def _reader_pool(
    repo: Repository, options: BackupOptions
) -> contextlib.AbstractContextManager[LazyReaderPool | None]:
    """The reader processes, started once the scan has listed enough small files.

    Not worth it with one core: the threads would do the same work.
    """
    if options.reader_processes < 1 or (os.cpu_count() or 1) < 2:
        return contextlib.nullcontext()
    p = repo.config.chunker
    params = ReaderParams(
        repo.master.id_key,
        p.min_size,
        p.avg_size,
        p.max_size,
        repo.master.chunker_seed,
        options.read_retries,
    )
    return LazyReaderPool(params, options.reader_processes, options.reader_processes_after)


def _find_parent(
    repo: Repository, options: BackupOptions, paths: list[str], host: str
) -> Snapshot | None:
    if options.parent is None:
        return None
    if options.parent != "auto":
        return repo.find_snapshot(options.parent)
    candidates = [
        s for s in repo.snapshots() if s.hostname == host and sorted(s.paths) == sorted(paths)
    ]
    return candidates[-1] if candidates else None


def backup(
    repo: Repository,
    paths: list[str],
    options: BackupOptions | None = None,
    progress: Progress | None = None,
) -> BackupResult:
    """Back up ``paths`` into a new snapshot; unreadable files are reported, not fatal."""
    options = options or BackupOptions()
    progress = progress or Progress()
    tune_allocator()
    host = options.hostname or socket.gethostname()
    started = time.monotonic()
    norm = _normalize(paths)
    with repo.lock(exclusive=False, purpose="backup", on_lost=progress.cancel) as lock:
        repo.load_index()
        orphans = repo.unindexed_packs()
        if orphans:
            progress.phase = "adopting packs of an interrupted backup"
            repo.adopt_packs(orphans)
        parent = _find_parent(repo, options, norm, host)
        run = _Backup(repo, options, progress)
        progress.phase = "backing up"
        with (
            rare_young_collections(repo.store.leaves_no_cycles),
            short_gil_slices(),
            _reader_pool(repo, options) as readers,
            repo.writer() as writer,
            ThreadPoolExecutor(options.hash_workers, thread_name_prefix="hash") as hash_pool,
            ThreadPoolExecutor(options.file_workers, thread_name_prefix="read") as file_pool,
        ):
            run.writer, run.hash_pool, run.file_pool = writer, hash_pool, file_pool
            run.readers = readers
            try:
                tree_id, norm = run.run(norm, parent)
            except BaseException:
                # Ctrl-C or cancel: drop queued reads instead of finishing them first.
                progress.cancel()
                file_pool.shutdown(wait=True, cancel_futures=True)
                hash_pool.shutdown(wait=True, cancel_futures=True)
                raise
            progress.phase = "saving"
            writer.flush()
        lock.check()  # the snapshot must not reference packs a prune may already collect
        duration = time.monotonic() - started
        try:
            user = getpass.getuser()
        except Exception:
            user = str(os.getuid())
        result = BackupResult(
            snapshot=Snapshot(
                datetime.now(UTC),
                tree_id,
                norm,
                host,
                user,
                list(options.tags),
                parent.id if parent else None,
                program_version=f"vaultwatch {__version__}",
            ),
            files_new=run.counts["new"],
            files_changed=run.counts["changed"],
            files_unmodified=run.counts["unmodified"],
            files_unreadable=run.counts["unreadable"],
            dirs=run.counts["dirs"],
            bytes_read=run.bytes_read,
            bytes_added=writer.new_raw_bytes,
            bytes_stored=writer.stored_bytes,
            total_bytes=run.total_bytes,
            duration=duration,
            errors=run.result_errors,
            warnings=run.result_warnings,
            scan="incremental" if run.dirty is not None else "full",
        )
        if run.dirty is not None and parent is not None:
            _whole_snapshot_totals(result, run, parent)
        result.snapshot.summary = result.to_dict()
        repo.save_snapshot(result.snapshot)
        progress.phase = "done"
        return result
