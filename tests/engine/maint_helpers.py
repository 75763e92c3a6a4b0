"""Building small repositories and snapshots for the browse, retention, prune and check tests.

Snapshots are written straight from a path -> content mapping (fixed 4 KiB
chunks, so dedup is predictable), with full control over times, tags, hosts
and metadata. ``backup_dir`` uses the real backup pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from vaultwatch.engine.keys import KdfParams
from vaultwatch.engine.pack import DATA, TREE
from vaultwatch.engine.repository import BlobWriter, Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import DIR, FILE, SYMLINK, Node, Tree
from vaultwatch.store.local import LocalStore

KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
CHUNK = 4096


@dataclass
class File:
    """A file to put in a synthetic snapshot."""

    data: bytes
    mode: int = 0o100644
    mtime_ns: int = 1_700_000_000_000_000_000
    uid: int = 1000
    xattrs: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Symlink:
    """A symbolic link to put in a synthetic snapshot."""

    target: bytes


@dataclass
class Dir:
    """An (empty unless given entries) directory with its own metadata."""

    mode: int = 0o40755
    mtime_ns: int = 1_700_000_000_000_000_000


Spec = dict[str, bytes | File | Symlink | Dir]


def make_repo(tmp_path: Path, *, pack_size: int = 64 * 1024, name: str = "repo") -> Repository:
    """A fresh repository with a cheap KDF and small packs (so tests see many packs)."""
    root = tmp_path / name
    root.mkdir()
    return Repository.init(LocalStore(root), "pw", kdf=KDF, pack_size=pack_size)


def reopen(repo: Repository, *, load_index: bool = True) -> Repository:
    """The same repository opened anew (nothing cached), with its index loaded unless asked not to."""
    assert isinstance(repo.store, LocalStore)
    fresh = Repository.open(LocalStore(repo.store.root), "pw")
    if load_index:
        fresh.load_index()
    return fresh


def _file_node(writer: BlobWriter, name: bytes, f: File) -> Node:
    content = [writer.save(DATA, f.data[i : i + CHUNK])[0] for i in range(0, len(f.data), CHUNK)]
    return Node(
        name=name,
        type=FILE,
        mode=f.mode,
        uid=f.uid,
        mtime_ns=f.mtime_ns,
        size=len(f.data),
        content=content,
        xattrs=dict(f.xattrs),
    )


def _store(writer: BlobWriter, entries: dict[bytes, object]) -> bytes:
    nodes = []
    for name, value in entries.items():
        if isinstance(value, dict):
            meta = value.get(b"\0meta", Dir())
            assert isinstance(meta, Dir)
            children = {k: v for k, v in value.items() if k != b"\0meta"}
            sub = _store(writer, children)
            nodes.append(
                Node(name=name, type=DIR, mode=meta.mode, mtime_ns=meta.mtime_ns, subtree=sub)
            )
        elif isinstance(value, File):
            nodes.append(_file_node(writer, name, value))
        elif isinstance(value, Symlink):
            nodes.append(Node(name=name, type=SYMLINK, mode=0o120777, target=value.target))
        else:
            raise TypeError(value)
    return writer.save(TREE, Tree(nodes).to_bytes())[0]


def _nest(spec: Spec) -> dict[bytes, object]:
    root: dict[bytes, object] = {}
    for path, value in spec.items():
        parts = [os.fsencode(p) for p in path.strip("/").split("/")]
        here = root
        for part in parts[:-1]:
            nxt = here.setdefault(part, {})
            assert isinstance(nxt, dict)
            here = nxt
        if isinstance(value, Dir):
            d = here.setdefault(parts[-1], {})
            assert isinstance(d, dict)
            d[b"\0meta"] = value
        else:
            here[parts[-1]] = File(value) if isinstance(value, bytes) else value
    return root


def snapshot_files(
    repo: Repository,
    spec: Spec,
    *,
    time: datetime | None = None,
    tags: list[str] | None = None,
    hostname: str = "host",
    paths: list[str] | None = None,
) -> Snapshot:
    """Store the files of ``spec`` (absolute path -> content) and a snapshot pointing at them."""
    with repo.writer() as writer:
        tree = _store(writer, _nest(spec))
    snap = Snapshot(
        time or datetime.now(UTC),
        tree,
        paths or sorted({"/" + p.strip("/").split("/")[0] for p in spec}),
        hostname,
        "tester",
        list(tags or []),
    )
    repo.save_snapshot(snap)
    return snap


def backup_dir(repo: Repository, path: Path, **options: object) -> Snapshot:
    """A snapshot of a real directory made by the real backup pipeline."""
    from vaultwatch.engine.backup import BackupOptions, backup

    return backup(repo, [str(path)], BackupOptions(**options)).snapshot  # type: ignore[arg-type]


def read_everything(repo: Repository, snap: Snapshot) -> int:
    """Load (and so verify) every tree and data blob of a snapshot; returns how many blobs."""
    count = 0
    stack = [snap.tree]
    while stack:
        tid = stack.pop()
        tree = Tree.from_bytes(repo.load_blob(tid), tid.hex(), repo.load_blob)
        count += 1 + len(tree.parts)
        for n in tree.nodes:
            for bid in n.content:
                repo.load_blob(bid)
                count += 1
            if n.subtree is not None:
                stack.append(n.subtree)
    return count


def data_bytes(repo: Repository) -> int:
    """Bytes of every pack on disk."""
    return sum(o.size for o in repo.store.list("data/"))


def pack_names(repo: Repository) -> set[str]:
    """Names of every pack on disk."""
    return {o.name for o in repo.store.list("data/")}


def file_path(repo: Repository, name: str) -> Path:
    """The file behind a store object."""
    assert isinstance(repo.store, LocalStore)
    return repo.store.root / name


def flip_byte(repo: Repository, name: str, offset: int) -> None:
    """Corrupt one stored object in place, the way bit rot would."""
    path = file_path(repo, name)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.chmod(0o600)
    path.write_bytes(bytes(data))
