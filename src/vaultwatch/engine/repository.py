"""A repository: a Store plus the keys, index and snapshots that make its bytes a backup.

Writes are ordered so a reader never finds a reference to missing data:
packs first, then the index files that list them, then the snapshot that
points at the trees. Anything interrupted leaves at worst packs that no index
lists yet; the next backup adopts them (so their work is not lost) and prune
removes those nobody needs.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from vaultwatch.engine import keys as keyslots
from vaultwatch.engine.compress import compress, decompress
from vaultwatch.engine.crypto import Sealer, open_file, seal_file
from vaultwatch.engine.errors import (
    AmbiguousSnapshotError,
    IntegrityError,
    KeySlotError,
    RepositoryExistsError,
    SnapshotNotFoundError,
)
from vaultwatch.engine.ids import blob_id, content_hash
from vaultwatch.engine.index import (
    BlobIndex,
    BlobLocation,
    PackListing,
    encode_index,
    index_plaintext,
)
from vaultwatch.engine.lock import RepositoryLock, locked
from vaultwatch.engine.manifest import manifest_name
from vaultwatch.engine.memory import ThreadBuffers
from vaultwatch.engine.pack import (
    DATA,
    TREE,
    PackBuilder,
    pack_name,
    pack_sealer,
    read_trailer,
)
from vaultwatch.engine.retention_state import read_retention_state, split_packs
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import Tree
from vaultwatch.store.base import Store
from vaultwatch.store.errors import ObjectExistsError, ObjectNotFoundError, RepositoryNotFoundError

FORMAT_VERSION = 1
# Parsed trees kept (restores, diffs and manifests revisit them), counted in nodes: a parsed
# node costs some 600 bytes, and 4,096 trees of 100 files each held 249 MiB.
_TREE_CACHE_NODES = 100_000
# A data pack is built in about the time the previous one takes to store, so one spare
# buffer keeps new packs out of fresh memory; more would only stay resident.
_SPARE_PACK_BUFFERS = 1
# An index file is written once its packs list this many blobs, however few packs that is:
# 8 MiB packs of small files hold ~60,000 blobs each, and until an index file lists a
# pack the writer keeps its table (45 bytes a blob).
_INDEX_MAX_BLOBS = 100_000
_READ_BUFFERS = ThreadBuffers(min_size=2 * 1024 * 1024, keep_up_to=8 * 1024 * 1024)


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC sizes in bytes (``avg`` is pyfastcdc's avg_size; real chunks average about avg + min).

    32 KiB on average: a small change in a large file costs a 40 KiB chunk
    rather than an 80 KiB one (the 1 GiB benchmark's 1 % change grew the
    repository by 34 MiB instead of 40.5; restic's by 76), and the first
    backup was as fast as with 64 KiB. Repositories keep the sizes they were
    made with (they are in ``config``).
    """

    min_size: int = 8 * 1024
    avg_size: int = 32 * 1024
    max_size: int = 256 * 1024


@dataclass(frozen=True)
class RepoConfig:
    """The plaintext ``config`` object: what a reader needs before it has a key."""

    repo_id: str
    created: str
    chunker: ChunkerParams
    pack_size: int = 8 * 1024 * 1024
    version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        """Serialized config."""
        doc = {
            "version": self.version,
            "id": self.repo_id,
            "created": self.created,
            "chunker": asdict(self.chunker),
            "pack_size": self.pack_size,
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RepoConfig:
        """Parse the config; IntegrityError when malformed or from a newer version."""
        try:
            doc = json.loads(data)
            version = int(doc["version"])
            if version > FORMAT_VERSION:
                raise IntegrityError(
                    f"repository format {version} is newer than this program supports"
                )
            return cls(
                doc["id"],
                doc["created"],
                ChunkerParams(**doc["chunker"]),
                int(doc.get("pack_size", 8 * 1024 * 1024)),
                version,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"repository config is malformed: {exc}") from None


class Repository:
    """An open (unlocked) repository."""

    def __init__(
        self, store: Store, config: RepoConfig, master: keyslots.MasterKey, slot: keyslots.KeySlot
    ) -> None:
        self.store = store
        self.config = config
        self.master = master
        self.slot = slot
        self.index = BlobIndex()
        self.doomed_index = BlobIndex()
        """Blobs only in doomed packs still stored: readable, never deduplicated against."""
        self.index_lock = threading.Lock()
        self._index_loaded = False
        self._index_files: list[str] = []
        self._tree_cache: OrderedDict[bytes, Tree] = OrderedDict()
        self._tree_cache_nodes = 0
        self._sealers: OrderedDict[bytes, Sealer] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._snapshot_cache: dict[str, Snapshot] = {}
        self.retention_generation = 0
        """The ``retention/state`` generation the index was loaded under (0: none)."""
        self.removed_packs: set[bytes] = set()
        """Packs the index files list that the service removed or is about to remove."""

    # -- creating and opening ----------------------------------------------------------

    @classmethod
    def init(
        cls,
        store: Store,
        passphrase: str,
        *,
        kdf: keyslots.KdfParams | None = None,
        chunker: ChunkerParams | None = None,
        pack_size: int = 8 * 1024 * 1024,
        escrow_public: X25519PublicKey | None = None,
        label: str = "",
    ) -> Repository:
        """Create a repository with one passphrase slot (and an escrow slot when given)."""
        if store.exists("config"):
            raise RepositoryExistsError(f"a repository already exists at {store.location}")
        master = keyslots.MasterKey.generate()
        config = RepoConfig(
            content_hash(master.id_key).hex()[:32],
            datetime.now(UTC).isoformat(timespec="seconds"),
            chunker or ChunkerParams(),
            pack_size,
        )
        slot = keyslots.passphrase_slot(
            master, passphrase, kdf or keyslots.KdfParams(), label=label
        )
        store.put(slot.name, slot.to_json())
        if escrow_public is not None:
            escrow = keyslots.escrow_slot(master, escrow_public)
            store.put(escrow.name, escrow.to_json())
        # config last: a half-made repository is not mistaken for a real one.
        try:
            store.put("config", config.to_json())
        except ObjectExistsError:
            raise RepositoryExistsError(
                f"a repository already exists at {store.location}"
            ) from None
        return cls(store, config, master, slot)

    @classmethod
    def open(
        cls,
        store: Store,
        passphrase: str | None = None,
        escrow_key: X25519PrivateKey | None = None,
        *,
        slot_id: str | None = None,
    ) -> Repository:
        """Open with a passphrase or the escrow private key (trying slot ``slot_id`` first)."""
        try:
            config = RepoConfig.from_json(store.get("config"))
        except ObjectNotFoundError:
            raise RepositoryNotFoundError(f"no repository at {store.location}") from None
        master, slot = keyslots.unlock(store, passphrase, escrow_key, prefer=slot_id)
        return cls(store, config, master, slot)

    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()

    # -- key slots -----------------------------------------------------------------------

    def key_slots(self) -> list[keyslots.KeySlot]:
        """Every key slot."""
        return keyslots.load_slots(self.store)

    def add_passphrase(
        self, passphrase: str, kdf: keyslots.KdfParams | None = None, *, label: str = ""
    ) -> keyslots.KeySlot:
        """Add a passphrase slot for the same master key."""
        slot = keyslots.passphrase_slot(
            self.master, passphrase, kdf or keyslots.KdfParams(), label=label
        )
        self.store.put(slot.name, slot.to_json())
        return slot

    def add_escrow(self, public_key: X25519PublicKey) -> keyslots.KeySlot:
        """Seal the master key to the service's escrow key."""
        slot = keyslots.escrow_slot(self.master, public_key)
        self.store.put(slot.name, slot.to_json())
        return slot

    def remove_slot(self, slot_id_prefix: str) -> keyslots.KeySlot:
        """Remove a slot; the last passphrase slot can never be removed."""
        slots = self.key_slots()
        matches = [s for s in slots if s.slot_id.startswith(slot_id_prefix)]
        if not matches:
            raise KeySlotError(f"no key slot {slot_id_prefix!r}")
        if len(matches) > 1:
            raise KeySlotError(f"key slot prefix {slot_id_prefix!r} is ambiguous")
        victim = matches[0]
        others = [s for s in slots if s.kind == keyslots.PASSPHRASE and s.slot_id != victim.slot_id]
        if victim.kind == keyslots.PASSPHRASE and not others:
            raise KeySlotError(
                "refusing to remove the last passphrase slot: the data would be lost"
            )
        if victim.slot_id == self.slot.slot_id:
            raise KeySlotError(
                "refusing to remove the key slot in use: open the repository with another passphrase first"
            )
        self.store.delete(victim.name)
        return victim

    def change_passphrase(
        self, new_passphrase: str, kdf: keyslots.KdfParams | None = None
    ) -> keyslots.KeySlot:
        """Replace the slot this repository was opened with by one for the new passphrase."""
        new = self.add_passphrase(new_passphrase, kdf)
        if self.slot.kind == keyslots.PASSPHRASE:
            self.store.delete(self.slot.name)
        self.slot = new
        return new

    # -- locks -----------------------------------------------------------------------------

    def lock(
        self, *, exclusive: bool, purpose: str, on_lost: Callable[[], None] | None = None
    ) -> AbstractContextManager[RepositoryLock]:
        """Shared lock for backups, exclusive for prune; ``on_lost`` stops the operation."""
        return locked(self.store, exclusive=exclusive, purpose=purpose, on_lost=on_lost)

    # -- encrypted files -------------------------------------------------------------------

    def seal(self, kind: str, payload: bytes) -> tuple[str, bytes]:
        """Encrypt a file: (its id, the bytes to store under ``<prefix>/<id>``)."""
        data = seal_file(self.master.enc_key, kind, payload)
        return content_hash(data).hex(), data

    def save_file(self, kind: str, prefix: str, payload: bytes) -> str:
        """Encrypt and store a file named by its content hash; returns the id."""
        file_id, data = self.seal(kind, payload)
        with suppress(ObjectExistsError):
            self.store.put(f"{prefix}/{file_id}", data)
        return file_id

    def load_file(self, kind: str, name: str) -> bytes:
        """Read, verify (name = hash) and decrypt one file."""
        data = self.store.get(name)
        if content_hash(data).hex() != name.rsplit("/", 1)[-1]:
            raise IntegrityError(f"{name} does not match its id (damaged)")
        return open_file(self.master.enc_key, kind, data, name)

    # -- index -------------------------------------------------------------------------------

    def load_index(self, *, reload: bool = False) -> None:
        """Read every index file (in parallel: each is a separate object).

        In a vault whose service removed packs (``retention/state``), packs
        it removed are left out and packs it announced go to
        ``doomed_index``: nothing may deduplicate against them, and a
        duplicated blob is read from a copy that is not doomed.
        """
        if self._index_loaded and not reload:
            return
        index, doomed_index = BlobIndex(), BlobIndex()
        state = read_retention_state(self.store)
        usable, doomed = split_packs(self.store, state) if state is not None else (None, set())
        names = [o.name for o in self.store.list("index/")]
        listed: set[bytes] = set()
        with ThreadPoolExecutor(max_workers=4) as pool:
            payloads = pool.map(lambda n: (n, self.load_file("index", n)), names)
            for name, payload in payloads:
                raw = index_plaintext(payload, name)  # decompressed once for both indexes
                listed.update(index.load_plain(raw, name, usable))
                if doomed:
                    doomed_index.load_plain(raw, name, doomed)
        self.retention_generation = state.generation if state is not None else 0
        self.removed_packs = listed - usable if usable is not None else set()
        with self.index_lock:
            self.index = index
            self.doomed_index = doomed_index
            self._index_files = names
            self._index_loaded = True

    def forget_index(self) -> None:
        """Drop the in-memory index; the next use reads it again from the store."""
        with self.index_lock:
            self._index_loaded = False
            self.index = BlobIndex()
            self.doomed_index = BlobIndex()

    @property
    def index_files(self) -> list[str]:
        """Names of the index files loaded."""
        return list(self._index_files)

    def write_index(self, packs: list[PackListing]) -> str:
        """Store one index file listing ``packs``; returns its name."""
        file_id = self.save_file("index", "index", encode_index(packs))
        name = f"index/{file_id}"
        with self.index_lock:
            self._index_files.append(name)
        return name

    def unindexed_packs(self) -> list[str]:
        """Packs in the store that no index lists (left by an interrupted backup or prune)."""
        self.load_index()
        out = []
        for obj in self.store.list("data/"):
            pid = obj.name.rsplit("/", 1)[-1]
            try:
                raw = bytes.fromhex(pid)
                if not self.index.has_pack(raw) and raw not in self.removed_packs:
                    out.append(obj.name)
            except ValueError:
                continue
        return out

    def adopt_packs(self, names: list[str]) -> int:
        """Index packs an interrupted backup stored, so their blobs are reused; returns how many."""
        adopted: list[PackListing] = []
        for name in names:
            data = self.store.get(name)
            pid = content_hash(data)
            if pid.hex() != name.rsplit("/", 1)[-1]:
                continue  # damaged: leave it for check and prune
            try:
                salt, entries = read_trailer(self.master.enc_key, data, name)
            except IntegrityError:
                continue
            with self.index_lock:
                self.index.add_pack(pid, salt, entries)
            adopted.append((pid, salt, entries))
        if adopted:
            self.write_index(adopted)
        return len(adopted)

    # -- blobs -------------------------------------------------------------------------------

    def blob_id(self, data: bytes | memoryview) -> bytes:
        """This repository's id of a plaintext blob."""
        return blob_id(self.master.id_key, data)

    def has_blob(self, bid: bytes) -> bool:
        """Whether an indexed pack holds the blob."""
        with self.index_lock:
            return bid in self.index

    def lookup(self, bid: bytes) -> BlobLocation | None:
        """Where the blob lives (the index is loaded on first use); a doomed copy last."""
        self.load_index()
        with self.index_lock:
            found = self.index.lookup(bid)
            return found if found is not None else self.doomed_index.lookup(bid)

    def lookup_many(self, blob_ids: Iterable[bytes]) -> dict[bytes, BlobLocation]:
        """Where each of many blobs lives (missing ones left out); doomed copies last."""
        self.load_index()
        with self.index_lock:
            if not len(self.doomed_index):
                return self.index.lookup_many(blob_ids)
            wanted = list(blob_ids)
            found = self.index.lookup_many(wanted)
            found.update(self.doomed_index.lookup_many(b for b in wanted if b not in found))
            return found

    def stored_blobs(self, blob_ids: Iterable[bytes]) -> set[bytes]:
        """Which of these blobs an indexed pack holds."""
        self.load_index()
        with self.index_lock:
            return self.index.contains_many(blob_ids)

    def cache_trees(self, tree_ids: Iterable[bytes]) -> None:
        """Load the trees not cached yet into the tree cache, each pack read once.

        A backup walking its parent snapshot asks for a directory's
        sub-trees one by one; fetching them together saves a read per tree.
        """
        with self._cache_lock:
            missing = [t for t in dict.fromkeys(tree_ids) if t not in self._tree_cache]
        if len(missing) < 2:
            return  # load_tree does as well for one
        loaded = self.load_trees(missing, workers=1)
        self._remember_trees({t: tree for t, tree in loaded.items() if isinstance(tree, Tree)})

    def _remember_trees(self, trees: dict[bytes, Tree]) -> None:
        """Add parsed trees to the cache, dropping the least recently used beyond its nodes.

        The newest tree stays even alone over the limit: it is about to be used.
        """
        with self._cache_lock:
            cache = self._tree_cache
            for tree_id, tree in trees.items():
                old = cache.pop(tree_id, None)
                if old is not None:
                    self._tree_cache_nodes -= len(old.nodes)
                cache[tree_id] = tree
                self._tree_cache_nodes += len(tree.nodes)
            while self._tree_cache_nodes > _TREE_CACHE_NODES and len(cache) > 1:
                _, dropped = cache.popitem(last=False)
                self._tree_cache_nodes -= len(dropped.nodes)

    def load_trees(
        self, tree_ids: Iterable[bytes], *, workers: int = 4, max_span: int | None = None
    ) -> dict[bytes, Tree | IntegrityError]:
        """Many trees at once, each pack read once (restores and checks read whole levels).

        ``max_span``: read each pack in ranges of at most that many bytes (see
        :meth:`read_pack`), for callers asking for a few trees of large packs.
        """
        locs = self.lookup_many(tree_ids)
        out: dict[bytes, Tree | IntegrityError] = {}
        for tid in tree_ids:
            if tid not in locs:
                out[tid] = IntegrityError(
                    f"tree {tid.hex()[:8]} is not in the index (missing data)"
                )
        by_pack: dict[bytes, list[BlobLocation]] = {}
        for loc in locs.values():
            by_pack.setdefault(loc.pack_id, []).append(loc)

        def read(
            item: tuple[bytes, list[BlobLocation]],
        ) -> list[tuple[bytes, Tree | IntegrityError]]:
            res: list[tuple[bytes, Tree | IntegrityError]] = []
            for loc, data in self.read_pack(*item, max_span):
                if isinstance(data, IntegrityError):
                    res.append((loc.blob_id, data))
                else:
                    try:
                        res.append(
                            (loc.blob_id, Tree.from_bytes(data, loc.blob_id.hex(), self.load_blob))
                        )
                    except IntegrityError as exc:
                        res.append((loc.blob_id, exc))
            return res

        if workers <= 1:
            for item in by_pack.items():
                out.update(read(item))
            return out
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trees") as pool:
            for pairs in pool.map(read, by_pack.items()):
                out.update(pairs)
        return out

    def _sealer(self, pack_id: bytes, salt: bytes) -> Sealer:
        with self._cache_lock:
            sealer = self._sealers.get(pack_id)
            if sealer is not None:
                self._sealers.move_to_end(pack_id)
                return sealer
        sealer = pack_sealer(self.master.enc_key, salt)
        with self._cache_lock:
            self._sealers[pack_id] = sealer
            if len(self._sealers) > 1024:
                self._sealers.popitem(last=False)
        return sealer

    def decode_blob(
        self, loc: BlobLocation, sealed: bytes | memoryview, sealer: Sealer | None = None
    ) -> bytes:
        """Decrypt, decompress and verify one blob read from its pack (``sealer``: the pack's)."""
        what = f"blob {loc.blob_id.hex()[:8]} in pack {loc.pack_id.hex()[:8]}"
        if sealer is None:
            sealer = self._sealer(loc.pack_id, loc.salt)
        body = sealer.open(sealed, loc.blob_id, what=what)
        try:
            plain = decompress(body, loc.raw_length)
        except Exception as exc:
            raise IntegrityError(f"{what} does not decompress: {exc}") from None
        if len(plain) != loc.raw_length or self.blob_id(plain) != loc.blob_id:
            raise IntegrityError(f"{what} does not match its id (damaged)")
        return plain

    def load_blob(self, bid: bytes) -> bytes:
        """Read and verify one blob."""
        loc = self.lookup(bid)
        if loc is None:
            raise IntegrityError(f"blob {bid.hex()[:8]} is not in the index (missing data)")
        sealed = self.store.get_range(pack_name(loc.pack_id), loc.offset, loc.length)
        if len(sealed) != loc.length:
            raise IntegrityError(f"pack {loc.pack_id.hex()[:8]} is truncated")
        return self.decode_blob(loc, sealed)

    def read_pack(
        self, pack_id: bytes, locations: list[BlobLocation], max_span: int | None = None
    ) -> Iterator[tuple[BlobLocation, bytes | IntegrityError]]:
        """Every requested blob of one pack, each decoded or its error, in offset order.

        Reads the span from the first to the last wanted blob in one range
        request, or in several of at most ``max_span`` bytes (a blob larger
        than that still comes whole): fewer bytes held at once where requests
        are cheap, as on a local disk.
        """
        locs = sorted(locations, key=lambda lo: lo.offset)
        if max_span is None:
            yield from self._read_span(pack_id, locs)
            return
        window: list[BlobLocation] = []
        for lo in locs:
            if window and lo.offset + lo.length - window[0].offset > max_span:
                yield from self._read_span(pack_id, window)
                window = []
            window.append(lo)
        if window:
            yield from self._read_span(pack_id, window)

    def _read_span(
        self, pack_id: bytes, locs: list[BlobLocation]
    ) -> Iterator[tuple[BlobLocation, bytes | IntegrityError]]:
        """Blobs sorted by offset, read with one range request."""
        start = locs[0].offset
        length = max(lo.offset + lo.length for lo in locs) - start
        name = pack_name(pack_id)
        store = self.store
        buffer = _READ_BUFFERS.take(length) if store.reads_in_place else None
        try:
            try:
                if buffer is not None:
                    span = buffer[: store.read_into(name, start, buffer[:length])]
                else:
                    span = memoryview(store.get_range(name, start, length))
            except ObjectNotFoundError:
                err = IntegrityError(f"pack {pack_id.hex()[:8]} is missing")
                for lo in locs:
                    yield lo, err
                return
            sealer = self._sealer(pack_id, locs[0].salt)  # once per span, not per blob
            for lo in locs:
                piece = span[lo.offset - start : lo.offset - start + lo.length]
                if len(piece) != lo.length:
                    yield lo, IntegrityError(f"pack {pack_id.hex()[:8]} is truncated")
                    continue
                try:
                    yield lo, self.decode_blob(lo, piece, sealer)
                except IntegrityError as exc:
                    yield lo, exc
        finally:
            if buffer is not None:
                _READ_BUFFERS.give_back(buffer)

    def load_tree(self, tree_id: bytes) -> Tree:
        """A tree blob, parsed (kept in a small cache: restores and diffs revisit trees)."""
        with self._cache_lock:
            tree = self._tree_cache.get(tree_id)
            if tree is not None:
                self._tree_cache.move_to_end(tree_id)
                return tree
        tree = Tree.from_bytes(self.load_blob(tree_id), tree_id.hex(), self.load_blob)
        self._remember_trees({tree_id: tree})
        return tree

    def writer(self, *, upload_workers: int = 2) -> BlobWriter:
        """A writer that packs, uploads and indexes new blobs."""
        self.load_index()
        return BlobWriter(self, upload_workers=upload_workers)

    # -- snapshots ------------------------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> str:
        """Store the snapshot (after its data is indexed); sets and returns its id."""
        snapshot.id = self.save_file("snapshot", "snapshots", snapshot.to_json())
        return snapshot.id

    def load_snapshot(self, snapshot_id: str) -> Snapshot:
        """One snapshot by its full id (snapshot files never change: each is read once)."""
        cached = self._snapshot_cache.get(snapshot_id)
        if cached is None:
            cached = Snapshot.from_json(
                self.load_file("snapshot", f"snapshots/{snapshot_id}"), snapshot_id
            )
            self._snapshot_cache[snapshot_id] = cached
        return copy.copy(cached)

    def snapshot_ids(self) -> list[str]:
        """Ids of every snapshot."""
        return [o.name.split("/", 1)[1] for o in self.store.list("snapshots/")]

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, oldest first."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            snaps = list(pool.map(self.load_snapshot, self.snapshot_ids()))
        return sorted(snaps, key=lambda s: (s.time, s.id))

    def find_snapshot(
        self, ref: str, *, paths: list[str] | None = None, hostname: str | None = None
    ) -> Snapshot:
        """Resolve ``latest`` (optionally for some paths/host) or a unique id prefix."""
        if ref == "latest":
            candidates = [
                s
                for s in self.snapshots()
                if (paths is None or sorted(s.paths) == sorted(paths))
                and (hostname is None or s.hostname == hostname)
            ]
            if not candidates:
                raise SnapshotNotFoundError(
                    "the repository has no snapshot yet"
                    if paths is None
                    else "no snapshot of these paths yet"
                )
            return candidates[-1]
        ref = ref.lower()
        if not ref or any(c not in "0123456789abcdef" for c in ref):
            raise SnapshotNotFoundError(f"{ref!r} is not a snapshot id (hex digits or 'latest')")
        matches = [i for i in self.snapshot_ids() if i.startswith(ref)]
        if not matches:
            raise SnapshotNotFoundError(f"no snapshot {ref!r}")
        if len(matches) > 1:
            raise AmbiguousSnapshotError(
                f"snapshot prefix {ref!r} matches {len(matches)} snapshots"
            )
        return self.load_snapshot(matches[0])

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot file and its reference manifest, if any (its data stays until prune)."""
        self.store.delete(f"snapshots/{snapshot_id}")
        self._snapshot_cache.pop(snapshot_id, None)
        with suppress(ObjectNotFoundError):
            self.store.delete(manifest_name(snapshot_id))


class BlobWriter:
    """Turns blobs into packs, uploads them in the background and indexes them.

    Thread-safe: backup workers call :meth:`save` concurrently. At most
    ``max_inflight`` finished packs wait for upload, which bounds memory.
    An index file is written every ``index_every`` packs (or sooner, once
    they hold ``_INDEX_MAX_BLOBS`` blobs) so an interrupted backup loses
    little and the tables kept for it stay small, and by :meth:`flush`.
    """

    def __init__(
        self,
        repo: Repository,
        *,
        upload_workers: int = 2,
        index_every: int = 32,
        max_inflight: int = 2,
    ) -> None:
        self.repo = repo
        self.pack_size = repo.config.pack_size
        self._lock = threading.Lock()
        self._builders: dict[int, PackBuilder] = {}
        self._reserved: set[bytes] = set()
        self._spare_buffers: list[bytearray] = []  # of stored packs, for the next builders
        self._packs_indexed = 0  # packs whose blobs moved from _reserved to the index
        self._pool = ThreadPoolExecutor(max_workers=upload_workers, thread_name_prefix="upload")
        self._inflight = threading.BoundedSemaphore(max_inflight)
        self._futures: list[Future[None]] = []
        self._futures_lock = threading.Lock()
        self._unsaved: list[PackListing] = []
        self._unsaved_blobs = 0
        self._index_every = index_every
        self.new_blobs = 0
        self.new_raw_bytes = 0
        self.stored_bytes = 0
        self.on_pack_uploaded: Callable[[bytes, int], None] | None = None

    def reserve(self, bid: bytes) -> bool:
        """True when the blob is new and this caller must store it (exactly one caller wins)."""
        with self._lock:
            if bid in self._reserved:
                return False
            with self.repo.index_lock:
                if bid in self.repo.index:
                    return False
            self._reserved.add(bid)
            return True

    def reserve_many(self, bids: list[bytes]) -> list[bool]:
        """:meth:`reserve` for many blobs, with one vectorised index search outside the lock.

        While this writer lives, the blobs added to the index are its own: a
        blob is reserved until its pack is indexed. A pack indexed during the
        search has left the reserved set, so then the search is made again.
        """
        if not bids:
            return []
        with self._lock:
            packs_indexed = self._packs_indexed
        stored = self.repo.stored_blobs(bids)
        out = []
        with self._lock:
            if self._packs_indexed != packs_indexed:
                stored = self.repo.stored_blobs(bids)
            for bid in bids:
                new = bid not in stored and bid not in self._reserved
                if new:
                    self._reserved.add(bid)
                out.append(new)
        return out

    def save(self, blob_type: int, data: bytes | memoryview) -> tuple[bytes, bool]:
        """Store a plaintext blob unless already present; returns (id, whether it was new)."""
        bid = self.repo.blob_id(data)
        if not self.reserve(bid):
            return bid, False
        self.add(blob_type, bid, compress(data), len(data))
        return bid, True

    def add(self, blob_type: int, bid: bytes, body: bytes, raw_length: int) -> None:
        """Append a reserved, already-compressed blob; uploads the pack when it is full."""
        self._raise_failures()
        full: PackBuilder | None = None
        with self._lock:
            builder = self._builders.get(blob_type)
            if builder is None:
                # Tree packs fill slowly and stay small: a pack-sized buffer would sit idle.
                spare = (
                    self._spare_buffers.pop() if self._spare_buffers and blob_type == DATA else None
                )
                builder = self._builders[blob_type] = PackBuilder(
                    self.repo.master.enc_key, blob_type, spare
                )
            builder.add(bid, body, raw_length)
            self.new_blobs += 1
            self.new_raw_bytes += raw_length
            if builder.size >= self.pack_size:
                full = self._builders.pop(blob_type)
        if full is not None:
            self._submit(full)

    def _submit(self, builder: PackBuilder) -> None:
        self._inflight.acquire()
        pack_id, data = builder.finish()
        future = self._pool.submit(self._upload, pack_id, builder, data)
        with self._futures_lock:
            self._futures.append(future)

    def _upload(self, pack_id: bytes, builder: PackBuilder, data: memoryview) -> None:
        try:
            with suppress(ObjectExistsError):  # same bytes, same name: already stored
                # put is done with the view when it returns (a store that keeps the
                # data copies it), so the buffer can be recycled right after.
                self.repo.store.put(pack_name(pack_id), data)
            with self.repo.index_lock:
                self.repo.index.add_pack(pack_id, builder.salt, builder.entries)
            with self._lock:
                self.stored_bytes += len(data)
                self._reserved.difference_update(builder.entries.blob_ids())
                self._packs_indexed += 1
                write_now = self._keep_unsaved((pack_id, builder.salt, builder.entries))
            if write_now:
                self.repo.write_index(write_now)
            if self.on_pack_uploaded is not None:
                self.on_pack_uploaded(pack_id, len(data))
        finally:
            self._recycle(builder.buffer, data)
            self._inflight.release()

    def _keep_unsaved(self, listing: PackListing) -> list[PackListing] | None:
        """Hold a stored pack's listing for the next index file; the listings due now, if any.

        Called with ``_lock`` held.
        """
        self._unsaved.append(listing)
        self._unsaved_blobs += len(listing[2])
        if len(self._unsaved) < self._index_every and self._unsaved_blobs < _INDEX_MAX_BLOBS:
            return None
        return self._take_unsaved()

    def _take_unsaved(self) -> list[PackListing]:
        """The listings no index file holds yet, handed over (called with ``_lock`` held)."""
        due, self._unsaved, self._unsaved_blobs = self._unsaved, [], 0
        return due

    def _recycle(self, buffer: bytearray, view: memoryview) -> None:
        """Keep a stored pack's buffer for a later builder (a few at most)."""
        try:
            view.release()
        except BufferError:
            return  # still exported somewhere: let it go
        with self._lock:
            if len(self._spare_buffers) < _SPARE_PACK_BUFFERS:
                self._spare_buffers.append(buffer)

    def _raise_failures(self) -> None:
        with self._futures_lock:
            done: list[Future[None]] = []
            running: list[Future[None]] = []
            for f in self._futures:
                (done if f.done() else running).append(f)
            self._futures = running
        for f in done:
            f.result()

    def flush(self) -> None:
        """Upload open packs, wait for every upload, write the remaining index."""
        with self._lock:
            builders = [self._builders.pop(t) for t in (DATA, TREE) if t in self._builders]
        for b in builders:
            self._submit(b)
        with self._futures_lock:
            futures, self._futures = self._futures, []
        for f in futures:
            f.result()
        with self._lock:
            pending = self._take_unsaved()
        if pending:
            self.repo.write_index(pending)

    def close(self) -> None:
        """Stop the upload threads (call flush first to keep the data)."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None:
                self.flush()
            else:
                self._salvage()
        finally:
            self.close()

    def _salvage(self) -> None:
        """After a failure: index the packs that did reach the store, so their work is kept.

        The in-memory index already lists them; if their index file cannot be
        written either, the next use reloads the index from the store (and
        adopts them), so it never believes in blobs no index file lists.
        """
        with self._futures_lock:
            futures, self._futures = self._futures, []
        for f in futures:
            with suppress(Exception):
                f.result()
        with self._lock:
            pending = self._take_unsaved()
        try:
            if pending:
                self.repo.write_index(pending)
        except Exception:
            self.repo.forget_index()
            raise
