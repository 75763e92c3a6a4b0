"""Trees: exact round trips of any names and metadata, and a canonical, order-free encoding."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.tree import (
    DIR,
    FANOUT_MAX,
    FILE,
    NODE_TYPES,
    SPLIT_NODES,
    SYMLINK,
    Node,
    Tree,
)

# Text that may hold lone surrogates: what os.fsdecode makes of undecodable xattr names.
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20)
ints = st.integers(-(2**63), 2**63 - 1)
uints = st.integers(0, 2**64 - 1)
ids = st.binary(min_size=32, max_size=32)
non_utf8 = st.binary(min_size=1, max_size=40).filter(lambda b: not _is_utf8(b))


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


names = st.one_of(st.binary(max_size=60), non_utf8, st.text(max_size=30).map(str.encode))

nodes = st.builds(
    Node,
    name=names,
    type=st.sampled_from(NODE_TYPES),
    mode=st.integers(0, 0o7777),
    uid=uints,
    gid=uints,
    user=any_text,
    group=any_text,
    mtime_ns=ints,
    atime_ns=ints,
    ctime_ns=ints,
    inode=uints,
    device=uints,
    links=st.integers(0, 2**32),
    size=uints,
    content=st.lists(ids, max_size=5),
    subtree=st.none() | ids,
    target=st.none() | names,
    rdev=uints,
    xattrs=st.dictionaries(any_text, st.binary(max_size=50), max_size=4),
    error=any_text,
)
trees = st.lists(nodes, max_size=8, unique_by=lambda n: n.name).map(Tree)


@settings(max_examples=150, deadline=None)
@given(node=nodes)
def test_node_round_trip(node: Node) -> None:
    doc = json.loads(json.dumps(node.to_doc()))
    assert Node.from_doc(doc) == node


@settings(max_examples=60, deadline=None)
@given(tree=trees)
def test_tree_round_trip(tree: Tree) -> None:
    data = tree.to_bytes()
    back = Tree.from_bytes(data)
    assert back.nodes == sorted(tree.nodes, key=lambda n: n.name)
    assert back.to_bytes() == data


@settings(max_examples=40, deadline=None)
@given(tree=trees, data=st.data())
def test_encoding_is_independent_of_node_order(tree: Tree, data: st.DataObject) -> None:
    shuffled = Tree(data.draw(st.permutations(tree.nodes)))
    assert shuffled.to_bytes() == tree.to_bytes()


@settings(max_examples=25, deadline=None)
@given(tree=trees)
def test_encoding_is_compact_ascii_json(tree: Tree) -> None:
    data = tree.to_bytes()
    data.decode("ascii")
    assert json.dumps(json.loads(data), separators=(",", ":")).encode() == data


@settings(max_examples=200, deadline=None)
@given(name=names)
def test_name_field_rules(name: bytes) -> None:
    doc = Node(name=name, type=FILE).to_doc()
    if _is_utf8(name):
        assert doc["name"] == name.decode("utf-8")
        assert "name_b64" not in doc
    else:
        assert "name" not in doc
        assert base64.b64decode(doc["name_b64"], validate=True) == name
    assert Node.from_doc(doc).name == name


@settings(max_examples=100, deadline=None)
@given(target=names)
def test_symlink_target_rules(target: bytes) -> None:
    doc = Node(name=b"link", type=SYMLINK, target=target).to_doc()
    if _is_utf8(target):
        assert doc["target"] == target.decode("utf-8")
        assert "target_b64" not in doc
    else:
        assert base64.b64decode(doc["target_b64"]) == target
    assert Node.from_doc(doc).target == target


def test_non_utf8_name_and_target_example() -> None:
    node = Node(name=b"caf\xe9", type=SYMLINK, target=b"/tmp/\xff\xfe")
    doc = node.to_doc()
    assert doc == {"type": "symlink", "name_b64": "Y2Fm6Q==", "target_b64": "L3RtcC///g=="}
    assert Node.from_doc(doc) == node
    assert node.display_name == "caf\udce9"


def test_empty_fields_are_left_out() -> None:
    assert Node(name=b"a", type=FILE).to_doc() == {"type": "file", "name": "a"}
    doc = Node(
        name=b"d",
        type=DIR,
        mode=0o755,
        links=2,
        subtree=b"\x01" * 32,
        content=[b"\x02" * 32],
        xattrs={"user.b": b"2", "user.a": b"\x00"},
    ).to_doc()
    assert doc == {
        "type": "dir",
        "name": "d",
        "mode": 0o755,
        "links": 2,
        "content": ["02" * 32],
        "subtree": "01" * 32,
        "xattrs": {"user.a": "AA==", "user.b": "Mg=="},
    }
    assert list(doc["xattrs"]) == ["user.a", "user.b"]
    # links=1 is the default and left out; links=0 is kept.
    assert "links" not in Node(name=b"a", type=FILE, links=1).to_doc()
    assert Node(name=b"a", type=FILE, links=0).to_doc()["links"] == 0


def test_empty_tree() -> None:
    assert Tree().to_bytes() == b'{"nodes":[]}'
    assert Tree.from_bytes(b'{"nodes":[]}').nodes == []


def test_nodes_are_sorted_by_raw_bytes() -> None:
    tree = Tree([Node(name=n, type=FILE) for n in (b"b", b"\xff", b"B", b"a", b"\x00x")])
    order = [n.name for n in Tree.from_bytes(tree.to_bytes()).nodes]
    assert order == [b"\x00x", b"B", b"a", b"b", b"\xff"]


def test_find() -> None:
    tree = Tree([Node(name=b"a", type=FILE), Node(name=b"\xff", type=DIR)])
    found = tree.find(b"\xff")
    assert found is not None and found.type == DIR
    assert tree.find(b"c") is None


def _node_doc(**extra: Any) -> dict[str, Any]:
    return {"name": "x", "type": "file", **extra}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b"{}",
        b'{"nodes": 5}',
        b'{"nodes": [5]}',
        b'{"nodes": ["x"]}',
        json.dumps({"nodes": [{"type": "file"}]}).encode(),
        json.dumps({"nodes": [{"name": "x"}]}).encode(),
        json.dumps({"nodes": [_node_doc(type="socket")]}).encode(),
        json.dumps({"nodes": [_node_doc(mode="rwx")]}).encode(),
        json.dumps({"nodes": [_node_doc(content=["zz"])]}).encode(),
        json.dumps({"nodes": [_node_doc(content=[5])]}).encode(),
        json.dumps({"nodes": [_node_doc(subtree="xyz")]}).encode(),
        json.dumps({"nodes": [_node_doc(xattrs=[])]}).encode(),
        json.dumps({"nodes": [_node_doc(xattrs="abc")]}).encode(),
        json.dumps({"nodes": [_node_doc(xattrs={"a": 5})]}).encode(),
    ],
)
def test_malformed_trees_are_integrity_errors(data: bytes) -> None:
    with pytest.raises(IntegrityError, match="tree 0123abcd is malformed"):
        Tree.from_bytes(data, "0123abcd" + "0" * 56)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
node_keys = st.sampled_from(
    [
        "name",
        "name_b64",
        "type",
        "mode",
        "content",
        "subtree",
        "target",
        "target_b64",
        "xattrs",
        "links",
        "user",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    nodes_value=st.lists(st.dictionaries(node_keys, json_values, max_size=6), max_size=3)
    | json_values
)
def test_arbitrary_json_parses_or_is_an_integrity_error(nodes_value: Any) -> None:
    data = json.dumps({"nodes": nodes_value}).encode()
    with contextlib.suppress(IntegrityError):
        Tree.from_bytes(data)


def test_parsed_nodes_share_their_type_and_owner_strings() -> None:
    """A snapshot's nodes are held in memory by the thousand: equal strings are one object."""
    tree = Tree([Node(name=b"f%d" % i, type=FILE, user="root", group="staff") for i in range(50)])
    parsed = Tree.from_bytes(tree.to_bytes()).nodes
    assert [n.user for n in parsed] == ["root"] * 50
    for attribute in ("type", "user", "group"):
        assert len({id(getattr(n, attribute)) for n in parsed}) == 1, attribute


# -- split trees -------------------------------------------------------------------------


def _many_nodes(count: int, prefix: str = "entry") -> list[Node]:
    return [
        Node(name=f"{prefix}-{i:06d}".encode(), type=FILE, size=i, content=[bytes([i % 256]) * 32])
        for i in range(count)
    ]


class _Blobs:
    """An in-memory blob store keyed like the repository (content hash)."""

    def __init__(self) -> None:
        self.blobs: dict[bytes, bytes] = {}

    def save(self, data: bytes) -> bytes:
        import hashlib

        bid = hashlib.sha256(data).digest()
        self.blobs[bid] = data
        return bid

    def load(self, bid: bytes) -> bytes:
        return self.blobs[bid]


def test_a_small_directory_keeps_the_single_blob_format() -> None:
    tree = Tree(_many_nodes(SPLIT_NODES))
    store = _Blobs()
    tid = tree.save(store.save)
    assert list(store.blobs) == [tid]
    assert store.blobs[tid] == tree.to_bytes()


def test_a_large_directory_is_split_and_reads_back_whole() -> None:
    nodes = _many_nodes(20_000)
    store = _Blobs()
    tid = Tree(list(reversed(nodes))).save(store.save)
    top = json.loads(store.blobs[tid])
    assert top["count"] == len(nodes) and "nodes" not in top
    assert len(top["parts"]) <= FANOUT_MAX  # two index levels for this many parts
    back = Tree.from_bytes(store.blobs[tid], tid.hex(), store.load)
    assert back.nodes == nodes
    assert set(back.parts) == set(store.blobs) - {tid}
    with pytest.raises(IntegrityError, match="without its parts"):
        Tree.from_bytes(store.blobs[tid], tid.hex())


def test_one_changed_entry_rewrites_one_part_and_the_indexes_above_it() -> None:
    nodes = _many_nodes(10_000)
    store = _Blobs()
    Tree(nodes).save(store.save)
    before = set(store.blobs)
    changed = [
        Node(n.name, n.type, size=n.size + 1) if i == 4321 else n for i, n in enumerate(nodes)
    ]
    inserted = [*changed, Node(name=b"entry-004321x", type=FILE)]
    Tree(inserted).save(store.save)
    new = set(store.blobs) - before
    assert 1 <= len(new) <= 2 + 2  # at most two neighbouring parts, the index levels
    assert sum(len(store.blobs[b]) for b in new) < 20_000


def test_a_split_tree_with_a_wrong_count_is_malformed() -> None:
    store = _Blobs()
    tid = Tree(_many_nodes(2000)).save(store.save)
    doc = json.loads(store.blobs[tid])
    doc["count"] += 1
    bad = json.dumps(doc).encode()
    with pytest.raises(IntegrityError, match="malformed"):
        Tree.from_bytes(bad, "bad", store.load)


def test_split_trees_through_backup_restore_prune_and_check(tmp_path: Path) -> None:
    """A 1,200-file directory: restored exactly, its parts kept by prune and verified by check."""
    from tests.engine.maint_helpers import make_repo, reopen
    from tests.engine.treecompare import describe
    from vaultwatch.engine.backup import BackupOptions, backup
    from vaultwatch.engine.check import BLOB_MISSING, TREE_DAMAGED, check
    from vaultwatch.engine.pack import pack_name
    from vaultwatch.engine.prune import prune
    from vaultwatch.engine.restore import restore
    from vaultwatch.engine.retention import forget_snapshots

    repo = make_repo(tmp_path)
    src = tmp_path / "src"
    wide = src / "a" / "b" / "wide"
    wide.mkdir(parents=True)
    for i in range(1200):
        (wide / f"f{i:05d}.txt").write_text(f"file {i}\n")
    first = backup(repo, [str(src)])
    with open(wide / "f00123.txt", "a") as fh:
        fh.write("one more line\n")
    second = backup(repo, [str(src)], BackupOptions(dirty_paths={os.fsencode(wide)}))
    wide_tree_id = _subtree(repo, second.snapshot.tree, os.fsencode(wide))
    wide_tree = repo.load_tree(wide_tree_id)
    assert len(wide_tree.nodes) == 1200 and wide_tree.parts
    forget_snapshots(repo, [first.snapshot.id])
    prune(repo)
    fresh = reopen(repo)
    target = tmp_path / "restore"
    res = restore(fresh, fresh.find_snapshot("latest"), target)
    assert not res.errors
    assert describe(target / str(src).lstrip("/")) == describe(src)
    assert check(reopen(repo), read_data=True).ok
    # damage one part: check names the directory
    part = wide_tree.parts[len(wide_tree.parts) // 2]
    loc = fresh.lookup(part)
    assert loc is not None
    path = tmp_path / "repo" / pack_name(loc.pack_id)
    data = bytearray(path.read_bytes())
    data[loc.offset + 20] ^= 0xFF
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    result = check(reopen(repo))
    damaged = [p for p in result.errors if p.kind in (TREE_DAMAGED, BLOB_MISSING)]
    assert damaged and damaged[0].path == os.fsdecode(wide)


def _subtree(repo: Any, tree_id: bytes, path: bytes) -> bytes:
    for part in [p for p in path.split(b"/") if p]:
        node = repo.load_tree(tree_id).find(part)
        assert node is not None and node.subtree is not None
        tree_id = node.subtree
    return tree_id


def test_a_large_directory_in_the_single_blob_format_stays_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repositories written before split trees: a 2,000-entry tree in one blob."""
    from tests.engine.maint_helpers import make_repo, reopen
    from tests.engine.treecompare import describe
    from vaultwatch.engine import tree as tree_module
    from vaultwatch.engine.backup import BackupOptions, backup
    from vaultwatch.engine.check import check
    from vaultwatch.engine.restore import restore

    repo = make_repo(tmp_path)
    src = tmp_path / "src"
    wide = src / "wide"
    wide.mkdir(parents=True)
    for i in range(2000):
        (wide / f"f{i:05d}.txt").write_text(f"file {i}\n")
    monkeypatch.setattr(tree_module, "SPLIT_NODES", 1 << 40)
    old = backup(repo, [str(src)])
    monkeypatch.undo()
    old_tree = repo.load_tree(_subtree(repo, old.snapshot.tree, os.fsencode(wide)))
    assert not old_tree.parts and len(old_tree.nodes) == 2000
    (wide / "f00007.txt").write_text("changed\n")
    new = backup(repo, [str(src)], BackupOptions(dirty_paths={os.fsencode(wide)}))
    assert new.files_changed == 1 and new.files_unmodified == 1999
    assert repo.load_tree(_subtree(repo, new.snapshot.tree, os.fsencode(wide))).parts
    fresh = reopen(repo)
    res = restore(fresh, fresh.find_snapshot(old.snapshot.id), tmp_path / "restore")
    assert not res.errors
    assert (tmp_path / "restore" / str(wide).lstrip("/") / "f00007.txt").read_text() == "file 7\n"
    assert check(reopen(repo), read_data=True).ok
    restore(fresh, fresh.find_snapshot(new.snapshot.id), tmp_path / "restore2")
    assert describe(tmp_path / "restore2" / str(src).lstrip("/")) == describe(src)
