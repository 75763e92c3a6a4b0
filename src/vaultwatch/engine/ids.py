"""Blob ids: keyed BLAKE3 of the plaintext, so ids reveal nothing without the key."""

from __future__ import annotations

import blake3

ID_SIZE = 32


def blob_id(id_key: bytes, data: bytes | memoryview) -> bytes:
    """The 32-byte id of a blob."""
    return blake3.blake3(data, key=id_key).digest()


def content_hash(data: bytes | memoryview) -> bytes:
    """Unkeyed BLAKE3 of stored bytes: names packs, index and snapshot files."""
    return blake3.blake3(data).digest()


def short(id_: bytes | str) -> str:
    """The 8-hex-digit prefix shown to people."""
    return (id_ if isinstance(id_, str) else id_.hex())[:8]
