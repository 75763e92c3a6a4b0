"""Key slots: passphrase (Argon2id) and escrow (X25519) wrapping of the master key."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultwatch.engine import keys
from vaultwatch.engine.crypto import derive_key
from vaultwatch.engine.errors import (
    IntegrityError,
    KeySlotError,
    RepositoryExistsError,
    WrongPassphraseError,
)
from vaultwatch.engine.keys import (
    ESCROW,
    PASSPHRASE,
    KdfParams,
    KeySlot,
    MasterKey,
    escrow_slot,
    fingerprint,
    load_escrow_private_key,
    load_escrow_public_key,
    load_slots,
    passphrase_slot,
    unlock,
)
from vaultwatch.engine.repository import ChunkerParams, Repository
from vaultwatch.store.errors import RepositoryNotFoundError
from vaultwatch.store.local import LocalStore

FAST = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
MASTER = MasterKey(bytes(range(32)), bytes(range(32, 64)), 123_456)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "repo")
    s.create_if_missing()
    return s


def _doc(slot: KeySlot) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(slot.to_json())
    return doc


def _reparse(doc: dict[str, Any], slot_id: str = "s") -> KeySlot:
    return KeySlot.from_json(slot_id, json.dumps(doc).encode())


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# -- the master key ---------------------------------------------------------------------------


def test_master_key_round_trips_through_its_json() -> None:
    assert MasterKey.from_bytes(MASTER.to_bytes()) == MASTER
    doc = json.loads(MASTER.to_bytes())
    assert set(doc) == {"enc_key", "id_key", "chunker_seed"}
    assert base64.b64decode(doc["enc_key"]) == MASTER.enc_key


def test_generated_master_keys_are_random() -> None:
    a, b = MasterKey.generate(), MasterKey.generate()
    assert len(a.enc_key) == len(a.id_key) == 32
    assert a.enc_key != b.enc_key and a.id_key != b.id_key and a.enc_key != a.id_key
    assert 0 <= a.chunker_seed < 2**31


# -- passphrase slots -------------------------------------------------------------------------


def test_passphrase_slot_unlocks_with_its_passphrase_only() -> None:
    slot = passphrase_slot(MASTER, "correct horse", FAST)
    assert slot.kind == PASSPHRASE
    assert slot.unlock_with_passphrase("correct horse") == MASTER
    assert slot.unlock_with_passphrase("correct horsE") is None
    assert slot.unlock_with_passphrase("") is None


def test_passphrase_slot_json_round_trip() -> None:
    slot = passphrase_slot(MASTER, "pw", FAST)
    doc = _doc(slot)
    assert doc["version"] == 1
    assert doc["kind"] == "passphrase"
    assert doc["kdf"]["alg"] == "argon2id"
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 16
    assert (doc["kdf"]["time_cost"], doc["kdf"]["memory_kib"], doc["kdf"]["parallelism"]) == (
        1,
        8192,
        1,
    )
    again = KeySlot.from_json(slot.slot_id, slot.to_json())
    assert again.unlock_with_passphrase("pw") == MASTER
    assert again.name == f"keys/{slot.slot_id}"


def test_passphrase_slot_decrypts_by_hand() -> None:
    """data = nonce | AES-256-GCM(Argon2id(passphrase, salt), master JSON, "vaultwatch key slot") | tag."""
    doc = _doc(passphrase_slot(MASTER, "pässphrase", FAST))
    kdf = doc["kdf"]
    kek = hash_secret_raw(
        "pässphrase".encode(),
        base64.b64decode(kdf["salt"]),
        time_cost=kdf["time_cost"],
        memory_cost=kdf["memory_kib"],
        parallelism=kdf["parallelism"],
        hash_len=32,
        type=Type.ID,
    )
    data = base64.b64decode(doc["data"])
    plain = AESGCM(kek).decrypt(data[:12], data[12:], b"vaultwatch key slot")
    assert MasterKey.from_bytes(plain) == MASTER


def test_each_slot_has_its_own_salt_and_id() -> None:
    a, b = passphrase_slot(MASTER, "pw", FAST), passphrase_slot(MASTER, "pw", FAST)
    assert a.slot_id != b.slot_id
    assert a.kdf["salt"] != b.kdf["salt"]
    assert a.sealed != b.sealed


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(KeySlotError):
        passphrase_slot(MASTER, "", FAST)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_tampered_ciphertext_refuses(data: st.DataObject) -> None:
    slot = passphrase_slot(MASTER, "pw", FAST)
    sealed = bytearray(slot.sealed)
    sealed[data.draw(st.integers(0, len(sealed) - 1))] ^= data.draw(st.integers(1, 255))
    doc = _doc(slot)
    doc["data"] = keys.b64(bytes(sealed))
    assert _reparse(doc).unlock_with_passphrase("pw") is None


@pytest.mark.parametrize(
    "change",
    [
        {"salt": keys.b64(b"\x00" * 16)},
        {"time_cost": 2},
        {"memory_kib": 16384},
        {"parallelism": 2},
    ],
)
def test_tampered_kdf_parameters_refuse(change: dict[str, Any]) -> None:
    slot = passphrase_slot(MASTER, "pw", FAST)
    doc = _doc(slot)
    doc["kdf"].update(change)
    assert _reparse(doc).unlock_with_passphrase("pw") is None


def test_multiple_slots_open_the_same_master(store: LocalStore) -> None:
    slots = [passphrase_slot(MASTER, pw, FAST) for pw in ("alpha", "beta", "gamma")]
    for s in slots:
        store.put(s.name, s.to_json())
    for pw, s in zip(("alpha", "beta", "gamma"), slots, strict=True):
        master, used = unlock(store, pw)
        assert master == MASTER
        assert used.slot_id == s.slot_id
    with pytest.raises(WrongPassphraseError):
        unlock(store, "delta")
    assert {s.slot_id for s in load_slots(store)} == {s.slot_id for s in slots}


# -- escrow slots ---------------------------------------------------------------------------


def test_escrow_slot_round_trip_and_refusal() -> None:
    service = X25519PrivateKey.generate()
    slot = escrow_slot(MASTER, service.public_key())
    assert slot.kind == ESCROW
    assert slot.recipient == fingerprint(service.public_key())
    again = KeySlot.from_json(slot.slot_id, slot.to_json())
    assert again.unlock_with_escrow(service) == MASTER
    assert again.unlock_with_escrow(X25519PrivateKey.generate()) is None


def test_escrow_slot_json_and_decrypt_by_hand() -> None:
    service = X25519PrivateKey.generate()
    doc = _doc(escrow_slot(MASTER, service.public_key()))
    assert doc["alg"] == "x25519-hkdf-sha256-aes256gcm"
    assert "kdf" not in doc
    eph = base64.b64decode(doc["ephemeral_public"])
    assert len(eph) == 32
    assert doc["recipient"] == _raw_public(service.public_key()).hex()[:16]
    shared = service.exchange(X25519PublicKey.from_public_bytes(eph))
    kek = derive_key(shared, eph + _raw_public(service.public_key()), b"vaultwatch escrow")
    data = base64.b64decode(doc["data"])
    plain = AESGCM(kek).decrypt(data[:12], data[12:], b"vaultwatch key slot")
    assert MasterKey.from_bytes(plain) == MASTER


def test_escrow_slot_tampering_refuses() -> None:
    service = X25519PrivateKey.generate()
    slot = escrow_slot(MASTER, service.public_key())
    doc = _doc(slot)
    sealed = bytearray(slot.sealed)
    sealed[20] ^= 1
    assert _reparse({**doc, "data": keys.b64(bytes(sealed))}).unlock_with_escrow(service) is None
    other_eph = _raw_public(X25519PrivateKey.generate().public_key())
    assert (
        _reparse({**doc, "ephemeral_public": keys.b64(other_eph)}).unlock_with_escrow(service)
        is None
    )
    assert _reparse({**doc, "recipient": "0" * 16}).unlock_with_escrow(service) is None


def test_escrow_pem_loading() -> None:
    key = X25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert fingerprint(load_escrow_private_key(pem).public_key()) == fingerprint(key.public_key())
    assert fingerprint(load_escrow_public_key(pub_pem)) == fingerprint(key.public_key())
    other = Ed25519PrivateKey.generate()
    with pytest.raises(KeySlotError):
        load_escrow_private_key(
            other.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with pytest.raises(KeySlotError):
        load_escrow_public_key(
            other.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


# -- malformed slots ------------------------------------------------------------------------


def _malformed_docs() -> list[bytes]:
    pw = _doc(passphrase_slot(MASTER, "pw", FAST))
    esc = _doc(escrow_slot(MASTER, X25519PrivateKey.generate().public_key()))
    return [
        b"",
        b"not json",
        b"[]",
        json.dumps({k: v for k, v in pw.items() if k != "kind"}).encode(),
        json.dumps({k: v for k, v in pw.items() if k != "data"}).encode(),
        json.dumps({**pw, "data": "***not base64***"}).encode(),
        json.dumps({**pw, "kdf": {k: v for k, v in pw["kdf"].items() if k != "salt"}}).encode(),
        json.dumps({**pw, "kdf": {**pw["kdf"], "time_cost": "many"}}).encode(),
        json.dumps({**pw, "kdf": {**pw["kdf"], "time_cost": 0}}).encode(),
        json.dumps({**pw, "kdf": {**pw["kdf"], "memory_kib": 4}}).encode(),
        json.dumps({**pw, "kdf": {**pw["kdf"], "parallelism": 0}}).encode(),
        json.dumps({**pw, "kdf": None}).encode(),
        json.dumps({**esc, "ephemeral_public": keys.b64(b"short")}).encode(),
        json.dumps({k: v for k, v in esc.items() if k != "ephemeral_public"}).encode(),
    ]


@pytest.mark.parametrize("data", _malformed_docs())
def test_malformed_slot_is_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError, match="keys/bad"):
        KeySlot.from_json("bad", data)


def test_a_damaged_slot_file_does_not_lock_the_owner_out(store: LocalStore) -> None:
    good = passphrase_slot(MASTER, "pw", FAST)
    store.put(good.name, good.to_json())
    for i, data in enumerate(_malformed_docs()):
        store.put(f"keys/{i:02d}", data)
    with pytest.raises(IntegrityError):  # listing still reports the damage
        load_slots(store)
    assert len(load_slots(store, skip_malformed=True)) == 1
    master, slot = unlock(store, "pw")
    assert master == MASTER
    assert slot.slot_id == good.slot_id
    with pytest.raises(WrongPassphraseError):
        unlock(store, "wrong")


# -- repository-level key operations ------------------------------------------------------


def _init(store: LocalStore, **kwargs: Any) -> Repository:
    return Repository.init(
        store, "first", kdf=FAST, chunker=ChunkerParams(1024, 4096, 16384), **kwargs
    )


def test_init_and_open(store: LocalStore) -> None:
    repo = _init(store)
    assert store.exists("config")
    config = json.loads(store.get("config"))
    assert config["version"] == 1
    assert config["chunker"] == {"min_size": 1024, "avg_size": 4096, "max_size": 16384}
    assert config["id"] == repo.config.repo_id
    file_id = repo.save_file("snapshot", "snapshots", b"payload")
    again = Repository.open(store, "first")
    assert again.master == repo.master
    assert again.config == repo.config
    assert again.load_file("snapshot", f"snapshots/{file_id}") == b"payload"
    with pytest.raises(WrongPassphraseError):
        Repository.open(store, "second")


def test_init_refuses_an_existing_repository(store: LocalStore) -> None:
    _init(store)
    with pytest.raises(RepositoryExistsError):
        _init(store)


def test_open_without_a_repository(tmp_path: Path) -> None:
    empty = LocalStore(tmp_path / "empty")
    empty.create_if_missing()
    with pytest.raises(RepositoryNotFoundError):
        Repository.open(empty, "x")


def test_add_and_remove_passphrases(store: LocalStore) -> None:
    repo = _init(store)
    second = repo.add_passphrase("second", FAST)
    assert Repository.open(store, "second").master == repo.master
    assert {s.slot_id for s in repo.key_slots()} == {repo.slot.slot_id, second.slot_id}
    removed = repo.remove_slot(second.slot_id[:10])
    assert removed.slot_id == second.slot_id
    with pytest.raises(WrongPassphraseError):
        Repository.open(store, "second")
    assert Repository.open(store, "first").master == repo.master


def test_remove_slot_refuses_the_last_passphrase(store: LocalStore) -> None:
    service = X25519PrivateKey.generate()
    repo = _init(store, escrow_public=service.public_key())
    assert {s.kind for s in repo.key_slots()} == {PASSPHRASE, ESCROW}
    with pytest.raises(KeySlotError, match="last passphrase"):
        repo.remove_slot(repo.slot.slot_id)
    assert Repository.open(store, "first").master == repo.master
    # With a second passphrase, the first can go; then the second is the last one.
    second = repo.add_passphrase("second", FAST)
    first = repo.slot.slot_id
    with pytest.raises(KeySlotError, match="in use"):
        repo.remove_slot(first)
    repo = Repository.open(store, "second")
    repo.remove_slot(first)
    with pytest.raises(KeySlotError, match="last passphrase"):
        repo.remove_slot(second.slot_id)
    # The escrow slot is not a passphrase: removing it is allowed.
    escrow = next(s for s in repo.key_slots() if s.kind == ESCROW)
    repo.remove_slot(escrow.slot_id)
    assert [s.kind for s in repo.key_slots()] == [PASSPHRASE]


def test_remove_slot_unknown_or_ambiguous_prefix(store: LocalStore) -> None:
    repo = _init(store)
    repo.add_passphrase("second", FAST)
    with pytest.raises(KeySlotError, match="no key slot"):
        repo.remove_slot("not-a-slot")
    with pytest.raises(KeySlotError, match="ambiguous"):
        repo.remove_slot("")
    assert len(repo.key_slots()) == 2


def test_change_passphrase(store: LocalStore) -> None:
    repo = _init(store)
    file_id = repo.save_file("index", "index", b"data written before the change")
    old_slot = repo.slot
    new_slot = repo.change_passphrase("changed", FAST)
    assert repo.slot is new_slot
    assert not store.exists(old_slot.name)
    with pytest.raises(WrongPassphraseError):
        Repository.open(store, "first")
    reopened = Repository.open(store, "changed")
    assert reopened.master == repo.master
    assert reopened.load_file("index", f"index/{file_id}") == b"data written before the change"
    assert [s.slot_id for s in reopened.key_slots()] == [new_slot.slot_id]


def test_open_with_the_escrow_key(store: LocalStore) -> None:
    service = X25519PrivateKey.generate()
    repo = _init(store)
    with pytest.raises(WrongPassphraseError, match="escrow"):
        Repository.open(store, escrow_key=service)
    repo.add_escrow(service.public_key())
    opened = Repository.open(store, escrow_key=service)
    assert opened.master == repo.master
    assert opened.slot.kind == ESCROW
    with pytest.raises(WrongPassphraseError):
        Repository.open(store, escrow_key=X25519PrivateKey.generate())
    # A passphrase never opens an escrow slot, whatever it is.
    with pytest.raises(WrongPassphraseError):
        Repository.open(store, service.private_bytes_raw().hex())


class _CountingStore(LocalStore):
    """A local store that counts the key slots read and the listings of keys/."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.slot_reads = 0
        self.key_listings = 0

    def get(self, name: str) -> bytes:
        if name.startswith("keys/"):
            self.slot_reads += 1
        return super().get(name)

    def list(self, prefix: str = "") -> Any:
        if prefix.startswith("keys/"):
            self.key_listings += 1
        return super().list(prefix)


def test_a_known_slot_is_tried_first_and_alone(tmp_path: Path) -> None:
    store = _CountingStore(tmp_path / "repo")
    store.create_if_missing()
    repo = Repository.init(store, "first", kdf=FAST, label="agent 1 (web-1)")
    added = [repo.add_passphrase(f"server-{i}", FAST, label=f"agent {i}") for i in range(5)]
    last = added[-1]

    store.slot_reads = store.key_listings = 0
    opened = Repository.open(store, "server-4", slot_id=last.slot_id)
    assert opened.slot.slot_id == last.slot_id and opened.master == repo.master
    assert (store.slot_reads, store.key_listings) == (1, 0)

    store.slot_reads = 0
    assert Repository.open(store, "server-4").slot.slot_id == last.slot_id
    assert store.slot_reads == 6  # without the hint, every slot is read

    # A stale or bogus hint still opens with the right passphrase.
    for hint in (added[0].slot_id, "0" * 32, "../config"):
        assert Repository.open(store, "server-4", slot_id=hint).slot.slot_id == last.slot_id
    with pytest.raises(WrongPassphraseError):
        Repository.open(store, "nobody's", slot_id=last.slot_id)


def test_slot_labels_round_trip_and_older_slots_have_none(store: LocalStore) -> None:
    repo = Repository.init(store, "pw", kdf=FAST, label="agent 42 (db-1)")
    labels = {s.slot_id: s.label for s in load_slots(store)}
    assert labels == {repo.slot.slot_id: "agent 42 (db-1)"}
    doc = _doc(passphrase_slot(MASTER, "pw", FAST))
    assert "label" not in doc
    assert KeySlot.from_json("a" * 32, json.dumps(doc).encode()).label == ""
