"""Which packs a snapshot needs: the pack list of its reference manifest.

Every tree blob (with the parts of a split directory) and every content blob
a snapshot reaches lives in some pack; the manifest lists the union. A directory's packs are remembered by its tree
id, so the next snapshot of a continuous set (which shares every unchanged
subtree with its parent) only visits the directories that changed: the
remembered sets are reused for the rest. What is remembered is bounded by the
number of pack ids held, the least recently used going first.
"""

from __future__ import annotations

from collections import OrderedDict

from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.tree import DIR

DEFAULT_MAX_IDS = 500_000


class PackReferences:
    """Pack ids per tree, remembered across the snapshots of one repository."""

    def __init__(self, repo: Repository, *, max_ids: int = DEFAULT_MAX_IDS) -> None:
        self.repo = repo
        self.max_ids = max_ids
        self._memo: OrderedDict[bytes, frozenset[bytes]] = OrderedDict()
        self._held = 0

    def packs(self, root: bytes) -> frozenset[bytes]:
        """Every pack holding a blob the tree ``root`` reaches (itself included).

        IntegrityError when a blob is in no indexed pack: such a snapshot
        must not be written.
        """
        known = self._memo
        done: dict[bytes, frozenset[bytes]] = {}
        stack: list[tuple[bytes, bool]] = [(root, False)]
        while stack:
            tree_id, expanded = stack.pop()
            if tree_id in done or tree_id in known:
                continue
            tree = self.repo.load_tree(tree_id)
            subtrees = [n.subtree for n in tree.nodes if n.type == DIR and n.subtree is not None]
            if not expanded:
                todo = [s for s in subtrees if s not in done and s not in known]
                if todo:
                    self.repo.cache_trees(todo)
                    stack.append((tree_id, True))
                    stack.extend((s, False) for s in todo)
                    continue
            blobs = {tree_id, *tree.parts, *(b for n in tree.nodes for b in n.content)}
            where = self.repo.lookup_many(blobs)
            if len(where) != len(blobs):
                missing = next(b for b in blobs if b not in where)
                raise IntegrityError(
                    f"blob {missing.hex()[:8]} of tree {tree_id.hex()[:8]} is in no indexed pack"
                )
            packs = {loc.pack_id for loc in where.values()}
            for sub in subtrees:
                packs |= done[sub] if sub in done else known[sub]
            done[tree_id] = frozenset(packs)
        result = done[root] if root in done else known[root]
        self._remember(done)
        if root in known:
            known.move_to_end(root)
        return result

    def _remember(self, computed: dict[bytes, frozenset[bytes]]) -> None:
        for tree_id, packs in computed.items():
            self._memo[tree_id] = packs
            self._held += len(packs)
        while self._held > self.max_ids and len(self._memo) > 1:
            _, dropped = self._memo.popitem(last=False)
            self._held -= len(dropped)

    def forget(self) -> None:
        """Drop what is remembered (packs were removed: a remembered set may name them)."""
        self._memo.clear()
        self._held = 0
