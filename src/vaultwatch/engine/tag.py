"""Change the tags of snapshots: snapshot files are immutable, so each changed one is replaced.

As restic does it: a new snapshot with the new tags (and ``original``
naming the first snapshot of the line) is written, then the old file is
removed; a reference manifest follows its snapshot. The data is untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

from vaultwatch.engine.errors import EngineError
from vaultwatch.engine.manifest import Manifest, manifest_name
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.store.errors import ObjectNotFoundError


@dataclass(frozen=True)
class TagChange:
    """One snapshot replaced by another that differs in its tags."""

    old: str
    new: str
    tags: list[str]


def new_tags(
    tags: Sequence[str],
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    set_to: Sequence[str] | None = None,
) -> list[str]:
    """The tags after ``--set`` (replace all), then ``--add`` and ``--remove``."""
    out = list(dict.fromkeys(set_to if set_to is not None else tags))
    out.extend(t for t in add if t not in out)
    return [t for t in out if t not in remove]


def change_tags(
    repo: Repository,
    snapshots: Sequence[Snapshot],
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    set_to: Sequence[str] | None = None,
) -> list[TagChange]:
    """Replace every snapshot whose tags change; the changes, in the order given."""
    if set_to is not None and (add or remove):
        raise EngineError("--set replaces all tags: it cannot be combined with --add or --remove")
    if set_to is None and not add and not remove:
        raise EngineError("nothing to do: give --add, --remove or --set")
    changes = []
    with repo.lock(exclusive=False, purpose="tag"):
        for snap in snapshots:
            tags = new_tags(snap.tags, add=add, remove=remove, set_to=set_to)
            if tags == snap.tags:
                continue
            replacement = dataclasses.replace(
                snap, tags=tags, id="", original=snap.original or snap.id
            )
            new_id = _save_with_manifest(repo, snap, replacement)
            repo.delete_snapshot(snap.id)
            changes.append(TagChange(snap.id, new_id, tags))
    return changes


def _save_with_manifest(repo: Repository, old: Snapshot, new: Snapshot) -> str:
    """Save ``new``; a manifest the old snapshot had is written for it first, as the agent does."""
    new_id, data = repo.seal("snapshot", new.to_json())
    with suppress(ObjectNotFoundError):
        name = manifest_name(old.id)
        manifest = Manifest.from_json(repo.store.get(name), name)
        moved = dataclasses.replace(manifest, snapshot=new_id, tags=list(new.tags))
        repo.store.put(manifest_name(new_id), moved.to_json())
    repo.store.put(f"snapshots/{new_id}", data)
    new.id = new_id
    return new_id
