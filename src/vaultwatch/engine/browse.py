"""Reading snapshot trees without restoring them: walk, ls, find, diff and size totals.

Trees are content-addressed, so two equal directories share one tree id.
Everything here leans on that: diff skips a subtree whose id did not change,
find remembers subtrees that held no match, and stats counts each distinct
tree once. Paths are bytes (file names need not be UTF-8) and absolute, the
way the snapshot mirrors them: ``/home/u/docs/report.txt``.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from vaultwatch.engine.errors import EngineError, PathNotFoundError
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import BLOCKDEV, CHARDEV, DIR, FILE, SYMLINK, Node, Tree
from vaultwatch.errors import VaultwatchError

ADDED = "added"
REMOVED = "removed"
MODIFIED = "modified"
TYPE_CHANGED = "type"

# Metadata a user would call "changed"; atime/ctime/inode/device/links move on their own
# (a read, a restore, a copy) and would drown real changes in noise.
_METADATA_FIELDS = ("mode", "uid", "gid", "user", "group", "mtime_ns", "xattrs")


def join_path(prefix: bytes, name: bytes) -> bytes:
    """``prefix/name`` without doubling the root slash."""
    return prefix.rstrip(b"/") + b"/" + name


def display_path(path: bytes) -> str:
    """A path for people (undecodable bytes escaped the way os.fsdecode does)."""
    return os.fsdecode(path)


def _sorted_nodes(tree: Tree) -> list[Node]:
    return sorted(tree.nodes, key=lambda n: n.name)


# -- walking -------------------------------------------------------------------------------


def walk(repo: Repository, tree_id: bytes, prefix: bytes = b"/") -> Iterator[tuple[bytes, Node]]:
    """Every (path, node) below a tree, depth first, sorted by name; a directory precedes its entries.

    Iterative, so a very deep directory chain cannot hit the recursion limit.
    """
    repo.load_index()
    stack: list[tuple[bytes, Iterator[Node]]] = [
        (prefix, iter(_sorted_nodes(repo.load_tree(tree_id))))
    ]
    while stack:
        base, nodes = stack[-1]
        node = next(nodes, None)
        if node is None:
            stack.pop()
            continue
        path = join_path(base, node.name)
        yield path, node
        if node.type == DIR and node.subtree is not None:
            stack.append((path, iter(_sorted_nodes(repo.load_tree(node.subtree)))))


@dataclass
class TreeVisit:
    """One distinct tree met by :func:`walk_trees`: its first path, and the tree or why it failed."""

    path: bytes
    tree_id: bytes
    tree: Tree | None
    error: VaultwatchError | None = None


def walk_trees(
    roots: Iterable[tuple[bytes, bytes]],
    load: Callable[[bytes], Tree],
    *,
    workers: int = 4,
    seen: set[bytes] | None = None,
) -> Iterator[TreeVisit]:
    """Every distinct tree reachable from ``roots`` ((path, tree id) pairs), each once.

    Loads a whole level at a time in a small thread pool: on object storage
    each tree is a round trip, and check and prune visit every tree.
    A tree that fails to load is yielded with its error and not descended.
    """
    seen = set() if seen is None else seen
    level: list[tuple[bytes, bytes]] = []
    for path, tid in roots:
        if tid not in seen:
            seen.add(tid)
            level.append((path, tid))

    def fetch(item: tuple[bytes, bytes]) -> TreeVisit:
        path, tid = item
        try:
            return TreeVisit(path, tid, load(tid))
        except VaultwatchError as exc:
            return TreeVisit(path, tid, None, exc)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tree") as pool:
        while level:
            following: list[tuple[bytes, bytes]] = []
            for visit in pool.map(fetch, level):
                yield visit
                if visit.tree is None:
                    continue
                for node in visit.tree.nodes:
                    if node.subtree is not None and node.subtree not in seen:
                        seen.add(node.subtree)
                        following.append((join_path(visit.path, node.name), node.subtree))
            level = following


# -- ls ------------------------------------------------------------------------------------


def _split(path: str) -> list[bytes]:
    norm = posixpath.normpath("/" + path.strip())
    return [os.fsencode(p) for p in norm.split("/") if p]


def resolve(repo: Repository, snapshot: Snapshot, path: str) -> tuple[bytes, Node | None]:
    """The node at ``path`` in the snapshot (None for the root); PathNotFoundError when absent."""
    repo.load_index()
    parts = _split(path)
    tree_id = snapshot.tree
    node: Node | None = None
    current = b""
    for i, part in enumerate(parts):
        if node is not None:
            if node.type != DIR or node.subtree is None:
                raise PathNotFoundError(
                    f"{display_path(current)} is not a directory in snapshot {snapshot.short_id}"
                )
            tree_id = node.subtree
        found = repo.load_tree(tree_id).find(part)
        current = b"/" + b"/".join(parts[: i + 1])
        if found is None:
            raise PathNotFoundError(
                f"{display_path(current)} does not exist in snapshot {snapshot.short_id}"
            )
        node = found
    return (current or b"/"), node


def ls(
    repo: Repository, snapshot: Snapshot, path: str | None = None, recursive: bool = False
) -> Iterator[tuple[bytes, Node]]:
    """The entries of a directory in a snapshot (all below it when recursive), or the one file named.

    The path is resolved before returning, so a wrong path fails at the call, not mid-listing.
    """
    where, node = resolve(repo, snapshot, path or "/")
    if node is not None and node.type != DIR:
        return iter([(where, node)])
    tree_id = snapshot.tree if node is None else node.subtree
    if tree_id is None:  # a directory that could not be read at backup time
        return iter([])
    if recursive:
        return walk(repo, tree_id, where)
    tree = repo.load_tree(tree_id)
    return iter([(join_path(where, n.name), n) for n in _sorted_nodes(tree)])


# -- find ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindMatch:
    """One node that matched, in one snapshot."""

    snapshot: Snapshot
    path: bytes
    node: Node


class _Matcher:
    """Glob patterns against a name, or against the full path when the pattern has a slash."""

    def __init__(self, patterns: Sequence[str], ignore_case: bool) -> None:
        if not patterns or any(not p for p in patterns):
            raise EngineError("find needs a non-empty pattern")
        self.ignore_case = ignore_case
        self.name_patterns = [self._fold(p) for p in patterns if "/" not in p]
        self.path_patterns = [self._fold(p) for p in patterns if "/" in p]

    def _fold(self, text: str) -> str:
        return text.lower() if self.ignore_case else text

    def matches(self, path: bytes, name: bytes) -> bool:
        if self.name_patterns:
            text = self._fold(os.fsdecode(name))
            if any(fnmatch.fnmatchcase(text, p) for p in self.name_patterns):
                return True
        if self.path_patterns:
            text = self._fold(os.fsdecode(path))
            if any(fnmatch.fnmatchcase(text, p) for p in self.path_patterns):
                return True
        return False


def find(
    repo: Repository,
    snapshots: Iterable[Snapshot],
    pattern: str | Sequence[str],
    *,
    ignore_case: bool = False,
    node_type: str | None = None,
) -> Iterator[FindMatch]:
    """Nodes whose name (or, for patterns containing ``/``, full path) matches a glob.

    Case-sensitive unless ``ignore_case``. A subtree found to hold no match is
    remembered by id, so the many unchanged directories shared by older
    snapshots are read once, not once per snapshot.
    """
    matcher = _Matcher([pattern] if isinstance(pattern, str) else list(pattern), ignore_case)
    repo.load_index()
    by_path = bool(matcher.path_patterns)
    barren: set[tuple[bytes, bytes]] = set()  # (tree id, prefix or b"") known to hold no match

    for snap in snapshots:
        # frame: [prefix, node iterator, memo key, found anything]
        root_key = (snap.tree, b"/" if by_path else b"")
        if root_key in barren:
            continue
        stack: list[tuple[bytes, Iterator[Node], tuple[bytes, bytes], list[bool]]] = [
            (b"/", iter(_sorted_nodes(repo.load_tree(snap.tree))), root_key, [False])
        ]
        while stack:
            base, nodes, key, found = stack[-1]
            node = next(nodes, None)
            if node is None:
                stack.pop()
                if not found[0]:
                    barren.add(key)
                elif stack:
                    stack[-1][3][0] = True
                continue
            path = join_path(base, node.name)
            if matcher.matches(path, node.name) and (node_type is None or node.type == node_type):
                found[0] = True
                yield FindMatch(snap, path, node)
            if node.type == DIR and node.subtree is not None:
                sub_key = (node.subtree, path if by_path else b"")
                if sub_key not in barren:
                    sub = repo.load_tree(node.subtree)
                    stack.append((path, iter(_sorted_nodes(sub)), sub_key, [False]))


# -- diff ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference between two snapshots.

    ``kind`` is added, removed, modified or type; a modification says whether
    the content, the metadata or both changed.
    """

    path: bytes
    kind: str
    old: Node | None
    new: Node | None
    content: bool = False
    metadata: bool = False

    @property
    def code(self) -> str:
        """restic's one-letter code: + - M (content) U (metadata only) T (type)."""
        if self.kind == ADDED:
            return "+"
        if self.kind == REMOVED:
            return "-"
        if self.kind == TYPE_CHANGED:
            return "T"
        return "M" if self.content else "U"

    @property
    def display(self) -> str:
        """The path for people, with a trailing slash on directories."""
        node = self.new or self.old
        text = display_path(self.path)
        return text + "/" if node is not None and node.type == DIR else text


def content_changed(a: Node, b: Node) -> bool:
    """Whether two nodes of the same type hold different data."""
    if a.type == FILE:
        return a.content != b.content or a.size != b.size
    if a.type == SYMLINK:
        return a.target != b.target
    if a.type in (CHARDEV, BLOCKDEV):
        return a.rdev != b.rdev
    return False


def metadata_changed(a: Node, b: Node) -> bool:
    """Whether permissions, owner, mtime or extended attributes differ."""
    return any(getattr(a, f) != getattr(b, f) for f in _METADATA_FIELDS)


def _whole(
    repo: Repository, path: bytes, node: Node, kind: str, old_side: bool
) -> Iterator[Change]:
    """A node that exists on one side only, and everything below it."""
    yield Change(path, kind, node if old_side else None, None if old_side else node)
    if node.type == DIR and node.subtree is not None:
        for p, n in walk(repo, node.subtree, path):
            yield Change(p, kind, n if old_side else None, None if old_side else n)


def _level(
    repo: Repository, prefix: bytes, a_id: bytes | None, b_id: bytes | None
) -> Iterator[Change | tuple[bytes, bytes | None, bytes | None] | Iterator[Change]]:
    """One directory's changes in name order; a tuple asks the caller to descend into a pair of subtrees."""
    a_nodes = {n.name: n for n in repo.load_tree(a_id).nodes} if a_id is not None else {}
    b_nodes = {n.name: n for n in repo.load_tree(b_id).nodes} if b_id is not None else {}
    for name in sorted(a_nodes.keys() | b_nodes.keys()):
        old, new = a_nodes.get(name), b_nodes.get(name)
        path = join_path(prefix, name)
        if new is None and old is not None:
            yield _whole(repo, path, old, REMOVED, old_side=True)
        elif old is None and new is not None:
            yield _whole(repo, path, new, ADDED, old_side=False)
        elif old is not None and new is not None:
            if old.type != new.type:
                yield Change(path, TYPE_CHANGED, old, new, content=True)
                # What was below the old directory is gone; what is below the new one is new.
                if old.type == DIR and old.subtree is not None:
                    yield (path, old.subtree, None)
                if new.type == DIR and new.subtree is not None:
                    yield (path, None, new.subtree)
                continue
            data = content_changed(old, new)
            meta = metadata_changed(old, new)
            if data or meta:
                yield Change(path, MODIFIED, old, new, content=data, metadata=meta)
            if old.type == DIR and old.subtree != new.subtree:
                yield (path, old.subtree, new.subtree)


def diff_trees(
    repo: Repository, a_tree: bytes | None, b_tree: bytes | None, prefix: bytes = b"/"
) -> Iterator[Change]:
    """Changes from tree a to tree b, depth first in path order; equal subtree ids are skipped unread."""
    if a_tree == b_tree:
        return
    repo.load_index()
    stack: list[Iterator[Change | tuple[bytes, bytes | None, bytes | None] | Iterator[Change]]]
    stack = [_level(repo, prefix, a_tree, b_tree)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, Change):
            yield item
        elif isinstance(item, tuple):
            path, a_id, b_id = item
            stack.append(_level(repo, path, a_id, b_id))
        else:
            stack.append(item)


def diff(repo: Repository, snap_a: Snapshot, snap_b: Snapshot) -> list[Change]:
    """What changed from snapshot a to snapshot b, sorted by path."""
    return list(diff_trees(repo, snap_a.tree, snap_b.tree))


@dataclass
class DiffSummary:
    """Counts of a diff, the way restic prints them under the list."""

    added: int = 0
    removed: int = 0
    modified: int = 0
    type_changed: int = 0
    added_bytes: int = 0
    removed_bytes: int = 0


def summarize(changes: Iterable[Change]) -> DiffSummary:
    """Totals of a list of changes (file sizes for added/removed bytes)."""
    s = DiffSummary()
    for c in changes:
        if c.kind == ADDED:
            s.added += 1
        elif c.kind == REMOVED:
            s.removed += 1
        elif c.kind == MODIFIED:
            s.modified += 1
        else:
            s.type_changed += 1
        gone = c.kind == REMOVED or (c.kind != ADDED and c.content)
        came = c.kind == ADDED or (c.kind != REMOVED and c.content)
        if gone and c.old is not None and c.old.type == FILE:
            s.removed_bytes += c.old.size
        if came and c.new is not None and c.new.type == FILE:
            s.added_bytes += c.new.size
    return s


# -- stats ---------------------------------------------------------------------------------


@dataclass
class Stats:
    """Totals over one or more snapshots.

    files/dirs/symlinks/other and ``total_size`` count what a restore would
    write (per snapshot, so the same file in two snapshots counts twice);
    ``blobs``, ``raw_size`` and ``stored_size`` count distinct blobs, i.e. what
    the repository really holds for these snapshots after dedup.
    """

    snapshots: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    other: int = 0
    total_size: int = 0
    blobs: int = 0
    raw_size: int = 0
    stored_size: int = 0
    missing_blobs: int = 0


@dataclass
class _Totals:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    other: int = 0
    size: int = 0

    def add(self, other: _Totals) -> None:
        self.files += other.files
        self.dirs += other.dirs
        self.symlinks += other.symlinks
        self.other += other.other
        self.size += other.size


@dataclass
class _StatsWalk:
    memo: dict[bytes, _Totals] = field(default_factory=dict)
    blobs: set[bytes] = field(default_factory=set)


def _tree_totals(repo: Repository, root: bytes, state: _StatsWalk) -> _Totals:
    """Post-order without recursion; each distinct tree is totalled once and reused."""
    stack: list[tuple[bytes, bool]] = [(root, False)]
    while stack:
        tid, expanded = stack.pop()
        if tid in state.memo:
            continue
        tree = repo.load_tree(tid)
        if not expanded:
            stack.append((tid, True))
            stack.extend(
                (n.subtree, False)
                for n in tree.nodes
                if n.subtree is not None and n.subtree not in state.memo
            )
            continue
        totals = _Totals()
        state.blobs.add(tid)
        for n in tree.nodes:
            if n.type == FILE:
                totals.files += 1
                totals.size += n.size
                state.blobs.update(n.content)
            elif n.type == DIR:
                totals.dirs += 1
                if n.subtree is not None:
                    totals.add(state.memo[n.subtree])
            elif n.type == SYMLINK:
                totals.symlinks += 1
            else:
                totals.other += 1
        state.memo[tid] = totals
    return state.memo[root]


def stats(repo: Repository, snapshots: Snapshot | Sequence[Snapshot]) -> Stats:
    """Files, directories and bytes of the snapshots, and the distinct blobs they use."""
    snaps = [snapshots] if isinstance(snapshots, Snapshot) else list(snapshots)
    repo.load_index()
    state = _StatsWalk()
    out = Stats(snapshots=len(snaps))
    for snap in snaps:
        t = _tree_totals(repo, snap.tree, state)
        out.files += t.files
        out.dirs += t.dirs
        out.symlinks += t.symlinks
        out.other += t.other
        out.total_size += t.size
    for bid in state.blobs:
        loc = repo.lookup(bid)
        if loc is None:
            out.missing_blobs += 1
            continue
        out.blobs += 1
        out.raw_size += loc.raw_length
        out.stored_size += loc.length
    return out
