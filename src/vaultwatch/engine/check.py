"""check: prove that every snapshot can be restored, or say exactly what cannot and why.

The structural check reads only small objects (config, key slots, index
files, snapshots, trees) and the store's listing: it finds lost packs, broken
index files and dangling references. ``read_data`` downloads packs too and
verifies every byte: the pack's name is the hash of its content, its trailer
must agree with the index, and every blob must decrypt, decompress and hash to
its id. Problems are structured records (kind, pack, blob, path, message), so
the CLI can print them and the SOC can store them; an error names the files
that use a damaged blob wherever the trees tell.

The check builds its own index from the index files that are intact, so one
damaged index file is reported rather than stopping everything.
"""

from __future__ import annotations

import random
import re
import struct
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vaultwatch.engine.browse import display_path, join_path, walk_trees
from vaultwatch.engine.crypto import OVERHEAD
from vaultwatch.engine.errors import IntegrityError, InvalidSubsetError
from vaultwatch.engine.ids import content_hash
from vaultwatch.engine.index import BlobIndex, BlobLocation
from vaultwatch.engine.keys import PASSPHRASE, KeySlot
from vaultwatch.engine.lock import RepositoryLock
from vaultwatch.engine.pack import BLOB_TYPES, DATA, pack_name, read_trailer
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.prune import IndexTable
from vaultwatch.engine.repository import RepoConfig, Repository
from vaultwatch.engine.retention_state import present_packs, read_retention_state
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import DIR, FILE, Tree
from vaultwatch.errors import VaultwatchError

ERROR = "error"
WARNING = "warning"

# kinds of problems
CONFIG = "config"
KEY_SLOT = "key-slot"
INDEX = "index"
PACK_MISSING = "pack-missing"
PACK_SIZE = "pack-size"
PACK_UNINDEXED = "pack-unindexed"
PACK_UNREADABLE = "pack-unreadable"
PACK_HASH = "pack-hash"
PACK_TRAILER = "pack-trailer"
INDEX_MISMATCH = "index-mismatch"
SNAPSHOT = "snapshot"
TREE_DAMAGED = "tree"
BLOB_MISSING = "blob-missing"
BLOB_DAMAGED = "blob-damaged"
UNKNOWN_OBJECT = "unknown-object"
PACK_RETIRED = "pack-retired"

_TRAILER_ENTRY = struct.calcsize("<32sBIII")
_TRAILER_FIXED = OVERHEAD + 8  # sealed table's nonce and tag, then length u32 and magic


@dataclass(frozen=True)
class Problem:
    """One finding. Ids are full hex; ``path`` is the first file or directory found using the blob."""

    severity: str
    kind: str
    message: str
    pack: str | None = None
    blob: str | None = None
    path: str | None = None
    snapshot: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (absent fields left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        return self.message


@dataclass
class CheckResult:
    """Everything a check found, with what it looked at."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    index_files: int = 0
    packs: int = 0
    blobs: int = 0
    snapshots: int = 0
    trees: int = 0
    packs_read: int = 0
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        """True when no error was found (warnings do not make a repository unsound)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for ``check --json`` and job reports."""
        return {
            "ok": self.ok,
            "errors": [p.to_dict() for p in self.errors],
            "warnings": [p.to_dict() for p in self.warnings],
            "index_files": self.index_files,
            "packs": self.packs,
            "blobs": self.blobs,
            "snapshots": self.snapshots,
            "trees": self.trees,
            "packs_read": self.packs_read,
            "bytes_read": self.bytes_read,
        }


class _NotIndexed(IntegrityError):
    """A referenced blob no intact index file lists."""


_SUBSET_GROUP = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_SUBSET_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def select_packs(
    pack_ids: Iterable[bytes], subset: str, rng: random.Random | None = None
) -> list[bytes]:
    """The packs ``--read-data-subset`` asks for: ``n/t`` (group n of t, by pack id) or ``x%`` (random)."""
    packs = sorted(pack_ids)
    m = _SUBSET_GROUP.match(subset)
    if m:
        n, t = int(m.group(1)), int(m.group(2))
        if t < 1 or not 1 <= n <= t:
            raise InvalidSubsetError(
                f"read-data subset {subset!r}: need 1 <= n <= t in n/t (e.g. 2/5)"
            )
        return [p for p in packs if int.from_bytes(p[:8], "big") % t == n - 1]
    m = _SUBSET_SHARE.match(subset)
    if m:
        share = float(m.group(1))
        if not 0 < share <= 100:
            raise InvalidSubsetError(
                f"read-data subset {subset!r}: the percentage must be above 0 and at most 100"
            )
        if not packs:
            return []
        count = max(1, round(len(packs) * share / 100))
        return sorted((rng or random.SystemRandom()).sample(packs, count))
    raise InvalidSubsetError(
        f"read-data subset {subset!r} is not understood: use n/t (e.g. 1/5) or a percentage (e.g. 10%)"
    )


class _Checker:
    """One run of check: its own index (from the intact index files) and what it found."""

    def __init__(self, repo: Repository, progress: Progress, workers: int, paths: bool) -> None:
        self.repo = repo
        self.progress = progress
        self.workers = workers
        self.result = CheckResult()
        self.index = BlobIndex()
        self.pack_sizes: dict[bytes, int] = {}
        self.missing_packs: set[bytes] = set()
        self.rows = IndexTable.build(BlobIndex())
        self.pack_no: dict[bytes, int] = {}
        self.track_paths = paths
        self.first_path: dict[bytes, str] = {}

    # -- recording ------------------------------------------------------------------

    def error(self, kind: str, message: str, **where: str | None) -> None:
        self.result.errors.append(Problem(ERROR, kind, message, **where))

    def warn(self, kind: str, message: str, **where: str | None) -> None:
        self.result.warnings.append(Problem(WARNING, kind, message, **where))

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="check") as pool:
            return list(pool.map(fn, items))

    # -- structure -------------------------------------------------------------------

    def config_and_keys(self) -> None:
        store = self.repo.store
        try:
            config = RepoConfig.from_json(store.get("config"))
            if config.repo_id != self.repo.config.repo_id:
                self.error(CONFIG, "the config now names another repository", name="config")
        except VaultwatchError as exc:
            self.error(CONFIG, f"config cannot be read: {exc}", name="config")
        passphrase_slots = 0
        for obj in store.list("keys/"):
            slot_id = obj.name.split("/", 1)[1]
            try:
                slot = KeySlot.from_json(slot_id, store.get(obj.name))
            except VaultwatchError as exc:
                self.error(KEY_SLOT, f"key slot {obj.name} cannot be read: {exc}", name=obj.name)
                continue
            passphrase_slots += slot.kind == PASSPHRASE
        if passphrase_slots == 0:
            self.error(KEY_SLOT, "no readable passphrase key slot is left", name="keys/")

    def load_index(self) -> None:
        names = sorted(o.name for o in self.repo.store.list("index/"))
        self.result.index_files = len(names)
        self.progress.phase = "reading index files"

        def load(name: str) -> tuple[str, bytes | VaultwatchError]:
            try:
                return name, self.repo.load_file("index", name)
            except VaultwatchError as exc:
                return name, exc

        # Where the service's retention removed packs (retention/state), the index files
        # still list them: only stored packs are indexed, and a snapshot that needed one
        # shows up below as missing blobs.
        present = present_packs(self.repo.store) if read_retention_state(self.repo.store) else None
        retired: set[bytes] = set()
        for name, payload in self._map(load, names):
            if isinstance(payload, VaultwatchError):
                self.error(INDEX, f"index file {name} cannot be read: {payload}", name=name)
                continue
            try:
                listed = self.index.load_file(payload, name, present)
            except IntegrityError as exc:
                self.error(INDEX, f"index file {name} is damaged: {exc}", name=name)
                continue
            if present is not None:
                retired.update(p for p in listed if p not in present)
        if retired:
            self.warn(
                PACK_RETIRED,
                f"index files list {len(retired)} packs the service's retention removed; "
                "any data a snapshot still needed from them is reported as missing",
            )

    def packs(self) -> list[bytes]:
        """Compare the index with the store's listing; returns the unindexed packs."""
        self.progress.phase = "checking packs"
        for obj in self.repo.store.list("data/"):
            tail = obj.name.rsplit("/", 1)[-1]
            try:
                pid = bytes.fromhex(tail)
                if len(pid) != 32 or obj.name != pack_name(pid):
                    raise ValueError(tail)
            except ValueError:
                self.warn(UNKNOWN_OBJECT, f"{obj.name} is not a pack name", name=obj.name)
                continue
            self.pack_sizes[pid] = obj.size
        self.result.packs = len(self.pack_sizes)

        self.rows = IndexTable.build(self.index)
        table = self.rows.table
        self.result.blobs = len(np.unique(table["id"]))
        counts = np.diff(self.rows.bounds)
        ends = np.zeros(len(self.rows.pack_ids), dtype=np.int64)
        np.maximum.at(ends, table["pack"], table["offset"].astype(np.int64) + table["length"])
        for p, pid in enumerate(self.rows.pack_ids):
            self.pack_no[pid] = p
            size = self.pack_sizes.get(pid)
            if size is None:
                self.missing_packs.add(pid)
                self.error(
                    PACK_MISSING,
                    f"pack {pid.hex()} is missing ({counts[p]} blobs are lost with it)",
                    pack=pid.hex(),
                )
                continue
            need = int(ends[p]) + _TRAILER_FIXED + int(counts[p]) * _TRAILER_ENTRY
            if size < need:
                self.error(
                    PACK_SIZE,
                    f"pack {pid.hex()} is {size} bytes but its index entries need at least "
                    f"{need} (truncated)",
                    pack=pid.hex(),
                )
        return [pid for pid in self.pack_sizes if not self.index.has_pack(pid)]

    def unindexed(self, packs: list[bytes]) -> None:
        """Packs no index lists: harmless leftovers if they read back, errors if they do not."""

        def probe(pid: bytes) -> tuple[bytes, int, str | None]:
            name = pack_name(pid)
            try:
                data = self.repo.store.get(name)
                if content_hash(data) != pid:
                    return pid, 0, "its content does not match its name"
                _, entries = read_trailer(self.repo.master.enc_key, data, name)
                return pid, len(entries), None
            except VaultwatchError as exc:
                return pid, 0, str(exc)

        for pid, count, failure in self._map(probe, packs):
            if failure is None:
                self.warn(
                    PACK_UNINDEXED,
                    f"pack {pid.hex()} ({count} blobs) is not in any index: left by an "
                    "interrupted backup or prune; the next backup adopts it, prune removes it",
                    pack=pid.hex(),
                )
            else:
                self.error(
                    PACK_UNREADABLE,
                    f"pack {pid.hex()} is not in any index and cannot be read: {failure}",
                    pack=pid.hex(),
                )

    def snapshots(self) -> list[Snapshot]:
        ids = [o.name.split("/", 1)[1] for o in self.repo.store.list("snapshots/")]
        self.progress.phase = "reading snapshots"

        def load(sid: str) -> Snapshot | tuple[str, VaultwatchError]:
            try:
                return self.repo.load_snapshot(sid)
            except VaultwatchError as exc:
                return sid, exc

        good = []
        for item in self._map(load, ids):
            if isinstance(item, Snapshot):
                good.append(item)
            else:
                sid, exc = item
                self.error(SNAPSHOT, f"snapshot {sid} cannot be read: {exc}", snapshot=sid)
        self.result.snapshots = len(ids)
        return sorted(good, key=lambda s: (s.time, s.id))

    def _tree_blob(self, tid: bytes) -> bytes:
        """One tree blob (a whole tree, or an index or part of a split one), verified."""
        loc = self.index.lookup(tid)
        if loc is None:
            raise _NotIndexed(f"tree {tid.hex()[:8]} is not in any index")
        if loc.pack_id in self.missing_packs:
            raise IntegrityError(f"tree {tid.hex()[:8]} is in missing pack {loc.pack_id.hex()}")
        sealed = self.repo.store.get_range(pack_name(loc.pack_id), loc.offset, loc.length)
        return self.repo.decode_blob(loc, sealed)

    def load_tree(self, tid: bytes) -> Tree:
        return Tree.from_bytes(self._tree_blob(tid), tid.hex(), self._tree_blob)

    def trees(self, snapshots: list[Snapshot]) -> None:
        """Every tree loads and parses; every blob it references is indexed in a present pack."""
        self.progress.phase = "checking trees"
        seen: set[bytes] = set()
        for snap in snapshots:
            roots = [(b"/", snap.tree)]
            if self.track_paths:
                self.first_path.setdefault(snap.tree, f"/ (snapshot {snap.short_id})")
            for visit in walk_trees(roots, self.load_tree, workers=self.workers, seen=seen):
                self.result.trees += 1
                self.progress.add(files=1)
                where = display_path(visit.path)
                if visit.tree is None:
                    loc = self.index.lookup(visit.tree_id)
                    kind = BLOB_MISSING if isinstance(visit.error, _NotIndexed) else TREE_DAMAGED
                    self.error(
                        kind,
                        f"directory {where} in snapshot {snap.short_id}: {visit.error}",
                        pack=loc.pack_id.hex() if loc else None,
                        blob=visit.tree_id.hex(),
                        path=where,
                        snapshot=snap.id,
                    )
                    continue
                if self.track_paths:
                    for pid in visit.tree.parts:  # a split tree's index and node blobs
                        self.first_path.setdefault(pid, where)
                for node in visit.tree.nodes:
                    path = join_path(visit.path, node.name)
                    self._node(snap, path, node.type, node.content, node.subtree, node.error)

    def _node(
        self,
        snap: Snapshot,
        path: bytes,
        node_type: str,
        content: list[bytes],
        subtree: bytes | None,
        node_error: str,
    ) -> None:
        where = display_path(path)
        if node_type == DIR:
            if subtree is None and not node_error:
                self.error(
                    TREE_DAMAGED,
                    f"directory {where} in snapshot {snap.short_id} has no tree",
                    path=where,
                    snapshot=snap.id,
                )
            elif subtree is not None and self.track_paths:
                self.first_path.setdefault(subtree, where)
            return
        if node_type != FILE:
            return
        for bid in content:
            if self.track_paths:
                self.first_path.setdefault(bid, where)
            loc = self.index.lookup(bid)
            if loc is None:
                self.error(
                    BLOB_MISSING,
                    f"file {where} in snapshot {snap.short_id}: blob {bid.hex()[:8]} "
                    "is not in any index",
                    blob=bid.hex(),
                    path=where,
                    snapshot=snap.id,
                )
                return  # one error a file is enough to say it cannot be restored
            if loc.pack_id in self.missing_packs:
                self.error(
                    BLOB_MISSING,
                    f"file {where} in snapshot {snap.short_id}: blob {bid.hex()[:8]} "
                    f"was in missing pack {loc.pack_id.hex()}",
                    pack=loc.pack_id.hex(),
                    blob=bid.hex(),
                    path=where,
                    snapshot=snap.id,
                )
                return

    # -- data ------------------------------------------------------------------------

    def read_packs(self, packs: list[bytes]) -> None:
        self.progress.phase = "reading pack data"
        self.progress.bytes_total = sum(self.pack_sizes[p] for p in packs)
        self.progress.files_total = len(packs)
        for problems, nbytes in self._map(self._verify_pack, packs):
            if nbytes is not None:
                self.result.packs_read += 1
                self.result.bytes_read += nbytes
            for p in problems:
                (self.result.errors if p.severity == ERROR else self.result.warnings).append(p)

    def _where(self, bid: bytes) -> str | None:
        return self.first_path.get(bid)

    def _verify_pack(self, pid: bytes) -> tuple[list[Problem], int | None]:
        name = pack_name(pid)
        hexid = pid.hex()
        out: list[Problem] = []
        try:
            data = self.repo.store.get(name)
        except VaultwatchError as exc:
            problem = Problem(
                ERROR, PACK_UNREADABLE, f"pack {hexid} cannot be read: {exc}", pack=hexid
            )
            return [problem], None
        self.progress.add(len(data), files=1)
        if content_hash(data) != pid:
            out.append(
                Problem(
                    ERROR,
                    PACK_HASH,
                    f"pack {hexid} does not match its name: its content is damaged",
                    pack=hexid,
                )
            )
        indexed = self.rows.locations(self.pack_no[pid]) if pid in self.pack_no else []
        to_verify: dict[tuple[bytes, int], BlobLocation] = {
            (lo.blob_id, lo.offset): lo for lo in indexed
        }
        try:
            salt, entries = read_trailer(self.repo.master.enc_key, data, name)
        except IntegrityError as exc:
            out.append(Problem(ERROR, PACK_TRAILER, f"pack {hexid}: {exc}", pack=hexid))
        else:
            in_trailer = {(e.blob_id, e.offset): e for e in entries}
            if indexed and indexed[0].salt != salt:
                out.append(
                    Problem(
                        ERROR,
                        INDEX_MISMATCH,
                        f"pack {hexid}: its header salt differs from the index",
                        pack=hexid,
                    )
                )
            for lo in indexed:
                e = in_trailer.get((lo.blob_id, lo.offset))
                if e is None or (e.type, e.length, e.raw_length) != (
                    lo.type,
                    lo.length,
                    lo.raw_length,
                ):
                    out.append(
                        Problem(
                            ERROR,
                            INDEX_MISMATCH,
                            f"pack {hexid}: the index entry of blob {lo.blob_id.hex()[:8]} "
                            "does not match the pack's own table",
                            pack=hexid,
                            blob=lo.blob_id.hex(),
                            path=self._where(lo.blob_id),
                        )
                    )
            extra = [e for k, e in in_trailer.items() if k not in to_verify]
            if extra:
                out.append(
                    Problem(
                        WARNING,
                        INDEX_MISMATCH,
                        f"pack {hexid} holds {len(extra)} blobs no index lists",
                        pack=hexid,
                    )
                )
            for e in extra:
                to_verify[(e.blob_id, e.offset)] = BlobLocation(
                    e.blob_id, e.type, pid, salt, e.offset, e.length, e.raw_length
                )
        for lo in to_verify.values():
            piece = memoryview(data)[lo.offset : lo.offset + lo.length]
            try:
                if len(piece) != lo.length:
                    raise IntegrityError(f"pack {hexid} is truncated")
                self.repo.decode_blob(lo, piece)
            except IntegrityError as exc:
                path = self._where(lo.blob_id)
                kind = BLOB_TYPES.get(lo.type, "?")
                used = f", used by {path}" if path else ", not used by any snapshot"
                if lo.type == DATA and path:
                    used = f", part of file {path}"
                out.append(
                    Problem(
                        ERROR,
                        BLOB_DAMAGED,
                        f"pack {hexid}: {kind} blob {lo.blob_id.hex()} is damaged{used} ({exc})",
                        pack=hexid,
                        blob=lo.blob_id.hex(),
                        path=path,
                    )
                )
        return out, len(data)


def check(
    repo: Repository,
    read_data: bool = False,
    read_data_subset: str | None = None,
    progress: Progress | None = None,
    *,
    workers: int = 4,
    lock: bool = True,
    rng: random.Random | None = None,
) -> CheckResult:
    """Check the repository's structure and, with ``read_data``/``read_data_subset``, its data.

    Runs under a shared lock (backups may go on; a pack they are writing shows
    up as an unindexed-pack warning). ``lock=False`` checks read-only media.
    """
    progress = progress or Progress()
    if read_data_subset is not None:
        select_packs([], read_data_subset)  # refuse a bad subset before any work
    guard: AbstractContextManager[RepositoryLock | None] = (
        repo.lock(exclusive=False, purpose="check") if lock else nullcontext()
    )
    with guard:
        c = _Checker(repo, progress, workers, paths=read_data or read_data_subset is not None)
        c.config_and_keys()
        c.load_index()
        unindexed = c.packs()
        c.unindexed(unindexed)
        c.trees(c.snapshots())
        if read_data or read_data_subset is not None:
            present = [p for p in c.index.pack_ids if p in c.pack_sizes]
            chosen = (
                present
                if read_data_subset is None
                else select_packs(present, read_data_subset, rng)
            )
            c.read_packs(chosen)
        progress.phase = "done"
        return c.result
