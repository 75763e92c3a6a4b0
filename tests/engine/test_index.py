"""The compact blob index: agrees with a dict, survives flushes and merges, and stays small."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from vaultwatch.engine import index as index_mod
from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.index import (
    ENTRY_DTYPE,
    INDEX_MAGIC,
    BlobIndex,
    BlobLocation,
    PackListing,
    encode_index,
)
from vaultwatch.engine.pack import DATA, TREE, PackEntry, PackTable

# Ids that NumPy's "S32" dtype would mangle (trailing NULs) or that sort at the edges.
TRICKY_IDS = [
    bytes(32),
    b"\x00" * 31 + b"\x01",
    b"\x01" + bytes(31),
    b"a" + bytes(31),
    b"a" * 31 + b"\x00",
    b"a" * 30 + b"\x00\x00",
    b"a" * 32,
    b"\x00a" + bytes(30),
    b"\xff" * 32,
    b"\xff" * 31 + b"\x00",
]
ID_POOL = TRICKY_IDS + [bytes([i]) * 16 + bytes([255 - i]) * 16 for i in range(1, 21)]
PACK_POOL = [bytes([0xA0 + i]) * 31 + bytes([i % 2]) for i in range(12)]

ids = st.one_of(st.sampled_from(ID_POOL), st.binary(min_size=32, max_size=32))
u32 = st.integers(0, 2**32 - 1)


def _salt(pack_id: bytes) -> bytes:
    """A pack's salt is fixed by the pack (as in a real repository)."""
    return bytes(reversed(pack_id))


entries_st = st.lists(
    st.builds(PackEntry, ids, st.sampled_from([DATA, TREE]), u32, u32, u32), max_size=12
)


@dataclass(frozen=True)
class _Loc:
    pack_id: bytes
    type: int
    offset: int
    length: int
    raw_length: int


def _loc(loc: BlobLocation) -> _Loc:
    assert loc.salt == _salt(loc.pack_id)
    return _Loc(loc.pack_id, loc.type, loc.offset, loc.length, loc.raw_length)


class IndexMachine(RuleBasedStateMachine):
    """BlobIndex against a model: blob id -> every location it was indexed at.

    A blob stored in two packs may be found in either; every other answer is exact.
    """

    def __init__(self) -> None:
        super().__init__()
        self.index = BlobIndex()
        self.model: dict[bytes, set[_Loc]] = {}
        self.packs: list[bytes] = []
        self.entries_seen = 0

    def _record(self, pack_id: bytes, entries: list[PackEntry]) -> None:
        for e in entries:
            self.model.setdefault(e.blob_id, set()).add(
                _Loc(pack_id, e.type, e.offset, e.length, e.raw_length)
            )

    @rule(pack_id=st.sampled_from(PACK_POOL), entries=entries_st)
    def add_pack(self, pack_id: bytes, entries: list[PackEntry]) -> None:
        self.index.add_pack(pack_id, _salt(pack_id), entries)
        if pack_id not in self.packs:  # add_pack ignores a pack it already has
            self.packs.append(pack_id)
            self._record(pack_id, entries)

    @rule(
        listings=st.lists(st.tuples(st.sampled_from(PACK_POOL), entries_st), min_size=0, max_size=3)
    )
    def load_index_file(self, listings: list[tuple[bytes, list[PackEntry]]]) -> None:
        payload = encode_index([(pid, _salt(pid), es) for pid, es in listings])
        listed = self.index.load_file(payload, "index/test")
        assert listed == [pid for pid, _ in listings]
        known = set(self.packs)  # a pack's contents never change: a second listing adds nothing
        for pid, es in listings:
            if pid not in self.packs:
                self.packs.append(pid)
            if pid not in known:
                self._record(pid, es)

    @rule()
    def iterate_entries(self) -> None:
        """Every yielded row is a real location, and every indexed blob is yielded."""
        seen: dict[bytes, set[_Loc]] = {}
        for loc in self.index.entries():
            assert len(loc.blob_id) == 32
            seen.setdefault(loc.blob_id, set()).add(_loc(loc))
        assert set(seen) == set(self.model)
        for bid, locs in seen.items():
            assert locs <= self.model[bid]

    @rule()
    def group_by_pack(self) -> None:
        grouped = self.index.by_pack()
        assert list(grouped) == self.packs
        for pid, locs in grouped.items():
            for loc in locs:
                assert loc.pack_id == pid
                assert _loc(loc) in self.model[loc.blob_id]

    @invariant()
    def lookups_agree_with_the_model(self) -> None:
        for bid in ID_POOL + list(self.model):
            loc = self.index.lookup(bid)
            if bid in self.model:
                assert loc is not None, bid
                assert loc.blob_id == bid
                assert _loc(loc) in self.model[bid]
                assert bid in self.index
            else:
                assert loc is None
                assert bid not in self.index

    @invariant()
    def batch_answers_agree_with_the_model(self) -> None:
        """lookup_many and contains_many, over known and unknown ids (and repeats), match it."""
        asked = ID_POOL + list(self.model) + ID_POOL[:3]
        assert self.index.contains_many(asked) == set(self.model)
        found = self.index.lookup_many(asked)
        assert set(found) == set(self.model)
        for bid, loc in found.items():
            assert _loc(loc) in self.model[bid]

    @invariant()
    def packs_agree(self) -> None:
        assert self.index.pack_ids == self.packs
        assert self.index.pack_salts == [_salt(p) for p in self.packs]
        for pid in PACK_POOL:
            assert self.index.has_pack(pid) == (pid in self.packs)

    @invariant()
    def runs_stay_few_and_sorted(self) -> None:
        runs = self.index._runs
        total = sum(len(r) for r in runs)
        assert len(runs) <= max(1, math.ceil(math.log2(total + 1)) + 1)
        for a, b in itertools.pairwise(runs):
            assert len(b) * 2 < len(a)  # LSM shape: each run well under half the previous one
        assert all(len(r) >= index_mod._MIN_RUN for r in runs[:-1])  # small ones merged
        for r in runs:
            assert np.all(r["id"][:-1] <= r["id"][1:])
        assert len(self.index) >= len(self.model)


def test_index_agrees_with_a_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_mod, "_MIN_RUN", 7)
    run_state_machine_as_test(
        IndexMachine,
        settings=settings(max_examples=50, stateful_step_count=30, deadline=None),
    )


def test_index_agrees_with_a_dict_at_the_default_limit() -> None:
    run_state_machine_as_test(
        IndexMachine,
        settings=settings(max_examples=10, stateful_step_count=20, deadline=None),
    )


def _bid(i: int) -> bytes:
    return struct.pack(">Q", i) * 4


def test_flush_and_merge_with_a_small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_mod, "_MIN_RUN", 4)
    index = BlobIndex()
    for p in range(200):
        pid = _bid(10**6 + p)
        index.add_pack(
            pid, b"s" * 32, [PackEntry(_bid(p * 3 + k), DATA, 37 + k, 20, 10) for k in range(3)]
        )
    assert len(index) == 600
    assert len(index._runs) <= 10
    assert all(len(r) >= 4 for r in index._runs[:-1])
    for p in range(200):
        for k in range(3):
            loc = index.lookup(_bid(p * 3 + k))
            assert loc is not None
            assert (loc.pack_id, loc.offset) == (_bid(10**6 + p), 37 + k)
    assert index.lookup(_bid(600)) is None


def test_duplicate_blob_in_two_packs_is_found_in_one_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_mod, "_MIN_RUN", 1)
    index = BlobIndex()
    blob = b"d" * 31 + b"\x00"
    index.add_pack(b"A" * 32, b"a" * 32, [PackEntry(blob, DATA, 37, 50, 20)])
    index.add_pack(b"B" * 32, b"b" * 32, [PackEntry(blob, DATA, 99, 50, 20)])
    loc = index.lookup(blob)
    assert loc is not None
    assert (loc.pack_id, loc.salt, loc.offset) in {
        (b"A" * 32, b"a" * 32, 37),
        (b"B" * 32, b"b" * 32, 99),
    }
    by_pack = index.by_pack()
    assert [e.offset for e in by_pack[b"A" * 32]] == [37]
    assert [e.offset for e in by_pack[b"B" * 32]] == [99]


def test_re_adding_a_pack_is_a_no_op() -> None:
    index = BlobIndex()
    index.add_pack(b"P" * 32, b"s" * 32, [PackEntry(b"x" * 32, DATA, 37, 10, 5)])
    index.add_pack(b"P" * 32, b"t" * 32, [PackEntry(b"y" * 32, DATA, 37, 10, 5)])
    assert b"y" * 32 not in index
    assert len(index) == 1
    assert index.pack_salts == [b"s" * 32]


@pytest.mark.parametrize("bid", TRICKY_IDS)
def test_ids_ending_in_nul_round_trip_through_entries(bid: bytes) -> None:
    index = BlobIndex()
    index.add_pack(b"P" * 32, b"s" * 32, [PackEntry(bid, TREE, 37, 10, 5)])
    assert bid in index
    (loc,) = list(index.entries())
    assert loc.blob_id == bid
    assert len(loc.blob_id) == 32
    found = index.lookup(bid)
    assert found is not None
    assert found.blob_id == bid
    assert found.type == TREE
    # A different id that only differs in the stripped tail is not confused with it.
    other = bid[:-1] + bytes([(bid[-1] + 1) % 256])
    assert index.lookup(other) is None


def _sorted_run(blob_ids: list[bytes], pack: int) -> np.ndarray:
    run = np.zeros(len(blob_ids), dtype=ENTRY_DTYPE)
    run["id"] = blob_ids
    run["pack"] = pack
    run["offset"] = np.arange(len(blob_ids))
    return run[np.argsort(run["id"], kind="stable")]


@settings(max_examples=200, deadline=None)
@given(older=st.lists(ids, max_size=20), newer=st.lists(ids, max_size=20))
def test_a_merge_is_a_stable_sort_of_both_runs(older: list[bytes], newer: list[bytes]) -> None:
    """Every row once, sorted by id; among equal ids the older run's rows come first."""
    a, b = _sorted_run(older, 0), _sorted_run(newer, 1)
    both = np.concatenate([a, b])
    expected = both[np.argsort(both["id"], kind="stable")]
    assert index_mod._merge(a, b).tobytes() == expected.tobytes()


def _hashed_id(i: int) -> bytes:
    """Ids in no particular order, so every merge interleaves its runs."""
    return hashlib.sha256(i.to_bytes(8, "big")).digest()


def test_lookups_after_many_merges_return_exactly_what_was_added(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_mod, "_MIN_RUN", 16)
    index = BlobIndex()
    added: dict[bytes, tuple[bytes, int, int, int, int]] = {}
    n = 0
    for p in range(300):
        pid, salt = _hashed_id(10**6 + p), _hashed_id(2 * 10**6 + p)
        entries = [
            PackEntry(_hashed_id(n + k), p % 2, 37 + 50 * k, 50 + p, 100 + k)
            for k in range(p % 23 + 1)  # packs of 1 to 23 blobs
        ]
        n += len(entries)
        table = PackTable()
        for e in entries:
            table.append(e.blob_id, e.type, e.offset, e.length, e.raw_length)
        index.add_pack(pid, salt, table if p % 3 else entries)
        added.update({e.blob_id: (pid, e.type, e.offset, e.length, e.raw_length) for e in entries})
    assert len(index) == n == len(added)
    assert 2 <= len(index._runs) <= 10
    for bid, (pid, t, offset, length, raw) in added.items():
        loc = index.lookup(bid)
        assert loc is not None
        assert (loc.pack_id, loc.salt) == (pid, index.pack_salts[index.pack_ids.index(pid)])
        assert (loc.type, loc.offset, loc.length, loc.raw_length) == (t, offset, length, raw)
    absent = [_hashed_id(n + k) for k in range(50)]
    assert index.contains_many([*added, *absent]) == set(added)
    found = index.lookup_many([*absent, *added])
    assert {bid: (loc.pack_id, loc.offset) for bid, loc in found.items()} == {
        bid: (pid, offset) for bid, (pid, _, offset, _, _) in added.items()
    }
    assert sorted(loc.blob_id for loc in index.entries()) == sorted(added)


@settings(max_examples=60, deadline=None)
@given(entries=entries_st)
def test_a_pack_table_is_indexed_and_encoded_as_its_entries(entries: list[PackEntry]) -> None:
    table = PackTable()
    for e in entries:
        table.append(e.blob_id, e.type, e.offset, e.length, e.raw_length)
    pid, salt = b"P" * 32, b"S" * 32
    assert encode_index([(pid, salt, table)]) == encode_index([(pid, salt, entries)])
    from_table, from_entries = BlobIndex(), BlobIndex()
    from_table.add_pack(pid, salt, table)
    from_entries.add_pack(pid, salt, entries)
    assert _index_rows(from_table) == _index_rows(from_entries) == _as_rows([(pid, salt, entries)])


# -- index files ----------------------------------------------------------------------------

listings_st = st.lists(
    st.tuples(
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=32, max_size=32),
        entries_st,
    ),
    max_size=6,
    unique_by=lambda t: t[0],
)


def _as_rows(listings: list[PackListing]) -> list[tuple[bytes, bytes, bytes, int, int, int, int]]:
    return sorted(
        (b.blob_id, pid, salt, b.type, b.offset, b.length, b.raw_length)
        for pid, salt, blobs in listings
        for b in blobs
    )


def _index_rows(index: BlobIndex) -> list[tuple[bytes, bytes, bytes, int, int, int, int]]:
    return sorted(
        (loc.blob_id, loc.pack_id, loc.salt, loc.type, loc.offset, loc.length, loc.raw_length)
        for loc in index.entries()
    )


@settings(max_examples=100, deadline=None)
@given(listings=listings_st)
def test_encode_and_load_round_trip(listings: list[PackListing]) -> None:
    index = BlobIndex()
    assert index.load_file(encode_index(listings), "index/x") == [pid for pid, _, _ in listings]
    assert index.pack_ids == [pid for pid, _, _ in listings]
    assert index.pack_salts == [salt for _, salt, _ in listings]
    assert _index_rows(index) == _as_rows(listings)
    # Re-encoding what was loaded gives the same index again.
    again = BlobIndex()
    regrouped = [
        (pid, index.pack_salts[i], locs) for i, (pid, locs) in enumerate(index.by_pack().items())
    ]
    again.load_file(encode_index(regrouped), "index/y")
    assert _index_rows(again) == _as_rows(listings)


def test_binary_layout() -> None:
    e = PackEntry(b"i" * 31 + b"\x00", TREE, 37, 0x01020304, 7)
    raw = zstandard.ZstdDecompressor().decompress(encode_index([(b"p" * 32, b"s" * 32, [e])]))
    assert raw == (
        b"VWIX\x01"
        + struct.pack("<I", 1)
        + b"p" * 32
        + b"s" * 32
        + struct.pack("<I", 1)
        + e.blob_id
        + bytes([TREE])
        + struct.pack("<III", 37, 0x01020304, 7)
    )


def test_several_files_merge() -> None:
    index = BlobIndex()
    index.load_file(
        encode_index([(b"p" * 32, b"s" * 32, [PackEntry(b"a" * 32, DATA, 37, 1, 1)])]), "i1"
    )
    index.load_file(
        encode_index([(b"q" * 32, b"t" * 32, [PackEntry(b"b" * 32, DATA, 37, 2, 2)])]), "i2"
    )
    a, b = index.lookup(b"a" * 32), index.lookup(b"b" * 32)
    assert a is not None and b is not None
    assert (a.pack_id, a.salt) == (b"p" * 32, b"s" * 32)
    assert (b.pack_id, b.salt, b.length) == (b"q" * 32, b"t" * 32, 2)


def _raw(listings: list[PackListing]) -> bytes:
    return zstandard.ZstdDecompressor().decompress(encode_index(listings))


SAMPLE: list[PackListing] = [
    (b"p" * 32, b"s" * 32, [PackEntry(bytes([i]) * 32, DATA, 37 + i, 10, 5) for i in range(4)]),
    (b"q" * 32, b"t" * 32, [PackEntry(bytes(32), TREE, 37, 10, 5)]),
]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "not valid zstd"),
        (b"not zstd at all", "not valid zstd"),
        (zstandard.ZstdCompressor().compress(b"XXXX\x01" + bytes(4)), "bad header"),
        (zstandard.ZstdCompressor().compress(INDEX_MAGIC + b"\x02" + bytes(4)), "bad header"),
        (zstandard.ZstdCompressor().compress(INDEX_MAGIC + b"\x01"), "truncated"),
        (
            zstandard.ZstdCompressor().compress(INDEX_MAGIC + b"\x01" + struct.pack("<I", 1)),
            "truncated",
        ),
        (zstandard.ZstdCompressor().compress(_raw(SAMPLE) + b"\x00"), "trailing garbage"),
        (zstandard.ZstdCompressor().compress(_raw(SAMPLE)[:-1]), "truncated"),
    ],
)
def test_malformed_index_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        BlobIndex().load_file(payload, "index/x")


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_truncated_payloads_raise_integrity_error(data: st.DataObject) -> None:
    raw = _raw(SAMPLE)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(IntegrityError):
        BlobIndex().load_file(zstandard.ZstdCompressor().compress(raw[:cut]), "index/x")
    payload = encode_index(SAMPLE)
    zcut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(IntegrityError):
        BlobIndex().load_file(payload[:zcut], "index/x")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), compressed=st.booleans())
def test_corrupted_payloads_never_raise_anything_else(
    data: st.DataObject, compressed: bool
) -> None:
    """A damaged payload (compressed bytes or the layout inside) is refused as IntegrityError
    or, where the damage only changes values, parsed; it never crashes the reader."""
    buf = bytearray(encode_index(SAMPLE) if compressed else _raw(SAMPLE))
    pos = data.draw(st.integers(0, len(buf) - 1))
    buf[pos] ^= data.draw(st.integers(1, 255))
    payload = bytes(buf) if compressed else zstandard.ZstdCompressor().compress(bytes(buf))
    with contextlib.suppress(IntegrityError):
        BlobIndex().load_file(payload, "index/x")


def test_damaged_frame_header_claiming_a_huge_size_is_integrity_error() -> None:
    payload = bytearray(encode_index(SAMPLE))
    payload[4] ^= 0x80  # frame header descriptor: the content size field grows to 8 bytes
    with pytest.raises(IntegrityError):
        BlobIndex().load_file(bytes(payload), "index/x")


# -- memory ---------------------------------------------------------------------------------


def _synthetic_index_payloads(total: int, files: int) -> Iterator[bytes]:
    rng = np.random.default_rng(7)
    per_file = total // files
    file_entry = np.dtype(
        [("id", "S32"), ("type", "u1"), ("offset", "<u4"), ("length", "<u4"), ("raw", "<u4")]
    )
    blobs_per_pack = 1000
    for f in range(files):
        table = np.zeros(per_file, dtype=file_entry)
        ids = rng.integers(0, 256, size=(per_file, 32), dtype=np.uint8)
        table["id"] = ids.view("S32").ravel()
        table["offset"] = rng.integers(37, 8 << 20, size=per_file)
        table["length"] = rng.integers(100, 1 << 20, size=per_file)
        table["raw"] = table["length"]
        n_packs = per_file // blobs_per_pack
        heads = b"".join(
            struct.pack("<32s32sI", struct.pack("<QQ", f, p) * 2, bytes(32), blobs_per_pack)
            for p in range(n_packs)
        )
        raw = INDEX_MAGIC + b"\x01" + struct.pack("<I", n_packs) + heads + table.tobytes()
        yield zstandard.ZstdCompressor(level=1).compress(raw)


def test_a_million_entries_use_under_80_bytes_each() -> None:
    total = 1_000_000
    index = BlobIndex()
    for i, payload in enumerate(_synthetic_index_payloads(total, files=5)):
        index.load_file(payload, f"index/{i}")
    assert len(index) == total
    assert ENTRY_DTYPE.itemsize == 49
    array_bytes = sum(r.nbytes for r in index._runs)
    # Per-pack bookkeeping is per pack, not per blob, but count it too.
    pack_bytes = sum(len(p) + len(s) for p, s in zip(index.pack_ids, index.pack_salts, strict=True))
    assert (array_bytes + pack_bytes) / total < 80
    assert len(index._runs) <= 3
    # Still correct at that size: look up a spread of ids from every run, and some absent ones.
    for run in index._runs:
        for row in run[:: max(1, len(run) // 50)]:
            bid = bytes(row["id"]).ljust(32, b"\0")
            found = index.lookup(bid)
            assert found is not None
            assert (found.offset, found.length) == (int(row["offset"]), int(row["length"]))
    assert index.lookup(b"\xab" * 32) is None
