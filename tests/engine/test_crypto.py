"""Subkeys, the AEAD sealer and the encrypted file envelope."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultwatch.engine.crypto import (
    FILE_MAGIC,
    NONCE_SIZE,
    OVERHEAD,
    SALT_SIZE,
    TAG_SIZE,
    Sealer,
    derive_key,
    open_file,
    pack_u32,
    seal_file,
)
from vaultwatch.engine.errors import IntegrityError

MASTER = bytes(range(32))
KINDS = ("index", "snapshot", "key", "x")


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 written out with hmac, to pin the derivation independently of `cryptography`."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


# -- derive_key -----------------------------------------------------------------------------


@settings(max_examples=50)
@given(
    master=st.binary(min_size=32, max_size=32),
    salt=st.binary(max_size=64),
    info=st.binary(max_size=40),
)
def test_derive_key_is_hkdf_sha256(master: bytes, salt: bytes, info: bytes) -> None:
    assert derive_key(master, salt, info) == _hkdf_sha256(master, salt, info)


def test_derive_key_separates_salts_and_purposes() -> None:
    salt = b"s" * SALT_SIZE
    keys = {
        derive_key(MASTER, salt, b"vaultwatch pack"),
        derive_key(MASTER, salt, b"vaultwatch file index"),
        derive_key(MASTER, salt, b"vaultwatch file snapshot"),
        derive_key(MASTER, b"t" * SALT_SIZE, b"vaultwatch pack"),
        derive_key(bytes(32), salt, b"vaultwatch pack"),
    }
    assert len(keys) == 5
    assert all(len(k) == 32 for k in keys)


# -- Sealer ---------------------------------------------------------------------------------


@settings(max_examples=100)
@given(plain=st.binary(max_size=4096), aad=st.one_of(st.none(), st.binary(max_size=64)))
def test_sealer_round_trip(plain: bytes, aad: bytes | None) -> None:
    sealer = Sealer(os.urandom(32))
    sealed = sealer.seal(plain, aad)
    assert len(sealed) == len(plain) + OVERHEAD
    assert sealer.open(sealed, aad) == plain
    assert sealer.open(memoryview(sealed), aad) == plain


def test_sealed_layout_is_nonce_ciphertext_tag() -> None:
    key = os.urandom(32)
    sealed = Sealer(key).seal(b"hello", b"aad")
    nonce, rest = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
    assert len(rest) == 5 + TAG_SIZE
    assert AESGCM(key).decrypt(nonce, rest, b"aad") == b"hello"


def test_nonces_are_fresh() -> None:
    sealer = Sealer(os.urandom(32))
    sealed = {sealer.seal(b"same plaintext")[:NONCE_SIZE] for _ in range(200)}
    assert len(sealed) == 200


def test_sealer_refuses_wrong_aad_key_and_truncation() -> None:
    key = os.urandom(32)
    sealed = Sealer(key).seal(b"payload", b"blob-a")
    with pytest.raises(IntegrityError, match="failed authentication"):
        Sealer(key).open(sealed, b"blob-b")
    with pytest.raises(IntegrityError):
        Sealer(key).open(sealed, None)
    with pytest.raises(IntegrityError):
        Sealer(os.urandom(32)).open(sealed, b"blob-a")
    with pytest.raises(IntegrityError, match="truncated"):
        Sealer(key).open(sealed[: OVERHEAD - 1], b"blob-a")
    with pytest.raises(IntegrityError, match="my thing"):
        Sealer(key).open(sealed[:-1], b"blob-a", what="my thing")


@settings(max_examples=60)
@given(plain=st.binary(max_size=200), data=st.data())
def test_sealer_detects_any_flipped_bit(plain: bytes, data: st.DataObject) -> None:
    sealer = Sealer(b"k" * 32)
    sealed = bytearray(sealer.seal(plain, b"aad"))
    pos = data.draw(st.integers(0, len(sealed) - 1))
    bit = data.draw(st.integers(0, 7))
    sealed[pos] ^= 1 << bit
    with pytest.raises(IntegrityError):
        sealer.open(bytes(sealed), b"aad")


# -- files ----------------------------------------------------------------------------------


@settings(max_examples=60)
@given(payload=st.binary(max_size=2048), kind=st.sampled_from(KINDS))
def test_file_round_trip(payload: bytes, kind: str) -> None:
    data = seal_file(MASTER, kind, payload)
    assert data[:4] == FILE_MAGIC
    assert len(data) == 4 + SALT_SIZE + OVERHEAD + len(payload)
    assert open_file(MASTER, kind, data, "f") == payload


def test_file_envelope_decrypts_by_hand() -> None:
    """magic | salt | nonce | AES-256-GCM(HKDF(master, salt, "vaultwatch file <kind>")) | tag."""
    data = seal_file(MASTER, "snapshot", b'{"hello": 1}')
    salt = data[4:36]
    nonce = data[36:48]
    key = _hkdf_sha256(MASTER, salt, b"vaultwatch file snapshot")
    assert AESGCM(key).decrypt(nonce, data[48:], b"VWF1snapshot") == b'{"hello": 1}'


def test_files_are_salted_per_write() -> None:
    a = seal_file(MASTER, "index", b"same")
    b = seal_file(MASTER, "index", b"same")
    assert a != b
    assert a[4 : 4 + SALT_SIZE] != b[4 : 4 + SALT_SIZE]


def test_kind_is_authenticated() -> None:
    data = seal_file(MASTER, "index", b"payload")
    with pytest.raises(IntegrityError, match="index/abc"):
        open_file(MASTER, "snapshot", data, "index/abc")
    assert open_file(MASTER, "index", data, "index/abc") == b"payload"


def test_wrong_master_key_fails() -> None:
    data = seal_file(MASTER, "snapshot", b"payload")
    with pytest.raises(IntegrityError):
        open_file(os.urandom(32), "snapshot", data, "snapshots/x")


@pytest.mark.parametrize(
    "data",
    [b"", b"VWF1", b"XXXX" + bytes(100), FILE_MAGIC + bytes(SALT_SIZE + OVERHEAD - 1)],
)
def test_bad_headers_are_refused(data: bytes) -> None:
    with pytest.raises(IntegrityError, match="bad header"):
        open_file(MASTER, "index", data, "index/x")


@settings(max_examples=60)
@given(payload=st.binary(max_size=300), data=st.data())
def test_any_damaged_file_byte_is_detected(payload: bytes, data: st.DataObject) -> None:
    sealed = bytearray(seal_file(MASTER, "index", payload))
    pos = data.draw(st.integers(0, len(sealed) - 1))
    sealed[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(IntegrityError):
        open_file(MASTER, "index", bytes(sealed), "index/x")


@settings(max_examples=40)
@given(payload=st.binary(max_size=300), data=st.data())
def test_truncated_files_are_refused(payload: bytes, data: st.DataObject) -> None:
    sealed = seal_file(MASTER, "snapshot", payload)
    cut = data.draw(st.integers(0, len(sealed) - 1))
    with pytest.raises(IntegrityError):
        open_file(MASTER, "snapshot", sealed[:cut], "snapshots/x")


def test_pack_u32_is_little_endian() -> None:
    assert pack_u32(1) == b"\x01\x00\x00\x00"
    assert pack_u32(0x01020304) == struct.pack("<I", 0x01020304) == b"\x04\x03\x02\x01"
    with pytest.raises(struct.error):
        pack_u32(2**32)


def test_sealed_parts_join_to_what_open_reads() -> None:
    sealer = Sealer(os.urandom(32))
    nonce, sealed = sealer.seal_parts(b"pack blob", b"blob id")
    assert len(nonce) == NONCE_SIZE
    assert sealer.open(nonce + sealed, b"blob id") == b"pack blob"
    other_nonce, _ = sealer.seal_parts(b"pack blob", b"blob id")
    assert other_nonce != nonce  # a fresh nonce every time
