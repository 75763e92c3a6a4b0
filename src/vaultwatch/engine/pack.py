"""Pack files: many encrypted blobs in one object, with an encrypted table of contents at the end.

Layout (all integers little-endian)::

    "VWPK" | version u8 (=1) | salt (32)                  pack header, 37 bytes
    blob*  : nonce (12) | AES-256-GCM(subkey, body, aad=blob id) | tag (16)
             body = method u8 (0 raw, 1 zstd) | payload
    trailer: nonce | AES-256-GCM(subkey, entries, aad="vaultwatch pack trailer") | tag
             | trailer length u32 | "VWPE"
    entry  : blob id (32) | type u8 | offset u32 | length u32 | raw length u32

subkey = HKDF-SHA256(master.enc_key, salt, "vaultwatch pack"). The pack is
named by the unkeyed BLAKE3 of its bytes, so anyone holding it (the gateway,
a scrubber) can verify it without any key.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from vaultwatch.engine.crypto import SALT_SIZE, Sealer, derive_key
from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.ids import content_hash

PACK_MAGIC = b"VWPK"
TRAILER_MAGIC = b"VWPE"
VERSION = 1
HEADER_SIZE = 4 + 1 + SALT_SIZE
_ENTRY = struct.Struct("<32sBIII")
_TRAILER_AAD = b"vaultwatch pack trailer"

DATA = 0
TREE = 1
BLOB_TYPES = {DATA: "data", TREE: "tree"}


@dataclass(frozen=True, slots=True)
class PackEntry:
    """Where one blob lives inside its pack."""

    blob_id: bytes
    type: int
    offset: int
    length: int
    raw_length: int


def pack_name(pack_id: bytes) -> str:
    """The store name of a pack."""
    h = pack_id.hex()
    return f"data/{h[:2]}/{h}"


def pack_sealer(enc_key: bytes, salt: bytes) -> Sealer:
    """The sealer for every blob of the pack with this salt."""
    return Sealer(derive_key(enc_key, salt, b"vaultwatch pack"))


class PackBuilder:
    """Accumulates encrypted blobs for one pack; not thread-safe (the caller holds a lock).

    The pack is assembled in ``buffer``. A writer hands each new builder the
    buffer of a pack already stored, so the memory is written again instead of
    being freshly mapped and page-faulted in for every pack.
    """

    def __init__(self, enc_key: bytes, blob_type: int, buffer: bytearray | None = None) -> None:
        self.salt = os.urandom(SALT_SIZE)
        self.blob_type = blob_type
        self._sealer = pack_sealer(enc_key, self.salt)
        self.buffer = buffer if buffer is not None else bytearray()
        self.size = 0
        self._append(PACK_MAGIC + bytes([VERSION]) + self.salt)
        self.entries: list[PackEntry] = []

    def _append(self, data: bytes) -> None:
        end = self.size + len(data)
        if end <= len(self.buffer):
            self.buffer[self.size : end] = data  # same length: written in place
        else:
            del self.buffer[self.size :]
            self.buffer += data
        self.size = end

    def add(self, blob_id: bytes, body: bytes, raw_length: int) -> None:
        """Encrypt and append one compressed blob body."""
        nonce, sealed = self._sealer.seal_parts(body, blob_id)
        length = len(nonce) + len(sealed)
        self.entries.append(PackEntry(blob_id, self.blob_type, self.size, length, raw_length))
        self._append(nonce)
        self._append(sealed)

    def finish(self) -> tuple[bytes, memoryview]:
        """The pack's id and bytes (a view of the buffer), trailer included."""
        table = b"".join(
            _ENTRY.pack(e.blob_id, e.type, e.offset, e.length, e.raw_length) for e in self.entries
        )
        trailer = self._sealer.seal(table, _TRAILER_AAD)
        self._append(trailer + struct.pack("<I", len(trailer)) + TRAILER_MAGIC)
        data = memoryview(self.buffer)[: self.size]
        return content_hash(data), data


def pack_salt(data: bytes | memoryview, name: str) -> bytes:
    """The salt from a pack's header."""
    if data[:4] != PACK_MAGIC or len(data) < HEADER_SIZE:
        raise IntegrityError(f"pack {name} has a bad header")
    if data[4] != VERSION:
        raise IntegrityError(f"pack {name} has unknown version {data[4]}")
    return bytes(data[5:HEADER_SIZE])


def read_trailer(
    enc_key: bytes, data: bytes | memoryview, name: str
) -> tuple[bytes, list[PackEntry]]:
    """The salt and blob table of a whole pack, so an index can be rebuilt from packs alone."""
    salt = pack_salt(data, name)
    if len(data) < HEADER_SIZE + 8 or data[-4:] != TRAILER_MAGIC:
        raise IntegrityError(f"pack {name} has no trailer (truncated?)")
    (trailer_len,) = struct.unpack("<I", data[-8:-4])
    start = len(data) - 8 - trailer_len
    if start < HEADER_SIZE:
        raise IntegrityError(f"pack {name} has a bad trailer length")
    table = pack_sealer(enc_key, salt).open(
        data[start:-8], _TRAILER_AAD, what=f"trailer of pack {name}"
    )
    if len(table) % _ENTRY.size:
        raise IntegrityError(f"pack {name} has a malformed trailer")
    entries = [PackEntry(*_ENTRY.unpack_from(table, i)) for i in range(0, len(table), _ENTRY.size)]
    for e in entries:
        if e.offset < HEADER_SIZE or e.offset + e.length > start:
            raise IntegrityError(f"pack {name} lists a blob outside its data area")
    return salt, entries
