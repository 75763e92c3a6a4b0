"""Walking, listing, finding, diffing and totalling snapshot trees."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests.engine.maint_helpers import (
    Dir,
    File,
    Symlink,
    backup_dir,
    make_repo,
    reopen,
    snapshot_files,
)
from vaultwatch.engine import browse
from vaultwatch.engine.errors import EngineError, PathNotFoundError
from vaultwatch.engine.pack import TREE
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.tree import DIR, FILE, SYMLINK, Node, Tree

BASE = {
    "/home/u/docs/report.txt": b"quarterly report " * 100,
    "/home/u/docs/Notes.MD": b"notes",
    "/home/u/docs/old/draft.txt": b"draft",
    "/home/u/pics/cat.jpg": os.urandom(9000),
    "/home/u/link": Symlink(b"docs/report.txt"),
    "/etc/hosts": b"127.0.0.1 localhost\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return make_repo(tmp_path)


def count_tree_loads(repo: Repository) -> Counter[bytes]:
    """Record every tree the code under test asks for (bypassing nothing)."""
    calls: Counter[bytes] = Counter()
    original = repo.load_tree

    def counting(tree_id: bytes) -> Tree:
        calls[tree_id] += 1
        return original(tree_id)

    repo.load_tree = counting  # type: ignore[method-assign]
    return calls


# -- walk ------------------------------------------------------------------------------------


def test_walk_is_depth_first_sorted_with_absolute_paths(repo: Repository) -> None:
    snap = snapshot_files(repo, BASE)
    listing = [(p.decode(), n.type) for p, n in browse.walk(reopen(repo), snap.tree)]
    assert listing == [
        ("/etc", DIR),
        ("/etc/hosts", FILE),
        ("/home", DIR),
        ("/home/u", DIR),
        ("/home/u/docs", DIR),
        ("/home/u/docs/Notes.MD", FILE),
        ("/home/u/docs/old", DIR),
        ("/home/u/docs/old/draft.txt", FILE),
        ("/home/u/docs/report.txt", FILE),
        ("/home/u/link", SYMLINK),
        ("/home/u/pics", DIR),
        ("/home/u/pics/cat.jpg", FILE),
    ]


def test_walk_survives_directories_deeper_than_the_recursion_limit(repo: Repository) -> None:
    depth = 1200
    with repo.writer() as writer:
        tid, _ = writer.save(TREE, Tree([Node(b"leaf", FILE)]).to_bytes())
        for i in reversed(range(depth)):
            tid, _ = writer.save(TREE, Tree([Node(f"d{i}".encode(), DIR, subtree=tid)]).to_bytes())
    paths = [p for p, _ in browse.walk(repo, tid)]
    assert len(paths) == depth + 1
    assert paths[-1].decode() == "/" + "/".join(f"d{i}" for i in range(depth)) + "/leaf"


def test_walk_of_a_real_backup_mirrors_the_absolute_path(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "sub" / "b.txt").write_bytes(b"beta")
    snap = backup_dir(repo, src)
    paths = {p.decode() for p, _ in browse.walk(repo, snap.tree)}
    assert str(src / "a.txt") in paths
    assert str(src / "sub" / "b.txt") in paths
    # every ancestor of the backed-up directory is a node of its own
    for parent in src.parents:
        if str(parent) != "/":
            assert str(parent) in paths


# -- ls --------------------------------------------------------------------------------------


def test_ls_root_and_directory(repo: Repository) -> None:
    snap = snapshot_files(repo, BASE)
    assert [p for p, _ in browse.ls(repo, snap, None)] == [b"/etc", b"/home"]
    entries = [(p.decode(), n.type) for p, n in browse.ls(repo, snap, "/home/u/docs")]
    assert entries == [
        ("/home/u/docs/Notes.MD", FILE),
        ("/home/u/docs/old", DIR),
        ("/home/u/docs/report.txt", FILE),
    ]


def test_ls_recursive_lists_everything_below(repo: Repository) -> None:
    snap = snapshot_files(repo, BASE)
    got = [p.decode() for p, _ in browse.ls(repo, snap, "/home/u/docs/", recursive=True)]
    assert got == [
        "/home/u/docs/Notes.MD",
        "/home/u/docs/old",
        "/home/u/docs/old/draft.txt",
        "/home/u/docs/report.txt",
    ]
    everything = [p for p, _ in browse.ls(repo, snap, None, recursive=True)]
    assert everything == [p for p, _ in browse.walk(repo, snap.tree)]


def test_ls_of_a_file_is_the_file(repo: Repository) -> None:
    snap = snapshot_files(repo, BASE)
    [(path, node)] = list(browse.ls(repo, snap, "//home/u/./docs/report.txt"))
    assert path == b"/home/u/docs/report.txt"
    assert node.size == len(BASE["/home/u/docs/report.txt"])  # type: ignore[arg-type]


def test_ls_of_a_missing_path_fails_at_the_call(repo: Repository) -> None:
    snap = snapshot_files(repo, BASE)
    with pytest.raises(PathNotFoundError, match="/home/u/nope does not exist"):
        browse.ls(repo, snap, "/home/u/nope/deeper")
    with pytest.raises(PathNotFoundError, match="is not a directory"):
        browse.ls(repo, snap, "/etc/hosts/inside")


# -- find ------------------------------------------------------------------------------------


def test_find_matches_names_case_sensitively_unless_asked(repo: Repository) -> None:
    snap = snapshot_files(repo, BASE)
    assert [m.path for m in browse.find(repo, [snap], "*.md")] == []
    assert [m.path for m in browse.find(repo, [snap], "*.md", ignore_case=True)] == [
        b"/home/u/docs/Notes.MD"
    ]
    assert [m.path for m in browse.find(repo, [snap], "*.txt")] == [
        b"/home/u/docs/old/draft.txt",
        b"/home/u/docs/report.txt",
    ]


def test_find_with_a_slash_matches_the_full_path(repo: Repository) -> None:
    snap = snapshot_files(repo, BASE)
    got = [m.path for m in browse.find(repo, [snap], "/home/*/docs/*.txt")]
    # fnmatch's * crosses slashes, as restic's --path patterns do not need to care about
    assert got == [b"/home/u/docs/old/draft.txt", b"/home/u/docs/report.txt"]
    assert [m.path for m in browse.find(repo, [snap], "/etc/*")] == [b"/etc/hosts"]


def test_find_filters_by_type_and_reports_the_snapshot(repo: Repository) -> None:
    s1 = snapshot_files(repo, BASE)
    s2 = snapshot_files(repo, {**BASE, "/home/u/docs/new.txt": b"new"})
    matches = list(browse.find(repo, [s1, s2], ["docs", "*.txt"], node_type=DIR))
    assert [(m.snapshot.id, m.path) for m in matches] == [
        (s1.id, b"/home/u/docs"),
        (s2.id, b"/home/u/docs"),
    ]
    new = list(browse.find(repo, [s1, s2], "new.txt"))
    assert [(m.snapshot.id, m.node.size) for m in new] == [(s2.id, 3)]


def test_find_reads_a_subtree_without_matches_only_once(repo: Repository) -> None:
    big = {f"/data/archive/y{y}/m{m}.log": f"{y}-{m}".encode() for y in range(5) for m in range(4)}
    snaps = [
        snapshot_files(repo, {**big, "/data/today.txt": f"day {i}".encode()}) for i in range(6)
    ]
    fresh = reopen(repo)
    calls = count_tree_loads(fresh)
    matches = list(browse.find(fresh, snaps, "today.txt"))
    assert len(matches) == 6
    archive = fresh.load_tree(fresh.load_tree(snaps[0].tree).nodes[0].subtree or b"")
    year_trees = [n.subtree for n in archive.nodes]
    assert all(calls[t] == 1 for t in year_trees if t is not None)


def test_find_rejects_an_empty_pattern(repo: Repository) -> None:
    snap = snapshot_files(repo, BASE)
    with pytest.raises(EngineError, match="non-empty pattern"):
        list(browse.find(repo, [snap], ""))


def test_find_and_walk_handle_names_that_are_not_utf8(repo: Repository) -> None:
    name = os.fsdecode(b"caf\xe9.txt")
    snap = snapshot_files(repo, {f"/d/{name}": b"latin-1 name"})
    [match] = list(browse.find(repo, [snap], "caf*.txt"))
    assert match.path == b"/d/caf\xe9.txt"
    assert browse.display_path(match.path) == "/d/" + name


# -- diff ------------------------------------------------------------------------------------


def codes(changes: list[browse.Change]) -> list[tuple[str, str]]:
    return [(c.code, c.display) for c in changes]


def test_diff_reports_every_kind_of_change(repo: Repository) -> None:
    a = snapshot_files(
        repo,
        {
            "/d/same.txt": b"same",
            "/d/content.txt": b"old content",
            "/d/perm.txt": File(b"perm", mode=0o100644),
            "/d/both.txt": File(b"both", mtime_ns=1),
            "/d/gone.txt": b"bye",
            "/d/becomes_dir": b"file first",
            "/d/olddir/x.txt": b"x",
            "/d/olddir/y/z.txt": b"z",
            "/d/link": Symlink(b"same.txt"),
        },
    )
    b = snapshot_files(
        repo,
        {
            "/d/same.txt": b"same",
            "/d/content.txt": b"new content!",
            "/d/perm.txt": File(b"perm", mode=0o100600),
            "/d/both.txt": File(b"both!", mtime_ns=2),
            "/d/becomes_dir/inner.txt": b"now a directory",
            "/d/newdir/n.txt": b"n",
            "/d/link": Symlink(b"content.txt"),
        },
    )
    changes = browse.diff(repo, a, b)
    assert codes(changes) == [
        ("T", "/d/becomes_dir/"),
        ("+", "/d/becomes_dir/inner.txt"),
        ("M", "/d/both.txt"),
        ("M", "/d/content.txt"),
        ("-", "/d/gone.txt"),
        ("M", "/d/link"),
        ("+", "/d/newdir/"),
        ("+", "/d/newdir/n.txt"),
        ("-", "/d/olddir/"),
        ("-", "/d/olddir/x.txt"),
        ("-", "/d/olddir/y/"),
        ("-", "/d/olddir/y/z.txt"),
        ("U", "/d/perm.txt"),
    ]
    both = next(c for c in changes if c.path == b"/d/both.txt")
    assert both.content and both.metadata
    perm = next(c for c in changes if c.path == b"/d/perm.txt")
    assert (perm.content, perm.metadata) == (False, True)
    assert perm.old is not None and perm.new is not None
    assert (perm.old.mode, perm.new.mode) == (0o100644, 0o100600)


def test_diff_of_a_directory_turned_file_removes_its_entries(repo: Repository) -> None:
    a = snapshot_files(repo, {"/d/x/inner.txt": b"i"})
    b = snapshot_files(repo, {"/d/x": b"now a file"})
    assert codes(browse.diff(repo, a, b)) == [("T", "/d/x"), ("-", "/d/x/inner.txt")]


def test_diff_of_identical_snapshots_is_empty_and_reads_nothing(repo: Repository) -> None:
    a = snapshot_files(repo, BASE)
    b = snapshot_files(repo, BASE, tags=["again"])
    assert a.tree == b.tree
    calls = count_tree_loads(repo)
    assert browse.diff(repo, a, b) == []
    assert not calls


def test_diff_skips_unchanged_subtrees(repo: Repository) -> None:
    many = {f"/srv/big/d{i}/f{j}.bin": f"{i}.{j}".encode() for i in range(20) for j in range(5)}
    a = snapshot_files(repo, {**many, "/srv/small/a.txt": b"1"})
    b = snapshot_files(repo, {**many, "/srv/small/a.txt": b"2"})
    fresh = reopen(repo)
    calls = count_tree_loads(fresh)
    changes = browse.diff(fresh, a, b)
    assert codes(changes) == [("M", "/srv/small/a.txt")]
    # root, /srv and /srv/small on each side; nothing under /srv/big
    assert sum(calls.values()) == 6


def test_diff_summary_counts_files_and_bytes(repo: Repository) -> None:
    a = snapshot_files(repo, {"/d/a": b"a" * 10, "/d/b": b"b" * 20})
    b = snapshot_files(repo, {"/d/a": b"a" * 15, "/d/c": b"c" * 40})
    s = browse.summarize(browse.diff(repo, a, b))
    assert (s.added, s.removed, s.modified, s.type_changed) == (1, 1, 1, 0)
    assert s.added_bytes == 40 + 15
    assert s.removed_bytes == 20 + 10


def test_diff_of_real_backups(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.txt").write_bytes(b"keep")
    (src / "edit.txt").write_bytes(b"before")
    a = backup_dir(repo, src)
    (src / "edit.txt").write_bytes(b"after, longer")
    (src / "new.txt").write_bytes(b"new")
    b = backup_dir(repo, src)
    got = {
        (c.code, c.path.decode())
        for c in browse.diff(repo, a, b)
        if c.new is None or c.new.type != DIR
    }
    assert got == {("M", str(src / "edit.txt")), ("+", str(src / "new.txt"))}


# -- stats -----------------------------------------------------------------------------------


def test_stats_counts_what_a_restore_writes_and_what_is_stored(repo: Repository) -> None:
    data = os.urandom(10_000)
    a = snapshot_files(
        repo, {"/d/one.bin": data, "/d/two.bin": data, "/d/l": Symlink(b"one.bin"), "/d/e": Dir()}
    )
    s = browse.stats(reopen(repo), a)
    assert (s.snapshots, s.files, s.dirs, s.symlinks) == (1, 2, 2, 1)
    assert s.total_size == 20_000
    # the two files share their 3 chunks; plus the trees of /, /d and /d/e
    assert s.blobs == 3 + 3
    assert s.raw_size >= 10_000
    assert s.missing_blobs == 0


def test_stats_over_several_snapshots_counts_shared_blobs_once(repo: Repository) -> None:
    a = snapshot_files(repo, {"/d/x.bin": b"x" * 5000})
    b = snapshot_files(repo, {"/d/x.bin": b"x" * 5000, "/d/y.bin": b"y" * 100})
    one = browse.stats(repo, a)
    both = browse.stats(repo, [a, b])
    assert both.files == 3
    assert both.total_size == 10_100
    assert both.raw_size < one.raw_size * 2 + 100
