"""Authenticated encryption with per-object subkeys.

Every pack and every stand-alone file (index, snapshot, key payload) gets its
own random salt; the AES-256-GCM key for it is HKDF-SHA256(master, salt, info).
A subkey encrypts at most a few thousand messages, so random 96-bit nonces are
far from their limit however large the repository grows.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vaultwatch.engine.errors import IntegrityError

NONCE_SIZE = 12
TAG_SIZE = 16
SALT_SIZE = 32
OVERHEAD = NONCE_SIZE + TAG_SIZE
FILE_MAGIC = b"VWF1"


def derive_key(master: bytes, salt: bytes, info: bytes) -> bytes:
    """A 256-bit subkey bound to ``salt`` and to the purpose named by ``info``."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(master)


class Sealer:
    """Encrypts and decrypts messages under one subkey (reusable; thread-safe)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes | None = None) -> bytes:
        """nonce || ciphertext || tag."""
        nonce, sealed = self.seal_parts(plaintext, aad)
        return nonce + sealed

    def seal_parts(self, plaintext: bytes, aad: bytes | None = None) -> tuple[bytes, bytes]:
        """What :meth:`seal` returns, as (nonce, ciphertext || tag), for a caller that copies
        both into a buffer anyway (joining them would copy every blob once more)."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce, self._aead.encrypt(nonce, plaintext, aad)

    def open(
        self, sealed: bytes | memoryview, aad: bytes | None = None, what: str = "data"
    ) -> bytes:
        """Authenticate and decrypt; IntegrityError names ``what`` when it fails."""
        if len(sealed) < OVERHEAD:
            raise IntegrityError(f"{what} is truncated")
        try:
            return self._aead.decrypt(bytes(sealed[:NONCE_SIZE]), sealed[NONCE_SIZE:], aad)
        except InvalidTag:
            raise IntegrityError(f"{what} failed authentication (damaged or wrong key)") from None


def seal_file(master: bytes, kind: str, payload: bytes) -> bytes:
    """Encrypt a stand-alone repository file: magic, salt, then sealed payload.

    The kind (``index``, ``snapshot`` ...) is authenticated so one file cannot
    be passed off as another.
    """
    salt = os.urandom(SALT_SIZE)
    aad = FILE_MAGIC + kind.encode()
    sealed = Sealer(derive_key(master, salt, b"vaultwatch file " + kind.encode())).seal(
        payload, aad
    )
    return FILE_MAGIC + salt + sealed


def open_file(master: bytes, kind: str, data: bytes, name: str) -> bytes:
    """Decrypt what :func:`seal_file` wrote; IntegrityError names the object."""
    if data[:4] != FILE_MAGIC or len(data) < 4 + SALT_SIZE + OVERHEAD:
        raise IntegrityError(f"{name} is not a vaultwatch {kind} file (bad header)")
    salt = data[4 : 4 + SALT_SIZE]
    aad = FILE_MAGIC + kind.encode()
    sealer = Sealer(derive_key(master, salt, b"vaultwatch file " + kind.encode()))
    return sealer.open(data[4 + SALT_SIZE :], aad, what=name)


def pack_u32(value: int) -> bytes:
    """Little-endian u32, the integer encoding of every binary structure."""
    return struct.pack("<I", value)
