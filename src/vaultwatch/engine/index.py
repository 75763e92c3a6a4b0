"""The blob index: which pack holds each blob, kept compact in memory.

A dict of Python objects costs ~200 bytes a blob; a repository of 10 million
blobs would need 2 GB. Entries live instead in sorted NumPy structured arrays
of 49 bytes each (a few sorted runs merged like an LSM tree), so 10 million
blobs take about 500 MB.

Index file layout (the payload of an encrypted ``index`` file, see crypto.seal_file),
zstd-compressed, integers little-endian::

    "VWIX" | version u8 (=1)
    pack count u32, then per pack: pack id (32) | salt (32) | blob count u32
    then every blob, in pack order: blob id (32) | type u8 | offset u32 | length u32 | raw length u32
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np
import zstandard

from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.pack import ENTRY_ROW, PackEntry, PackTable

ENTRY_DTYPE = np.dtype(
    [
        ("id", "S32"),
        ("type", "u1"),
        ("pack", "<u4"),
        ("offset", "<u4"),
        ("length", "<u4"),
        ("raw", "<u4"),
    ]
)
_FILE_ENTRY = np.dtype(
    [("id", "S32"), ("type", "u1"), ("offset", "<u4"), ("length", "<u4"), ("raw", "<u4")]
)
assert _FILE_ENTRY.itemsize == ENTRY_ROW.size
_PACK_HEAD = struct.Struct("<32s32sI")
INDEX_MAGIC = b"VWIX"
_MIN_RUN = 50_000
"""A run shorter than this is merged with the next one: a backup indexes one pack at a
time (some 250 blobs of large files), and every run costs each lookup one more search."""


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where to read one blob."""

    blob_id: bytes
    type: int
    pack_id: bytes
    salt: bytes
    offset: int
    length: int
    raw_length: int


IndexedBlob = PackEntry | BlobLocation
PackListing = tuple[bytes, bytes, Sequence[IndexedBlob]]
"""(pack id, salt, the pack's blobs): one pack's part of an index file."""


def _pad(raw: bytes) -> bytes:
    # NumPy's "S" dtype drops trailing NUL bytes; ids are always 32 bytes.
    return raw.ljust(32, b"\0")


class BlobIndex:
    """Blob id -> location, for every indexed pack. Not thread-safe for writes.

    A blob stored in two packs is indexed twice; a lookup finds one of them.
    """

    def __init__(self) -> None:
        self.pack_ids: list[bytes] = []
        self.pack_salts: list[bytes] = []
        self._pack_no: dict[bytes, int] = {}
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)

    def has_pack(self, pack_id: bytes) -> bool:
        """Whether the pack is indexed."""
        return pack_id in self._pack_no

    def _register_pack(self, pack_id: bytes, salt: bytes) -> int:
        no = self._pack_no.get(pack_id)
        if no is None:
            no = self._pack_no[pack_id] = len(self.pack_ids)
            self.pack_ids.append(pack_id)
            self.pack_salts.append(salt)
        return no

    def add_pack(self, pack_id: bytes, salt: bytes, entries: Iterable[PackEntry]) -> None:
        """Index every blob of a newly written pack."""
        if pack_id in self._pack_no:
            return
        no = self._register_pack(pack_id, salt)
        rows = entries.rows if isinstance(entries, PackTable) else encode_rows(entries)
        table = np.frombuffer(rows, dtype=_FILE_ENTRY)
        if len(table):
            self._add_run(_run(table, np.full(len(table), no, dtype="<u4")))

    def _add_run(self, run: np.ndarray) -> None:
        """Sort the new rows into a run, then merge runs while the newest is not much smaller."""
        runs = self._runs
        runs.append(run[np.argsort(run["id"], kind="stable")])
        while len(runs) >= 2 and (len(runs[-2]) < _MIN_RUN or len(runs[-1]) * 2 >= len(runs[-2])):
            newer = runs.pop()
            runs.append(_merge(runs.pop(), newer))

    def _find(self, blob_id: bytes) -> tuple[int, int, int, int, int] | None:
        key = np.array(blob_id, dtype="S32")
        for run in reversed(self._runs):
            ids = run["id"]
            i = int(np.searchsorted(ids, key))
            if i < len(run) and ids[i] == key:
                r = run[i]
                return (
                    int(r["type"]),
                    int(r["pack"]),
                    int(r["offset"]),
                    int(r["length"]),
                    int(r["raw"]),
                )
        return None

    def __contains__(self, blob_id: object) -> bool:
        return isinstance(blob_id, bytes) and self._find(blob_id) is not None

    def lookup(self, blob_id: bytes) -> BlobLocation | None:
        """The blob's location, or None when no indexed pack holds it."""
        hit = self._find(blob_id)
        if hit is None:
            return None
        t, p, o, ln, raw = hit
        return BlobLocation(blob_id, t, self.pack_ids[p], self.pack_salts[p], o, ln, raw)

    def lookup_many(self, blob_ids: Iterable[bytes]) -> dict[bytes, BlobLocation]:
        """Locations of many blobs at once (one vectorised search per run); missing ones are left out.

        A restore or check looks up every blob of a snapshot: one search per
        call would spend most of its time in NumPy call overhead.
        """
        rest = list(dict.fromkeys(blob_ids))
        found: dict[bytes, BlobLocation] = {}
        for run in reversed(self._runs):
            if not rest or not len(run):
                continue
            keys = np.array(rest, dtype="S32")
            ids = run["id"]
            pos = np.minimum(np.searchsorted(ids, keys), len(run) - 1)
            hits = np.nonzero(ids[pos] == keys)[0]
            rows = run[pos[hits]]  # columns as lists: NumPy scalars cost a microsecond each
            for i, t, p, o, ln, raw in zip(
                hits.tolist(),
                rows["type"].tolist(),
                rows["pack"].tolist(),
                rows["offset"].tolist(),
                rows["length"].tolist(),
                rows["raw"].tolist(),
                strict=True,
            ):
                bid = rest[i]
                found[bid] = BlobLocation(bid, t, self.pack_ids[p], self.pack_salts[p], o, ln, raw)
            rest = [b for b in rest if b not in found]
        return found

    def contains_many(self, blob_ids: Iterable[bytes]) -> set[bytes]:
        """Which of many blobs are indexed: one vectorised search per run, no locations built.

        A backup asks this for every file of every directory of its parent
        snapshot; building locations it does not need cost most of the search.
        """
        rest = list(dict.fromkeys(blob_ids))
        found: set[bytes] = set()
        for run in reversed(self._runs):
            if not rest or not len(run):
                continue
            keys = np.array(rest, dtype="S32")
            ids = run["id"]
            hit = (ids[np.minimum(np.searchsorted(ids, keys), len(run) - 1)] == keys).tolist()
            found.update(itertools.compress(rest, hit))
            rest = [b for b, h in zip(rest, hit, strict=True) if not h]
        return found

    def entries(self) -> Iterator[BlobLocation]:
        """Every indexed blob (each pack copy of a duplicate blob too), in no particular order."""
        for run in self._runs:
            for r in run:
                p = int(r["pack"])
                yield BlobLocation(
                    _pad(bytes(r["id"])),
                    int(r["type"]),
                    self.pack_ids[p],
                    self.pack_salts[p],
                    int(r["offset"]),
                    int(r["length"]),
                    int(r["raw"]),
                )

    def by_pack(self) -> dict[bytes, list[BlobLocation]]:
        """Blobs grouped by pack (what prune and index rewrites need)."""
        out: dict[bytes, list[BlobLocation]] = {pid: [] for pid in self.pack_ids}
        for loc in self.entries():
            out[loc.pack_id].append(loc)
        return out

    # -- index files ---------------------------------------------------------------

    def load_file(
        self, payload: bytes, name: str, only: AbstractSet[bytes] | None = None
    ) -> list[bytes]:
        """Merge one decrypted index file (only the packs in ``only``, if given); returns the pack ids it lists."""
        return self.load_plain(index_plaintext(payload, name), name, only)

    def load_plain(
        self, raw: bytes, name: str, only: AbstractSet[bytes] | None = None
    ) -> list[bytes]:
        """:meth:`load_file` of an index file already decompressed (one file, several indexes)."""
        if raw[:4] != INDEX_MAGIC or raw[4:5] != b"\x01":
            raise IntegrityError(f"index {name} has a bad header")
        try:
            (n_packs,) = struct.unpack_from("<I", raw, 5)
            pos = 9
            packs, counts = [], []
            for _ in range(n_packs):
                pid, salt, count = _PACK_HEAD.unpack_from(raw, pos)
                pos += _PACK_HEAD.size
                packs.append((pid, salt))
                counts.append(count)
            total = sum(counts)
            table = np.frombuffer(raw, dtype=_FILE_ENTRY, count=total, offset=pos)
        except (struct.error, ValueError) as exc:
            raise IntegrityError(f"index {name} is truncated: {exc}") from None
        if pos + total * _FILE_ENTRY.itemsize != len(raw):
            raise IntegrityError(f"index {name} has trailing garbage")
        # A pack already indexed (listed again by the complete index an interrupted
        # prune wrote) is the same bytes: its rows are taken once.
        fresh = [pid not in self._pack_no and (only is None or pid in only) for pid, _ in packs]
        for (pid, salt), new in zip(packs, fresh, strict=True):
            if new:
                self._register_pack(pid, salt)
        numbers = np.repeat(
            np.array([self._pack_no.get(pid, 0) for pid, _ in packs], dtype="<u4"), counts
        )
        if not all(fresh):
            keep = np.repeat(np.array(fresh, dtype=bool), counts)
            table, numbers = table[keep], numbers[keep]
        if len(table):
            self._add_run(_run(table, numbers))
        return [pid for pid, _ in packs]


def index_plaintext(payload: bytes, name: str) -> bytes:
    """A decrypted index file, decompressed."""
    try:
        return zstandard.ZstdDecompressor().decompress(payload)
    except (zstandard.ZstdError, MemoryError) as exc:  # a damaged header can claim any size
        raise IntegrityError(f"index {name} is not valid zstd: {exc}") from None


def _run(table: np.ndarray, packs: np.ndarray) -> np.ndarray:
    """Index rows (``_FILE_ENTRY``) and each row's pack number as unsorted index entries."""
    run = np.empty(len(table), dtype=ENTRY_DTYPE)
    for field in ("id", "type", "offset", "length", "raw"):
        run[field] = table[field]
    run["pack"] = packs
    return run


def _merge(older: np.ndarray, newer: np.ndarray) -> np.ndarray:
    """Two sorted runs as one, the older run's rows first among equal ids.

    Each row is copied once, into the merged array. Concatenating the runs
    and sorting the result held the runs, their concatenation and its sorted
    copy at once: merging 1,000,000 rows with 500,000 took 152 MiB on top of
    the runs and 0.81 s, this 89 MiB and 0.30 s.
    """
    merged = np.empty(len(older) + len(newer), dtype=ENTRY_DTYPE)
    at = np.searchsorted(older["id"], newer["id"], side="right")
    at += np.arange(len(newer))
    from_older = np.ones(len(merged), dtype=bool)
    from_older[at] = False
    merged[at] = newer
    merged[from_older] = older
    return merged


def encode_rows(blobs: Iterable[IndexedBlob]) -> bytes:
    """Blobs as the rows of an index file (and of a pack's trailer)."""
    # One struct.pack per blob: assigning NumPy rows one by one cost 4 % of a backup.
    row = ENTRY_ROW.pack
    return b"".join(row(b.blob_id, b.type, b.offset, b.length, b.raw_length) for b in blobs)


def encode_index(packs: Iterable[PackListing]) -> bytes:
    """Serialize (pack id, salt, blobs) triples into an index payload (compressed, not yet encrypted)."""
    heads, bodies = [], []
    for pack_id, salt, blobs in packs:
        body = blobs.rows if isinstance(blobs, PackTable) else encode_rows(blobs)
        heads.append(_PACK_HEAD.pack(pack_id, salt, len(body) // ENTRY_ROW.size))
        bodies.append(body)
    head = INDEX_MAGIC + b"\x01" + struct.pack("<I", len(heads)) + b"".join(heads)
    size = len(head) + sum(len(b) for b in bodies)  # in the frame: readers need it
    compressor = zstandard.ZstdCompressor(level=3).compressobj(size=size)
    parts = [compressor.compress(head)]
    parts += [compressor.compress(body) for body in bodies]  # no joined copy of every row
    parts.append(compressor.flush())
    return b"".join(parts)
