"""``list`` and ``cat``: the repository's objects as they are stored, for people debugging and scripts.

Nothing here interprets or changes data: ``list`` names the objects of one
kind, ``cat`` shows one object decrypted (JSON where it is structured, the
plaintext bytes for a blob).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import zstandard

from vaultwatch.engine.errors import EngineError, IntegrityError
from vaultwatch.engine.index import _PACK_HEAD, INDEX_MAGIC
from vaultwatch.engine.pack import ENTRY_ROW, pack_name, read_trailer
from vaultwatch.engine.repository import Repository

LISTABLE = ("snapshots", "index", "packs", "keys", "locks")
CATABLE = ("config", "snapshot", "index", "pack", "blob", "tree", "key", "lock")
_PREFIXES = {
    "snapshots": "snapshots/",
    "index": "index/",
    "packs": "data/",
    "keys": "keys/",
    "locks": "locks/",
}
_TYPES = {0: "data", 1: "tree"}


def list_ids(repo: Repository, kind: str) -> list[str]:
    """The ids of every object of ``kind`` (one of LISTABLE), sorted."""
    if kind not in _PREFIXES:
        raise EngineError(f"cannot list {kind!r}: choose one of {', '.join(LISTABLE)}")
    return sorted(o.name.rsplit("/", 1)[-1] for o in repo.store.list(_PREFIXES[kind]))


def _unique(repo: Repository, kind: str, ref: str) -> str:
    """The store name of the one object of ``kind`` whose id starts with ``ref``."""
    ref = ref.lower()
    matches = [i for i in list_ids(repo, kind) if ref and i.startswith(ref)]
    if not matches:
        raise EngineError(f"no {kind} object {ref!r}")
    if len(matches) > 1:
        raise EngineError(f"{ref!r} matches {len(matches)} {kind} objects")
    if kind == "packs":
        return pack_name(bytes.fromhex(matches[0]))
    return _PREFIXES[kind] + matches[0]


def _blob_id(ref: str) -> bytes:
    try:
        raw = bytes.fromhex(ref)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise EngineError(f"{ref!r} is not a blob id (64 hex digits)")
    return raw


def decode_index(payload: bytes, name: str) -> list[dict[str, Any]]:
    """A decrypted index file as its packs and their blobs (the layout engine.index describes)."""
    try:
        raw = zstandard.ZstdDecompressor().decompress(payload)
        if raw[:4] != INDEX_MAGIC:
            raise IntegrityError(f"index {name} has a bad header")
        (n_packs,) = struct.unpack_from("<I", raw, 5)
        pos = 9
        heads = []
        for _ in range(n_packs):
            heads.append(_PACK_HEAD.unpack_from(raw, pos))
            pos += _PACK_HEAD.size
        packs = []
        for pid, _salt, count in heads:
            blobs = []
            for _ in range(count):
                bid, kind, offset, length, raw_length = ENTRY_ROW.unpack_from(raw, pos)
                pos += ENTRY_ROW.size
                blobs.append(_blob_doc(bid, kind, offset, length, raw_length))
            packs.append({"id": pid.hex(), "blobs": blobs})
    except (zstandard.ZstdError, struct.error) as exc:
        raise IntegrityError(f"index {name} is damaged: {exc}") from None
    return packs


def _blob_doc(bid: bytes, kind: int, offset: int, length: int, raw_length: int) -> dict[str, Any]:
    return {
        "id": bid.hex(),
        "type": _TYPES.get(kind, str(kind)),
        "offset": offset,
        "length": length,
        "uncompressed_length": raw_length,
    }


def cat(repo: Repository, kind: str, ref: str | None = None) -> Any:
    """One object, decrypted: a JSON-ready value, or bytes for a blob."""
    if kind not in CATABLE:
        raise EngineError(f"cannot cat {kind!r}: choose one of {', '.join(CATABLE)}")
    if kind == "config":
        return json.loads(repo.store.get("config"))
    if ref is None:
        raise EngineError(f"cat {kind} needs an id")
    if kind == "snapshot":
        snap = repo.find_snapshot(ref)
        return json.loads(repo.load_file("snapshot", f"snapshots/{snap.id}"))
    if kind == "index":
        name = _unique(repo, "index", ref)
        return decode_index(repo.load_file("index", name), name)
    if kind == "pack":
        name = _unique(repo, "packs", ref)
        _salt, entries = read_trailer(repo.master.enc_key, repo.store.get(name), name)
        return [_blob_doc(e.blob_id, e.type, e.offset, e.length, e.raw_length) for e in entries]
    if kind in ("key", "lock"):
        return json.loads(repo.store.get(_unique(repo, kind + "s", ref)))
    repo.load_index()
    if kind == "blob":
        return repo.load_blob(_blob_id(ref))
    tree = repo.load_tree(_blob_id(ref))
    return {"nodes": [n.to_doc() for n in tree.nodes]}
