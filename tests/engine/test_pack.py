"""Pack files: round trip, content-addressed names, and tamper/truncation detection."""

from __future__ import annotations

import os
import struct

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultwatch.engine.compress import compress, decompress
from vaultwatch.engine.crypto import OVERHEAD, SALT_SIZE
from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.ids import blob_id, content_hash
from vaultwatch.engine.pack import (
    DATA,
    HEADER_SIZE,
    PACK_MAGIC,
    TRAILER_MAGIC,
    TREE,
    VERSION,
    PackBuilder,
    PackEntry,
    PackTable,
    pack_name,
    pack_salt,
    pack_sealer,
    read_trailer,
)

ENC_KEY = bytes(range(32))
ID_KEY = bytes(range(32, 64))

blob_lists = st.lists(
    st.one_of(st.binary(max_size=3000), st.text(max_size=500).map(lambda s: s.encode() * 3)),
    max_size=12,
)


def _build(blobs: list[bytes], blob_type: int = DATA) -> tuple[bytes, bytes, list[PackEntry]]:
    builder = PackBuilder(ENC_KEY, blob_type)
    for plain in blobs:
        builder.add(blob_id(ID_KEY, plain), compress(plain), len(plain))
    entries = list(builder.entries)
    pack_id, data = builder.finish()
    return pack_id, bytes(data), entries


def _decode(data: bytes, salt: bytes, entry: PackEntry) -> bytes:
    """What a reader does with one index entry: decrypt at its offset, decompress, verify."""
    sealed = data[entry.offset : entry.offset + entry.length]
    body = pack_sealer(ENC_KEY, salt).open(sealed, entry.blob_id)
    plain = decompress(body, entry.raw_length)
    assert blob_id(ID_KEY, plain) == entry.blob_id
    return plain


@settings(max_examples=80, deadline=None)
@given(blobs=blob_lists, blob_type=st.sampled_from([DATA, TREE]))
def test_round_trip(blobs: list[bytes], blob_type: int) -> None:
    _, data, built = _build(blobs, blob_type)
    salt, entries = read_trailer(ENC_KEY, data, "p")
    assert entries == built
    assert salt == pack_salt(data, "p")
    assert [e.type for e in entries] == [blob_type] * len(blobs)
    assert [_decode(data, salt, e) for e in entries] == blobs
    assert [e.raw_length for e in entries] == [len(b) for b in blobs]


@settings(max_examples=40, deadline=None)
@given(blobs=blob_lists)
def test_pack_id_is_unkeyed_blake3_of_the_bytes(blobs: list[bytes]) -> None:
    pack_id, data, _ = _build(blobs)
    assert pack_id == blake3.blake3(data).digest() == content_hash(data)
    assert pack_name(pack_id) == f"data/{pack_id.hex()[:2]}/{pack_id.hex()}"


def test_layout() -> None:
    blobs = [b"first blob " * 20, os.urandom(500), b""]
    _, data, entries = _build(blobs)
    assert data[:4] == PACK_MAGIC == b"VWPK"
    assert data[4] == VERSION == 1
    assert HEADER_SIZE == 4 + 1 + SALT_SIZE == 37
    assert data[-4:] == TRAILER_MAGIC == b"VWPE"
    # Blobs are contiguous from the header on; each is nonce | ciphertext | tag of the body.
    pos = HEADER_SIZE
    for e, plain in zip(entries, blobs, strict=True):
        assert e.offset == pos
        assert e.length == len(compress(plain)) + OVERHEAD
        pos += e.length
    (trailer_len,) = struct.unpack("<I", data[-8:-4])
    assert pos + trailer_len + 8 == len(data)
    # The trailer holds 45 bytes per blob: id (32) | type u8 | offset u32 | length u32 | raw u32.
    assert trailer_len == OVERHEAD + 45 * len(blobs)
    table = pack_sealer(ENC_KEY, data[5:37]).open(data[pos:-8], b"vaultwatch pack trailer")
    first = struct.unpack_from("<32sBIII", table, 0)
    assert first == (entries[0].blob_id, DATA, HEADER_SIZE, entries[0].length, len(blobs[0]))


def test_each_pack_has_its_own_salt_and_subkey() -> None:
    _, a, ea = _build([b"same"])
    _, b, _ = _build([b"same"])
    assert a[5:37] != b[5:37]
    assert a != b
    with pytest.raises(IntegrityError):  # a's blob under b's subkey
        pack_sealer(ENC_KEY, b[5:37]).open(
            a[ea[0].offset : ea[0].offset + ea[0].length], ea[0].blob_id
        )


def test_blob_id_is_the_aad() -> None:
    _, data, entries = _build([b"alpha", b"beta"])
    salt = data[5:37]
    e = entries[0]
    sealed = data[e.offset : e.offset + e.length]
    with pytest.raises(IntegrityError):
        pack_sealer(ENC_KEY, salt).open(sealed, entries[1].blob_id)


def test_wrong_key_fails_the_trailer() -> None:
    _, data, _ = _build([b"x" * 100])
    with pytest.raises(IntegrityError, match="trailer"):
        read_trailer(os.urandom(32), data, "p")


def test_empty_pack_round_trips() -> None:
    pack_id, data, _ = _build([])
    assert len(data) == HEADER_SIZE + OVERHEAD + 8
    assert read_trailer(ENC_KEY, data, "p")[1] == []
    assert pack_id == content_hash(data)


@settings(max_examples=150, deadline=None)
@given(
    blobs=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=5),
    data=st.data(),
)
def test_any_flipped_byte_is_detected_never_silently_wrong(
    blobs: list[bytes], data: st.DataObject
) -> None:
    _, pack, built = _build(blobs)
    pos = data.draw(st.integers(0, len(pack) - 1), label="position")
    damaged = bytearray(pack)
    damaged[pos] ^= data.draw(st.integers(1, 255), label="xor")
    try:
        salt, entries = read_trailer(ENC_KEY, bytes(damaged), "p")
    except IntegrityError:
        return  # the header or the trailer caught it
    # The trailer authenticated, so it is the original table, and the damage is inside a blob.
    assert entries == built
    failures = 0
    for e, plain in zip(entries, blobs, strict=True):
        try:
            got = _decode(bytes(damaged), salt, e)
        except IntegrityError:
            failures += 1
            assert e.offset <= pos < e.offset + e.length
        else:
            assert got == plain
    assert failures == 1


@settings(max_examples=80, deadline=None)
@given(blobs=st.lists(st.binary(max_size=300), max_size=5), data=st.data())
def test_truncated_packs_are_rejected(blobs: list[bytes], data: st.DataObject) -> None:
    _, pack, _ = _build(blobs)
    cut = data.draw(st.integers(0, len(pack) - 1))
    with pytest.raises(IntegrityError):
        read_trailer(ENC_KEY, pack[:cut], "p")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "bad header"),
        (b"VWPK\x01", "bad header"),
        (b"XXXX\x01" + bytes(100), "bad header"),
        (b"VWPK\x02" + bytes(100), "unknown version"),
        (b"VWPK\x01" + bytes(32) + b"VWPE", "no trailer"),
        (b"VWPK\x01" + bytes(32) + bytes(40), "no trailer"),
        (b"VWPK\x01" + bytes(32) + struct.pack("<I", 2000) + b"VWPE", "bad trailer length"),
        (
            b"VWPK\x01" + bytes(32) + bytes(40) + struct.pack("<I", 40) + b"VWPE",
            "failed authentication",
        ),
    ],
)
def test_malformed_packs(data: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        read_trailer(ENC_KEY, data, "p")


def _forge(table: bytes, body: bytes = b"") -> bytes:
    """A pack with a correctly sealed but lying trailer (only the key holder could make one)."""
    salt = os.urandom(SALT_SIZE)
    trailer = pack_sealer(ENC_KEY, salt).seal(table, b"vaultwatch pack trailer")
    return (
        PACK_MAGIC
        + bytes([VERSION])
        + salt
        + body
        + trailer
        + struct.pack("<I", len(trailer))
        + TRAILER_MAGIC
    )


def test_trailer_entries_outside_the_data_area_are_refused() -> None:
    body = bytes(100)
    ok = struct.pack("<32sBIII", b"i" * 32, DATA, HEADER_SIZE, 100, 50)
    assert read_trailer(ENC_KEY, _forge(ok, body), "p")[1][0].length == 100
    for offset, length in [(HEADER_SIZE, 101), (0, 10), (HEADER_SIZE + 90, 20), (2**32 - 1, 1)]:
        bad = struct.pack("<32sBIII", b"i" * 32, DATA, offset, length, 50)
        with pytest.raises(IntegrityError, match="outside its data area"):
            read_trailer(ENC_KEY, _forge(bad, body), "p")


def test_trailer_with_a_partial_entry_is_refused() -> None:
    with pytest.raises(IntegrityError, match="malformed trailer"):
        read_trailer(ENC_KEY, _forge(bytes(44)), "p")


@pytest.mark.parametrize("leftover", [20_000, 100], ids=["larger", "smaller"])
def test_a_reused_buffer_holds_exactly_the_new_pack(leftover: int) -> None:
    """A writer hands builders the buffers of stored packs: old bytes must never leak in."""
    blobs = [os.urandom(3000), b"text " * 900, os.urandom(10)]
    buffer = bytearray(os.urandom(leftover))  # what an earlier pack left behind
    builder = PackBuilder(ENC_KEY, DATA, buffer)
    for plain in blobs:
        builder.add(blob_id(ID_KEY, plain), compress(plain), len(plain))
    pack_id, view = builder.finish()
    assert view.obj is buffer  # written in place, not copied out
    data = bytes(view)
    assert pack_id == content_hash(data)
    salt, entries = read_trailer(ENC_KEY, data, "p")
    assert [_decode(data, salt, e) for e in entries] == blobs
    (trailer_len,) = struct.unpack("<I", data[-8:-4])
    assert HEADER_SIZE + sum(e.length for e in entries) + trailer_len + 8 == len(data)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.binary(min_size=32, max_size=32),
            st.sampled_from([DATA, TREE]),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
        ),
        max_size=10,
    )
)
def test_a_pack_table_reads_back_the_entries_appended(
    rows: list[tuple[bytes, int, int, int, int]],
) -> None:
    entries = [PackEntry(*row) for row in rows]
    table = PackTable()
    for row in rows:
        table.append(*row)
    assert len(table) == len(entries)
    assert list(table) == entries
    assert [table[i] for i in range(len(table))] == entries
    assert table[1:4] == entries[1:4]
    assert list(table.blob_ids()) == [e.blob_id for e in entries]
    assert len(table.rows) == 45 * len(entries)
    assert list(PackTable(bytes(table.rows))) == entries
    if entries:
        assert table[-1] == entries[-1]
    with pytest.raises(IndexError):
        table[len(entries)]


def test_a_builder_lists_its_blobs_as_the_trailer_does() -> None:
    builder = PackBuilder(ENC_KEY, TREE)
    blobs = [b"tree one", os.urandom(700), b""]
    for plain in blobs:
        builder.add(blob_id(ID_KEY, plain), compress(plain), len(plain))
    listed = list(builder.entries)
    _, view = builder.finish()
    assert read_trailer(ENC_KEY, bytes(view), "p")[1] == listed
    assert [e.blob_id for e in listed] == [blob_id(ID_KEY, b) for b in blobs]
    assert [e.raw_length for e in listed] == [len(b) for b in blobs]
