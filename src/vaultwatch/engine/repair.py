"""``repair index``: rebuild the index from the packs themselves.

Every pack carries its own encrypted blob table, so the index can always be
made again from the packs: after index files were lost or damaged, or when
they list packs that are gone. The new index is written before any old
index file is removed, under the exclusive lock, so an interruption leaves
at worst both. Damaged packs are reported and left out (``check`` and
``prune`` deal with them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.ids import content_hash
from vaultwatch.engine.index import PackListing
from vaultwatch.engine.pack import read_trailer
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import Repository
from vaultwatch.store.errors import ObjectNotFoundError

PACKS_PER_INDEX = 2000


@dataclass
class RepairResult:
    """What the rebuild found and wrote."""

    packs: int = 0
    blobs: int = 0
    index_files_written: int = 0
    index_files_removed: int = 0
    damaged_packs: list[str] = field(default_factory=list)


def repair_index(repo: Repository, progress: Progress | None = None) -> RepairResult:
    """Read every pack's blob table and replace the index files with what the packs hold."""
    progress = progress or Progress()
    result = RepairResult()
    with repo.lock(exclusive=True, purpose="repair index"):
        old = {o.name for o in repo.store.list("index/")}
        names = [o.name for o in repo.store.list("data/")]
        progress.add_total(files=len(names))
        progress.phase = "reading packs"
        listings: list[PackListing] = []
        for name in names:
            progress.check()
            listing = _read_listing(repo, name)
            progress.add(files=1)
            if listing is None:
                result.damaged_packs.append(name)
                continue
            listings.append(listing)
            result.packs += 1
            result.blobs += len(listing[2])
        progress.phase = "writing index"
        written = set()
        for start in range(0, len(listings), PACKS_PER_INDEX):
            written.add(repo.write_index(listings[start : start + PACKS_PER_INDEX]))
        result.index_files_written = len(written)
        for name in sorted(old - written):
            try:
                repo.store.delete(name)
            except ObjectNotFoundError:
                continue
            result.index_files_removed += 1
        repo.forget_index()
    progress.phase = "done"
    return result


def _read_listing(repo: Repository, name: str) -> PackListing | None:
    """A pack's (id, salt, blobs), or None when it is damaged."""
    data = repo.store.get(name)
    pid = content_hash(data)
    if pid.hex() != name.rsplit("/", 1)[-1]:
        return None
    try:
        salt, entries = read_trailer(repo.master.enc_key, data, name)
    except IntegrityError:
        return None
    return pid, salt, entries
