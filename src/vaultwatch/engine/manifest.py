"""Reference manifests: ``manifests/<snapshot id>``, what a snapshot needs, readable without a key.

The service applies retention to managed vaults without the customer's key.
For that it must know, for every snapshot, when and where it was made and
which packs hold the data it reaches. The agent writes this plaintext JSON
next to each snapshot, *before* the snapshot itself (so a snapshot written
by the agent always has one; a manifest whose snapshot never arrived is an
interrupted backup). It names the snapshot's packs and nothing about the
files: pack ids are hashes of encrypted bytes.

The gateway adds a ``received`` stamp (which agent uploaded it, and when)
that the uploading agent cannot forge.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.snapshot import Snapshot

MANIFESTS = "manifests/"
#: The tag that names the backup set a snapshot was made for (``set:www``).
SET_TAG_PREFIX = "set:"
MANIFEST_VERSION = 1
MAX_TEXT = 4096
MAX_ITEMS = 1000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def manifest_name(snapshot_id: str) -> str:
    """The store name of a snapshot's manifest."""
    return f"{MANIFESTS}{snapshot_id}"


def backup_set_of(tags: list[str]) -> str | None:
    """The backup set a snapshot's tags name (None for snapshots made outside the agent)."""
    for tag in tags:
        if tag.startswith(SET_TAG_PREFIX):
            return tag[len(SET_TAG_PREFIX) :]
    return None


@dataclass(frozen=True)
class Received:
    """The gateway's stamp: who uploaded the manifest, and when (the server's clock)."""

    agent_id: str
    hostname: str
    at: datetime

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"agent": self.agent_id, "hostname": self.hostname, "at": self.at.isoformat()}


@dataclass
class Manifest:
    """One snapshot's references and the facts retention groups and orders it by."""

    snapshot: str
    time: datetime
    hostname: str
    paths: list[str]
    tags: list[str]
    packs: list[str]
    backup_set: str | None = None
    parent: str | None = None
    received: Received | None = None

    @classmethod
    def describing(cls, snapshot_id: str, snapshot: Snapshot, packs: frozenset[bytes]) -> Manifest:
        """The manifest of a snapshot about to be stored, whose data lies in ``packs``."""
        return cls(
            snapshot=snapshot_id,
            time=snapshot.time,
            hostname=snapshot.hostname,
            paths=list(snapshot.paths),
            tags=list(snapshot.tags),
            packs=[p.hex() for p in packs],
            backup_set=backup_set_of(snapshot.tags),
            parent=snapshot.parent,
        )

    @property
    def name(self) -> str:
        """Where it is stored."""
        return manifest_name(self.snapshot)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (packs sorted, so equal manifests are equal bytes)."""
        doc: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "snapshot": self.snapshot,
            "time": self.time.astimezone(UTC).isoformat(),
            "hostname": self.hostname,
            "paths": list(self.paths),
            "tags": list(self.tags),
            "backup_set": self.backup_set,
            "parent": self.parent,
            "packs": sorted(self.packs),
        }
        if self.received is not None:
            doc["received"] = self.received.to_dict()
        return doc

    def to_json(self) -> bytes:
        """Serialized."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, name: str | None = None) -> Manifest:
        """Parse and validate; IntegrityError names what is wrong."""
        where = name or "manifest"
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise TypeError("not an object")
            if int(doc["version"]) > MANIFEST_VERSION:
                raise ValueError(f"version {doc['version']} is newer than this program supports")
            snapshot = _hex(doc["snapshot"], "snapshot")
            if name is not None and name != manifest_name(snapshot):
                raise ValueError(f"names snapshot {snapshot[:8]}, not its own")
            time = _aware(doc["time"], "time")
            packs = [_hex(p, "pack") for p in _list(doc["packs"], "packs", limit=None)]
            received = None
            if doc.get("received") is not None:
                stamp = doc["received"]
                received = Received(
                    _text(stamp["agent"], "received.agent"),
                    _text(stamp["hostname"], "received.hostname"),
                    _aware(stamp["at"], "received.at"),
                )
            parent = doc.get("parent")
            backup_set = doc.get("backup_set")
            return cls(
                snapshot=snapshot,
                time=time,
                hostname=_text(doc["hostname"], "hostname"),
                paths=[_text(p, "paths") for p in _list(doc["paths"], "paths")],
                tags=[_text(t, "tags") for t in _list(doc.get("tags", []), "tags")],
                packs=packs,
                backup_set=_text(backup_set, "backup_set") if backup_set is not None else None,
                parent=_hex(parent, "parent") if parent is not None else None,
                received=received,
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{where} is not a valid reference manifest: {exc}") from None


def _hex(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ValueError(f"{what} must be 64 lower-case hex digits")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ValueError(f"{what} must be a string of at most {MAX_TEXT} characters")
    return value


def _list(value: Any, what: str, limit: int | None = MAX_ITEMS) -> list[Any]:
    if not isinstance(value, list) or (limit is not None and len(value) > limit):
        raise ValueError(f"{what} must be a list" + (f" of at most {limit}" if limit else ""))
    return value


def _aware(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be an ISO 8601 time")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{what} must carry its UTC offset")
    return moment
