"""Snapshots: the root of one backup, stored as an encrypted JSON file ``snapshots/<id>``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vaultwatch.engine.errors import IntegrityError


@dataclass
class Snapshot:
    """What a backup produced; ``id`` is the hex BLAKE3 of the stored file (set when saved)."""

    time: datetime
    tree: bytes
    paths: list[str]
    hostname: str
    username: str = ""
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    program_version: str = ""
    original: str | None = None  # the snapshot this one replaces (tag) or was copied from (copy)
    id: str = ""

    @property
    def short_id(self) -> str:
        """The 8-digit prefix shown in listings."""
        return self.id[:8]

    def same_origin_as(self, other: Snapshot) -> bool:
        """Whether ``other`` is of the same line of backups: same paths, tags and host."""
        return (
            sorted(self.paths) == sorted(other.paths)
            and sorted(self.tags) == sorted(other.tags)
            and self.hostname == other.hostname
        )

    def totals(self) -> tuple[int, int] | None:
        """(files, bytes) the whole snapshot holds, from its summary; None if it has none.

        Files are the summary's new, changed and unmodified ones (what
        ``files_total`` adds up), so summaries written before that key count too.
        """
        s = self.summary
        try:
            files = int(s["files_new"]) + int(s["files_changed"]) + int(s["files_unmodified"])
            return files, int(s["total_bytes"])
        except (KeyError, TypeError, ValueError):
            return None

    def to_json(self) -> bytes:
        """The plaintext that is encrypted into the snapshot file."""
        doc = {
            "version": 1,
            "time": self.time.astimezone(UTC).isoformat(),
            "tree": self.tree.hex(),
            "paths": self.paths,
            "hostname": self.hostname,
            "username": self.username,
            "tags": self.tags,
            "parent": self.parent,
            "summary": self.summary,
            "program_version": self.program_version,
        }
        if self.original is not None:
            doc["original"] = self.original
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, snapshot_id: str) -> Snapshot:
        """Parse a decrypted snapshot file."""
        try:
            doc = json.loads(data)
            return cls(
                time=datetime.fromisoformat(doc["time"]),
                tree=bytes.fromhex(doc["tree"]),
                paths=list(doc["paths"]),
                hostname=doc["hostname"],
                username=doc.get("username", ""),
                tags=list(doc.get("tags", [])),
                parent=doc.get("parent"),
                summary=dict(doc.get("summary", {})),
                program_version=doc.get("program_version", ""),
                original=doc.get("original"),
                id=snapshot_id,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"snapshot {snapshot_id[:8]} is malformed: {exc}") from None

    def to_summary(self) -> dict[str, Any]:
        """A JSON-friendly description for `--json` output and job reports."""
        return {
            "id": self.id,
            "short_id": self.short_id,
            "time": self.time.isoformat(),
            "tree": self.tree.hex(),
            "paths": self.paths,
            "hostname": self.hostname,
            "username": self.username,
            "tags": self.tags,
            "parent": self.parent,
            "summary": self.summary,
            "original": self.original,
        }
