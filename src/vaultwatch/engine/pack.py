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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from vaultwatch.engine.crypto import SALT_SIZE, Sealer, derive_key
from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.ids import content_hash

PACK_MAGIC = b"VWPK"
TRAILER_MAGIC = b"VWPE"
VERSION = 1
HEADER_SIZE = 4 + 1 + SALT_SIZE
ENTRY_ROW = struct.Struct("<32sBIII")
"""One blob's row, in a pack's trailer and in an index file alike."""
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


class PackTable(Sequence[PackEntry]):
    """A pack's blobs as the rows its trailer stores (45 bytes a blob), read as PackEntry.

    A pack of small files lists some 60,000 blobs, and a backup keeps the
    tables of its packs until an index file lists them: as PackEntry objects
    they cost about 180 bytes a blob (1,000,000 small files: 180 MB).
    """

    __slots__ = ("rows",)

    def __init__(self, rows: bytes | bytearray = b"") -> None:
        self.rows = bytearray(rows)

    def append(self, blob_id: bytes, blob_type: int, offset: int, length: int, raw: int) -> None:
        """Add one blob's row."""
        self.rows += ENTRY_ROW.pack(blob_id, blob_type, offset, length, raw)

    def __len__(self) -> int:
        return len(self.rows) // ENTRY_ROW.size

    @overload
    def __getitem__(self, i: int) -> PackEntry: ...

    @overload
    def __getitem__(self, i: slice) -> list[PackEntry]: ...

    def __getitem__(self, i: int | slice) -> PackEntry | list[PackEntry]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("pack table index out of range")
        return PackEntry(*ENTRY_ROW.unpack_from(self.rows, i * ENTRY_ROW.size))

    def __iter__(self) -> Iterator[PackEntry]:
        return (PackEntry(*row) for row in ENTRY_ROW.iter_unpack(self.rows))

    def blob_ids(self) -> Iterator[bytes]:
        """Every blob's id, without building entries."""
        rows, step = self.rows, ENTRY_ROW.size
        return (bytes(rows[i : i + 32]) for i in range(0, len(rows), step))


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
        self.entries = PackTable()

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
        self.entries.append(blob_id, self.blob_type, self.size, length, raw_length)
        self._append(nonce)
        self._append(sealed)

    def finish(self) -> tuple[bytes, memoryview]:
        """The pack's id and bytes (a view of the buffer), trailer included."""
        trailer = self._sealer.seal(bytes(self.entries.rows), _TRAILER_AAD)
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
    if len(table) % ENTRY_ROW.size:
        raise IntegrityError(f"pack {name} has a malformed trailer")
    entries = [PackEntry(*row) for row in ENTRY_ROW.iter_unpack(table)]
    for e in entries:
        if e.offset < HEADER_SIZE or e.offset + e.length > start:
            raise IntegrityError(f"pack {name} lists a blob outside its data area")
    return salt, entries
