"""Fixtures for engine tests: fast-KDF repositories on a local store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vaultwatch.engine.keys import KdfParams
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.tree import Tree
from vaultwatch.store.local import LocalStore

FAST_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    """Where the test repository lives."""
    path = tmp_path / "repo"
    LocalStore(path).create_if_missing()
    return path


@pytest.fixture
def repo(repo_path: Path) -> Repository:
    """A fresh repository (cheap Argon2 so tests stay fast)."""
    return Repository.init(LocalStore(repo_path), PASSPHRASE, kdf=FAST_KDF)


def reopen(path: Path) -> Repository:
    """Open the repository again, as a new process would."""
    return Repository.open(LocalStore(path), PASSPHRASE)


def tree_at(repo: Repository, root: bytes, path: Path) -> Tree:
    """The tree of the directory ``path`` (absolute) in the snapshot tree ``root``."""
    tree = repo.load_tree(root)
    for part in path.parts[1:]:
        node = tree.find(os.fsencode(part))
        assert node is not None and node.subtree is not None, f"{part} is not a directory"
        tree = repo.load_tree(node.subtree)
    return tree
