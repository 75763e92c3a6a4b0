"""Prune: remove the data no snapshot needs any more, in two phases that survive a crash.

Plan (reads only): every blob reachable from the remaining snapshots is
"used"; each pack is then kept (all used), deleted (none used) or repacked
(partly used and either wasteful enough or small). A blob stored in two packs
counts as used in one of them only.

Phase 1 (adds only): the used blobs of repacked packs are copied into new
packs, then ONE new index listing every kept and every new pack is written.
Phase 2 (deletes only): the old index files, then the unused and repacked
packs. A crash at any point leaves every snapshot complete: before the new
index exists, the old ones still describe everything; after it, the new one
does, and what is left over is at worst a pack no index lists, which the next
prune removes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vaultwatch.engine.browse import walk_trees
from vaultwatch.engine.compress import compress
from vaultwatch.engine.errors import IntegrityError, PruneRefusedError
from vaultwatch.engine.index import ENTRY_DTYPE, BlobIndex, BlobLocation, PackListing
from vaultwatch.engine.lock import RepositoryLock, list_locks
from vaultwatch.engine.pack import pack_name
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import Repository
from vaultwatch.errors import VaultwatchError
from vaultwatch.store.errors import ObjectNotFoundError

KEEP = "keep"
DELETE = "delete"
REPACK = "repack"
MISSING = "missing"

_RUN_HINT = "nothing was changed; run `vaultwatch check` to see what is damaged"


@dataclass(frozen=True)
class PruneOptions:
    """How eagerly to reclaim space.

    A partly used pack is repacked when at least ``repack_threshold`` of its
    bytes are unused, or when it is smaller than ``small_pack_fraction`` of
    the repository's pack size (copying a small pack is cheap and merges the
    many small packs frequent small backups leave behind).
    """

    repack_threshold: float = 0.20
    small_pack_fraction: float = 0.25
    workers: int = 4


@dataclass
class PruneResult:
    """What prune found and did (or, in a dry run, would do; byte counts are then estimates)."""

    dry_run: bool = False
    snapshots: int = 0
    packs_total: int = 0
    packs_kept: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_unindexed: int = 0
    packs_unindexed_deleted: int = 0
    packs_missing: int = 0
    packs_written: int = 0
    blobs_total: int = 0
    blobs_used: int = 0
    blobs_removed: int = 0
    blobs_repacked: int = 0
    blobs_duplicate: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    bytes_freed: int = 0
    bytes_repacked: int = 0
    index_files_removed: int = 0
    messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for ``prune --json``."""
        return asdict(self)


class IdSet:
    """A set of 32-byte ids held as one sorted NumPy array (32 bytes an id, not ~100 in a set)."""

    _MERGE_AT = 200_000

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype="S32")
        self._pending: set[bytes] = set()

    def add(self, bid: bytes) -> None:
        """Add one id."""
        self._pending.add(bid)
        if len(self._pending) >= self._MERGE_AT:
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            fresh = np.array(list(self._pending), dtype="S32")
            self._sorted = np.union1d(self._sorted, fresh)
            self._pending.clear()

    def array(self) -> np.ndarray:
        """Every id, sorted and unique."""
        self._merge()
        return self._sorted

    def __len__(self) -> int:
        return len(self.array())


def _pad(raw: bytes) -> bytes:
    return raw.ljust(32, b"\0")  # NumPy's "S32" drops trailing NUL bytes


@dataclass
class IndexTable:
    """Every index row in one NumPy table sorted by (pack, offset), each row once.

    Python objects per blob would cost ~200 bytes each; this costs 49. A pack
    listed by two index files (the old one and the complete one an interrupted
    prune wrote) has its rows once: BlobIndex takes a pack's listing only once.
    """

    table: np.ndarray
    pack_ids: list[bytes]
    pack_salts: list[bytes]
    bounds: np.ndarray

    @classmethod
    def build(cls, index: BlobIndex) -> IndexTable:
        """Read the whole index once."""
        pack_ids = list(index.pack_ids)
        pack_salts = list(index.pack_salts)
        pack_no = {pid: i for i, pid in enumerate(pack_ids)}
        table = np.empty(len(index), dtype=ENTRY_DTYPE)
        n = 0
        for n, loc in enumerate(index.entries(), start=1):
            table[n - 1] = (
                loc.blob_id,
                loc.type,
                pack_no[loc.pack_id],
                loc.offset,
                loc.length,
                loc.raw_length,
            )
        table = table[:n]
        table = table[np.lexsort((table["offset"], table["pack"]))]
        bounds = np.searchsorted(table["pack"], np.arange(len(pack_ids) + 1))
        return cls(table, pack_ids, pack_salts, bounds)

    def span(self, pack_no: int) -> slice:
        """Where one pack's rows are in the table."""
        return slice(int(self.bounds[pack_no]), int(self.bounds[pack_no + 1]))

    def locations(self, pack_no: int, mask: np.ndarray | None = None) -> list[BlobLocation]:
        """One pack's rows (those ``mask`` selects, if given) as locations, in pack order."""
        where = self.span(pack_no)
        rows = self.table[where]
        if mask is not None:
            rows = rows[mask[where]]
        pid, salt = self.pack_ids[pack_no], self.pack_salts[pack_no]
        return [
            BlobLocation(
                _pad(bytes(r["id"])),
                int(r["type"]),
                pid,
                salt,
                int(r["offset"]),
                int(r["length"]),
                int(r["raw"]),
            )
            for r in rows
        ]


@dataclass
class PrunePlan:
    """The read-only half of prune: what each pack becomes."""

    result: PruneResult
    old_index_files: list[str]
    rows: IndexTable
    chosen: np.ndarray
    actions: list[str]
    pack_sizes: dict[bytes, int]
    unindexed: list[str]

    @property
    def pack_ids(self) -> list[bytes]:
        """Indexed packs, by pack number."""
        return self.rows.pack_ids

    @property
    def changes_anything(self) -> bool:
        """Whether phase 1/2 have work (otherwise the index is left as it is)."""
        return any(a != KEEP for a in self.actions) or bool(self.unindexed)


def _refuse(message: str) -> PruneRefusedError:
    return PruneRefusedError(f"prune refused: {message}; {_RUN_HINT}")


def _used_blobs(repo: Repository, workers: int, progress: Progress) -> tuple[IdSet, int]:
    """Every tree and data blob the snapshots reach; refuses when a snapshot or tree is unreadable."""
    try:
        snapshots = repo.snapshots()
    except VaultwatchError as exc:
        raise _refuse(f"a snapshot cannot be read ({exc})") from None
    used = IdSet()
    progress.phase = "finding the data snapshots use"
    roots = [(f"snapshot {s.short_id}:/".encode(), s.tree) for s in snapshots]
    for visit in walk_trees(roots, repo.load_tree, workers=workers):
        if visit.tree is None:
            where = visit.path.decode(errors="replace")
            raise _refuse(
                f"tree {visit.tree_id.hex()[:8]} at {where} cannot be read ({visit.error})"
            )
        used.add(visit.tree_id)
        for pid in visit.tree.parts:  # the index and node blobs of a split tree
            used.add(pid)
        for node in visit.tree.nodes:
            for bid in node.content:
                used.add(bid)
        progress.add(files=1)
    return used, len(snapshots)


def plan_prune(
    repo: Repository, options: PruneOptions | None = None, progress: Progress | None = None
) -> PrunePlan:
    """Decide what to keep, delete and repack, changing nothing."""
    options = options or PruneOptions()
    progress = progress or Progress()
    repo.load_index(reload=True)
    old_index_files = repo.index_files
    index = repo.index
    result = PruneResult()

    used, result.snapshots = _used_blobs(repo, options.workers, progress)
    used_ids = used.array()

    progress.phase = "classifying packs"
    rows = IndexTable.build(index)
    table = rows.table
    pack_ids = rows.pack_ids
    indexed = set(pack_ids)

    missing = used_ids[~np.isin(used_ids, table["id"])]
    if len(missing):
        sample = ", ".join(_pad(bytes(b)).hex()[:8] for b in missing[:5])
        raise _refuse(f"{len(missing)} blobs the snapshots need are not in the index ({sample})")

    sizes: dict[bytes, int] = {}
    for obj in repo.store.list("data/"):
        try:
            sizes[bytes.fromhex(obj.name.rsplit("/", 1)[-1])] = obj.size
        except ValueError:
            continue
    present = np.array([pid in sizes for pid in pack_ids], dtype=bool)
    result.bytes_before = sum(sizes.values())

    row_present = present[table["pack"]] if len(pack_ids) else np.zeros(len(table), dtype=bool)
    used_rows = np.isin(table["id"], used_ids)
    candidates = used_rows & row_present
    lost = used_ids[~np.isin(used_ids, table["id"][candidates])]
    if len(lost):
        gone = {pack_ids[p] for p in table["pack"][used_rows & ~row_present]}
        names = ", ".join(sorted(p.hex()[:8] for p in gone)[:5])
        raise _refuse(
            f"{len(lost)} blobs the snapshots need are in packs missing from the store ({names})"
        )

    # One copy of each used blob: the one in the pack whose bytes are most used, so duplicates
    # drain out of packs that are going away anyway.
    n_packs = len(pack_ids)
    total_len = np.bincount(table["pack"], weights=table["length"], minlength=n_packs)
    cand_len = np.bincount(table["pack"], weights=table["length"] * candidates, minlength=n_packs)
    share = np.divide(cand_len, total_len, out=np.zeros(n_packs), where=total_len > 0)
    cand_idx = np.flatnonzero(candidates)
    c_ids = table["id"][cand_idx]
    c_pack = table["pack"][cand_idx]
    order = np.lexsort((c_pack, -share[c_pack], c_ids))
    sorted_ids = c_ids[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    chosen = np.zeros(len(table), dtype=bool)
    chosen[cand_idx[order[first]]] = True

    n_blobs = np.bincount(table["pack"], minlength=n_packs)
    kept_blobs = np.bincount(table["pack"], weights=chosen, minlength=n_packs)
    kept_len = np.bincount(table["pack"], weights=table["length"] * chosen, minlength=n_packs)
    small_limit = repo.config.pack_size * options.small_pack_fraction

    actions: list[str] = []
    for p, pid in enumerate(pack_ids):
        if not present[p]:
            actions.append(MISSING)
        elif n_blobs[p] == 0 or kept_blobs[p] == 0:
            actions.append(DELETE)
        elif kept_blobs[p] == n_blobs[p]:
            actions.append(KEEP)
        else:
            unused_share = 1.0 - kept_len[p] / total_len[p] if total_len[p] else 1.0
            small = sizes[pid] < small_limit
            actions.append(REPACK if unused_share >= options.repack_threshold or small else KEEP)
    unindexed = sorted(pack_name(pid) for pid in sizes if pid not in indexed)

    r = result
    r.packs_total = len(sizes)
    r.packs_kept = actions.count(KEEP)
    r.packs_deleted = actions.count(DELETE)
    r.packs_repacked = actions.count(REPACK)
    r.packs_missing = actions.count(MISSING)
    r.packs_unindexed = len(unindexed)
    r.blobs_total = len(np.unique(table["id"]))
    r.blobs_used = len(used_ids)
    r.blobs_duplicate = int(candidates.sum() - chosen.sum())
    repack_nos = [p for p, a in enumerate(actions) if a == REPACK]
    dropped = [p for p, a in enumerate(actions) if a in (DELETE, REPACK)]
    removed_rows = np.isin(table["pack"], dropped) & ~chosen
    r.blobs_removed = int(removed_rows.sum())
    repack_rows = np.isin(table["pack"], repack_nos) & chosen
    r.blobs_repacked = int(repack_rows.sum())
    r.bytes_repacked = int(table["length"][repack_rows].sum())
    freed = sum(sizes[pack_ids[p]] for p in dropped) + sum(
        sizes[pid] for pid in sizes if pid not in indexed
    )
    # Estimates until phase 1 knows the real sizes of the new packs.
    r.packs_written = math.ceil(r.bytes_repacked / repo.config.pack_size) if repack_nos else 0
    r.bytes_freed = freed - r.bytes_repacked
    r.bytes_after = r.bytes_before - r.bytes_freed
    return PrunePlan(r, old_index_files, rows, chosen, actions, sizes, unindexed)


def _read_ahead(
    repo: Repository, plan: PrunePlan, packs: list[int]
) -> Iterator[tuple[int, list[tuple[BlobLocation, bytes | IntegrityError]]]]:
    """The wanted blobs of each repacked pack, the next pack downloading while one is copied."""

    def fetch(p: int) -> list[tuple[BlobLocation, bytes | IntegrityError]]:
        locs = plan.rows.locations(p, plan.chosen)
        return list(repo.read_pack(plan.pack_ids[p], locs))

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="repack") as pool:
        window: list[tuple[int, Future[list[tuple[BlobLocation, bytes | IntegrityError]]]]] = []
        queue = iter(packs)
        for p in queue:
            window.append((p, pool.submit(fetch, p)))
            if len(window) >= 2:
                break
        while window:
            p, fut = window.pop(0)
            nxt = next(queue, None)
            if nxt is not None:
                window.append((nxt, pool.submit(fetch, nxt)))
            yield p, fut.result()


def _repack(repo: Repository, plan: PrunePlan, progress: Progress) -> tuple[list[PackListing], int]:
    """Phase 1a: copy the kept blobs of repacked packs into new packs; their listings and stored bytes."""
    packs = [p for p, a in enumerate(plan.actions) if a == REPACK]
    if not packs:
        return [], 0
    progress.phase = "repacking"
    progress.bytes_total = plan.result.bytes_repacked
    before = set(repo.index_files)
    writer = repo.writer()
    try:
        for p, blobs in _read_ahead(repo, plan, packs):
            for loc, data in blobs:
                if isinstance(data, IntegrityError):
                    raise _refuse(
                        f"blob {loc.blob_id.hex()[:8]} of pack {plan.pack_ids[p].hex()} "
                        f"cannot be read ({data})"
                    )
                writer.add(loc.type, loc.blob_id, compress(data), loc.raw_length)
                progress.add(loc.length)
        writer.flush()
    finally:
        writer.close()
    # The writer indexed its packs in files of its own; read them back for the complete index.
    fresh = [n for n in repo.index_files if n not in before]
    new_index = BlobIndex()
    for name in fresh:
        new_index.load_file(repo.load_file("index", name), name)
    listings: list[PackListing] = [
        (pid, locs[0].salt, locs) for pid, locs in new_index.by_pack().items() if locs
    ]
    plan.old_index_files.extend(fresh)  # superseded by the complete index like the others
    return listings, writer.stored_bytes


def _complete_index(plan: PrunePlan, new_packs: list[PackListing]) -> list[PackListing]:
    """Every kept pack with all its blobs (even unused ones: they are in the file), plus the new packs."""
    listing: list[PackListing] = [
        (plan.pack_ids[p], plan.rows.pack_salts[p], plan.rows.locations(p))
        for p, a in enumerate(plan.actions)
        if a == KEEP
    ]
    return listing + new_packs


def _only_lock(repo: Repository, ours: RepositoryLock | None) -> bool:
    return all(ours is not None and other.name == ours.name for other in list_locks(repo.store))


def _delete(repo: Repository, names: list[str]) -> int:
    done = 0
    for name in names:
        with suppress(ObjectNotFoundError):
            repo.store.delete(name)
            done += 1
    return done


def execute_prune(
    repo: Repository,
    plan: PrunePlan,
    *,
    lock: RepositoryLock | None,
    progress: Progress | None = None,
    between_phases: Callable[[], None] | None = None,
) -> PruneResult:
    """Run both phases of a plan (the caller holds the exclusive lock)."""
    progress = progress or Progress()
    r = plan.result
    if not plan.changes_anything:
        r.bytes_freed = 0
        r.bytes_after = r.bytes_before
        r.messages.append("nothing to prune")
        return r

    new_packs, written = _repack(repo, plan, progress)
    r.packs_written = len(new_packs)
    progress.phase = "writing the new index"
    listing = _complete_index(plan, new_packs)
    complete = repo.write_index(listing) if listing else None
    if complete is not None:
        # Read it back before anything it replaces is deleted: it is now the only map of the data.
        listed = BlobIndex().load_file(repo.load_file("index", complete), complete)
        if len(listed) != len(listing):
            raise IntegrityError(
                f"the new index {complete} does not read back; nothing was deleted"
            )
    if between_phases is not None:
        between_phases()

    if lock is not None:
        lock.check()  # a lost exclusive lock: a backup may now be writing what we would delete
    progress.phase = "deleting unused data"
    old = [n for n in plan.old_index_files if n != complete]
    r.index_files_removed = _delete(repo, old)
    doomed = [
        pack_name(plan.pack_ids[p]) for p, a in enumerate(plan.actions) if a in (DELETE, REPACK)
    ]
    _delete(repo, doomed)
    freed = sum(
        plan.pack_sizes[plan.pack_ids[p]]
        for p, a in enumerate(plan.actions)
        if a in (DELETE, REPACK)
    )
    if plan.unindexed:
        if _only_lock(repo, lock):
            r.packs_unindexed_deleted = _delete(repo, plan.unindexed)
            freed += sum(
                plan.pack_sizes[bytes.fromhex(n.rsplit("/", 1)[-1])] for n in plan.unindexed
            )
        else:
            r.messages.append(
                f"kept {len(plan.unindexed)} packs no index lists: another process holds a lock"
            )
    r.bytes_freed = freed - written
    r.bytes_after = r.bytes_before - r.bytes_freed
    repo.load_index(reload=True)
    progress.phase = "done"
    return r


def prune(
    repo: Repository,
    *,
    dry_run: bool = False,
    options: PruneOptions | None = None,
    progress: Progress | None = None,
    between_phases: Callable[[], None] | None = None,
) -> PruneResult:
    """Remove unused data under the exclusive lock; a dry run only reports (and takes no lock).

    ``between_phases`` runs after the new index is written and before
    anything is deleted (tests use it to simulate a crash there).
    PruneRefusedError when snapshot data is missing or damaged: deleting
    then could only make things worse.
    """
    progress = progress or Progress()
    guard: AbstractContextManager[RepositoryLock | None] = (
        nullcontext()
        if dry_run
        else repo.lock(exclusive=True, purpose="prune", on_lost=progress.cancel)
    )
    with guard as lock:
        plan = plan_prune(repo, options, progress)
        if dry_run:
            plan.result.dry_run = True
            return plan.result
        return execute_prune(
            repo, plan, lock=lock, progress=progress, between_phases=between_phases
        )
