"""The master key and the key slots that wrap it.

A repository has one random master key. It is never stored in the clear:
each key slot (``keys/<id>``) holds it sealed either under a passphrase
(Argon2id) or to the service's escrow public key (X25519), so passphrases can
be added, changed and removed without re-encrypting any data, and the
service can run managed restores only where the customer allowed an escrow slot.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from vaultwatch.engine.crypto import Sealer, derive_key
from vaultwatch.engine.errors import IntegrityError, KeySlotError, WrongPassphraseError
from vaultwatch.store.base import Store
from vaultwatch.store.errors import ObjectNotFoundError

PASSPHRASE = "passphrase"
ESCROW = "escrow"
_SLOT_AAD = b"vaultwatch key slot"
_SLOT_ID = re.compile(r"^[0-9a-f]{32}$")


def b64(data: bytes) -> str:
    """Standard base64 text, the encoding of every binary field in JSON."""
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    """Inverse of :func:`b64`."""
    return base64.b64decode(text, validate=True)


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost. The default takes ~0.3 s and 64 MiB here; lower only for tiny devices."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 2

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        """The 256-bit key-encryption key for a passphrase."""
        return hash_secret_raw(
            passphrase.encode(),
            salt,
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            hash_len=32,
            type=Type.ID,
        )


@dataclass(frozen=True)
class MasterKey:
    """Everything secret about a repository: the encryption key, the id key and the chunker seed."""

    enc_key: bytes
    id_key: bytes
    chunker_seed: int

    @classmethod
    def generate(cls) -> MasterKey:
        """A fresh random master key for a new repository."""
        return cls(os.urandom(32), os.urandom(32), secrets.randbelow(2**31))

    def to_bytes(self) -> bytes:
        """The plaintext sealed inside every key slot."""
        doc = {
            "enc_key": b64(self.enc_key),
            "id_key": b64(self.id_key),
            "chunker_seed": self.chunker_seed,
        }
        return json.dumps(doc).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> MasterKey:
        """Parse what :meth:`to_bytes` wrote."""
        doc = json.loads(data)
        return cls(unb64(doc["enc_key"]), unb64(doc["id_key"]), int(doc["chunker_seed"]))


@dataclass
class KeySlot:
    """One ``keys/<id>`` file: the master key sealed to one passphrase or one escrow key."""

    slot_id: str
    kind: str
    created: str
    hostname: str
    username: str
    sealed: bytes
    kdf: dict[str, Any] = field(default_factory=dict)
    ephemeral_public: bytes = b""
    recipient: str = ""
    label: str = ""
    """Whose slot this is (e.g. the agent that unlocks with it), so one can be told from another."""

    @property
    def name(self) -> str:
        """Object name in the store."""
        return f"keys/{self.slot_id}"

    def to_json(self) -> bytes:
        """Serialized slot (plaintext JSON: it holds nothing usable without the secret)."""
        doc: dict[str, Any] = {
            "version": 1,
            "kind": self.kind,
            "created": self.created,
            "hostname": self.hostname,
            "username": self.username,
            "data": b64(self.sealed),
        }
        if self.label:
            doc["label"] = self.label
        if self.kind == PASSPHRASE:
            doc["kdf"] = self.kdf
        else:
            doc["alg"] = "x25519-hkdf-sha256-aes256gcm"
            doc["ephemeral_public"] = b64(self.ephemeral_public)
            doc["recipient"] = self.recipient
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, slot_id: str, data: bytes) -> KeySlot:
        """Parse a slot file; IntegrityError when it is not one."""
        try:
            doc = json.loads(data)
            slot = cls(
                slot_id=slot_id,
                kind=doc["kind"],
                created=doc["created"],
                hostname=doc.get("hostname", ""),
                username=doc.get("username", ""),
                sealed=unb64(doc["data"]),
                kdf=doc.get("kdf", {}),
                ephemeral_public=unb64(doc["ephemeral_public"])
                if "ephemeral_public" in doc
                else b"",
                recipient=doc.get("recipient", ""),
                label=str(doc.get("label", "")),
            )
            # Fail here, not halfway through an unlock, when the parameters are unusable.
            if slot.kind == PASSPHRASE:
                params, _ = slot._kdf_params()
                if (
                    min(params.time_cost, params.parallelism) < 1
                    or params.memory_kib < 8 * params.parallelism
                ):
                    raise ValueError(f"unusable Argon2 parameters {params}")
            elif slot.kind == ESCROW and len(slot.ephemeral_public) != 32:
                raise ValueError("the ephemeral public key is not 32 bytes")
            return slot
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"key slot keys/{slot_id} is malformed: {exc}") from None

    def _kdf_params(self) -> tuple[KdfParams, bytes]:
        k = self.kdf
        return KdfParams(int(k["time_cost"]), int(k["memory_kib"]), int(k["parallelism"])), unb64(
            k["salt"]
        )

    def unlock_with_passphrase(self, passphrase: str) -> MasterKey | None:
        """The master key, or None when the passphrase is not this slot's."""
        params, salt = self._kdf_params()
        try:
            plain = Sealer(params.derive(passphrase, salt)).open(self.sealed, _SLOT_AAD)
        except IntegrityError:
            return None
        return MasterKey.from_bytes(plain)

    def unlock_with_escrow(self, private_key: X25519PrivateKey) -> MasterKey | None:
        """The master key, or None when the escrow key is not this slot's recipient."""
        if fingerprint(private_key.public_key()) != self.recipient:
            return None
        kek = _escrow_kek(
            private_key.exchange(X25519PublicKey.from_public_bytes(self.ephemeral_public)),
            self.ephemeral_public,
            private_key.public_key(),
        )
        try:
            return MasterKey.from_bytes(Sealer(kek).open(self.sealed, _SLOT_AAD))
        except IntegrityError:
            return None


def fingerprint(public_key: X25519PublicKey) -> str:
    """A short stable name for an escrow public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()[:16]


def _escrow_kek(shared: bytes, ephemeral_public: bytes, recipient: X25519PublicKey) -> bytes:
    recipient_raw = recipient.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return derive_key(shared, ephemeral_public + recipient_raw, b"vaultwatch escrow")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _who() -> tuple[str, str]:
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    return socket.gethostname(), user


def passphrase_slot(
    master: MasterKey, passphrase: str, params: KdfParams, *, label: str = ""
) -> KeySlot:
    """A new slot sealing ``master`` under ``passphrase``."""
    if not passphrase:
        raise KeySlotError("the passphrase must not be empty")
    salt = os.urandom(16)
    sealed = Sealer(params.derive(passphrase, salt)).seal(master.to_bytes(), _SLOT_AAD)
    host, user = _who()
    kdf = {
        "alg": "argon2id",
        "salt": b64(salt),
        "time_cost": params.time_cost,
        "memory_kib": params.memory_kib,
        "parallelism": params.parallelism,
    }
    return KeySlot(
        secrets.token_hex(16), PASSPHRASE, _now(), host, user, sealed, kdf=kdf, label=label
    )


def escrow_slot(master: MasterKey, recipient: X25519PublicKey) -> KeySlot:
    """A new slot sealing ``master`` to the service's escrow public key."""
    ephemeral = X25519PrivateKey.generate()
    eph_raw = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    kek = _escrow_kek(ephemeral.exchange(recipient), eph_raw, recipient)
    host, user = _who()
    return KeySlot(
        secrets.token_hex(16),
        ESCROW,
        _now(),
        host,
        user,
        Sealer(kek).seal(master.to_bytes(), _SLOT_AAD),
        ephemeral_public=eph_raw,
        recipient=fingerprint(recipient),
    )


def load_slots(store: Store, *, skip_malformed: bool = False) -> list[KeySlot]:
    """Every key slot of the repository, oldest first."""
    slots = []
    for obj in store.list("keys/"):
        slot_id = obj.name.split("/", 1)[1]
        try:
            slots.append(KeySlot.from_json(slot_id, store.get(obj.name)))
        except ObjectNotFoundError:
            continue
        except IntegrityError:
            if not skip_malformed:
                raise
    return sorted(slots, key=lambda s: (s.created, s.slot_id))


def _preferred_slot(store: Store, slot_id: str) -> KeySlot | None:
    """The slot named ``slot_id``, or None when it is gone, malformed or not a slot id."""
    if not _SLOT_ID.match(slot_id):
        return None
    try:
        return KeySlot.from_json(slot_id, store.get(f"keys/{slot_id}"))
    except (ObjectNotFoundError, IntegrityError):
        return None


def _try_slot(
    slot: KeySlot, passphrase: str | None, escrow_key: X25519PrivateKey | None
) -> MasterKey | None:
    if passphrase is not None and slot.kind == PASSPHRASE:
        return slot.unlock_with_passphrase(passphrase)
    if escrow_key is not None and slot.kind == ESCROW:
        return slot.unlock_with_escrow(escrow_key)
    return None


def unlock(
    store: Store,
    passphrase: str | None = None,
    escrow_key: X25519PrivateKey | None = None,
    *,
    prefer: str | None = None,
) -> tuple[MasterKey, KeySlot]:
    """Open the master key with a passphrase or an escrow private key.

    ``prefer`` names the slot to try first: a vault shared by a hundred
    servers has a hundred passphrase slots, and trying each costs an Argon2
    derivation, so an agent that knows its own slot opens the vault with one.
    A damaged (or planted) slot file must not lock the owner out: it is skipped.
    """
    first = _preferred_slot(store, prefer) if prefer else None
    if first is not None:
        master = _try_slot(first, passphrase, escrow_key)
        if master is not None:
            return master, first
    for slot in load_slots(store, skip_malformed=True):
        if first is not None and slot.slot_id == first.slot_id:
            continue
        master = _try_slot(slot, passphrase, escrow_key)
        if master is not None:
            return master, slot
    what = "passphrase" if passphrase is not None else "escrow key"
    raise WrongPassphraseError(f"wrong {what}: no key slot of this repository opens with it")


def load_escrow_private_key(pem: bytes) -> X25519PrivateKey:
    """Parse a PEM private key; KeySlotError when it is not an X25519 key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, X25519PrivateKey):
        raise KeySlotError("the escrow key must be an X25519 private key")
    return key


def load_escrow_public_key(pem: bytes) -> X25519PublicKey:
    """Parse a PEM public key; KeySlotError when it is not an X25519 key."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, X25519PublicKey):
        raise KeySlotError("the escrow public key must be an X25519 public key")
    return key
