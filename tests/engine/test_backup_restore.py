"""Round trips through backup and restore: every kind of entry, byte for byte and metadata for metadata."""

from __future__ import annotations

import io
import os
import stat
import threading
from pathlib import Path

import pytest

from tests.engine.conftest import reopen
from tests.engine.treecompare import build_tree, describe
from vaultwatch.engine import backup as backup_module
from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.errors import CancelledError, EngineError
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import RestoreOptions, default_workers, dump, find_node, restore
from vaultwatch.engine.tree import Node, Tree
from vaultwatch.store.http import GatewayStore


def restored(target: Path, source: Path) -> Path:
    """Where restore puts ``source`` (its absolute path recreated under the target)."""
    return target / str(source).lstrip("/")


def test_round_trip_every_kind_of_entry(repo: Repository, repo_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src)
    result = backup(repo, [str(src)])
    assert not result.errors
    assert result.files_new >= 8
    target = tmp_path / "restore"
    res = restore(reopen(repo_path), reopen(repo_path).find_snapshot("latest"), target)
    assert not res.errors, res.errors
    assert describe(restored(target, src)) == describe(src)
    # the hardlink is restored as a hardlink, the sparse file stays sparse
    out = restored(target, src)
    assert (
        os.stat(out / "dir" / "hardlink.bin").st_ino
        == os.stat(out / "dir" / "nested" / "big.bin").st_ino
    )
    assert os.stat(out / "sparse.img").st_blocks * 512 < 1024 * 1024


@pytest.mark.parametrize(
    "mode", [0o644, 0o755, 0o444, 0o000, 0o4755, 0o2750, 0o1777], ids=lambda m: f"{m:04o}"
)
def test_restored_files_get_their_mode_and_owner(
    repo: Repository, repo_path: Path, tmp_path: Path, mode: int
) -> None:
    """One-chunk files are created with their mode where safe; every file ends up exact."""
    src = tmp_path / "src"
    src.mkdir()
    plain, tagged, large = src / "plain", src / "tagged", src / "large"
    plain.write_bytes(b"one chunk")
    tagged.write_bytes(b"one chunk with an extended attribute")
    os.setxattr(tagged, "user.note", b"kept")
    large.write_bytes(os.urandom(1024 * 1024))  # many chunks: the other write path
    for path in (plain, tagged, large):
        if os.geteuid() == 0:
            os.chown(path, 4321, 8765)
        os.chmod(path, mode)  # after chown, which clears set-id bits
    backup(repo, [str(src)])
    target = tmp_path / "restore"
    res = restore(reopen(repo_path), reopen(repo_path).find_snapshot("latest"), target)
    assert not res.errors, res.errors
    assert describe(restored(target, src)) == describe(src)
    for name in ("plain", "tagged", "large"):
        st = os.lstat(restored(target, src) / name)
        assert stat.S_IMODE(st.st_mode) == mode
        if os.geteuid() == 0:
            assert (st.st_uid, st.st_gid) == (4321, 8765)


def test_second_backup_reads_nothing_and_adds_nothing(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src)
    first = backup(repo, [str(src)])
    second = backup(repo, [str(src)])
    assert second.snapshot.parent == first.snapshot.id
    assert second.files_new == second.files_changed == 0
    assert second.files_unmodified == first.files_new
    assert second.bytes_read == 0
    assert second.bytes_added == 0
    assert second.snapshot.tree == first.snapshot.tree


def test_unchanged_entries_keep_their_nodes_and_trees(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing changed: no entry but the directories is described again, no tree encoded again."""
    src = tmp_path / "src"
    build_tree(src)
    first = backup(repo, [str(src)])
    described: list[bytes] = []
    encoded: list[int] = []
    real_node_from_stat, real_to_bytes = backup_module.node_from_stat, Tree.to_bytes

    def counting_node_from_stat(name: bytes, path: bytes, st: os.stat_result) -> Node | None:
        described.append(path)
        return real_node_from_stat(name, path, st)

    def counting_to_bytes(tree: Tree) -> bytes:
        encoded.append(len(tree.nodes))
        return real_to_bytes(tree)

    monkeypatch.setattr(backup_module, "node_from_stat", counting_node_from_stat)
    monkeypatch.setattr(Tree, "to_bytes", counting_to_bytes)
    second = backup(repo, [str(src)])
    directories = {os.fsencode(d) for d, _, _ in os.walk(src)}
    ancestors = {os.fsencode(p) for p in src.parents if p != Path("/")}
    assert set(described) == directories | ancestors  # directories only: their content may change
    # only the directories above the backed-up path (one entry each) are encoded again
    assert encoded == [1] * (len(src.parts) - 1)
    assert second.files_new == second.files_changed == 0
    assert second.files_unmodified == first.files_new
    assert second.snapshot.tree == first.snapshot.tree


def test_metadata_changes_are_recorded_and_untouched_directories_reused(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    """Mode, xattr, mtime and symlink changes move ctime: each is seen; siblings keep their trees."""
    src = tmp_path / "src"
    build_tree(src)
    first = backup(repo, [str(src)])
    os.chmod(src / "small.txt", 0o600)
    os.setxattr(src / "empty", "user.new", b"added later")
    os.utime(src / "dir" / "text.log", ns=(1_700_000_000_000_000_000,) * 2)
    os.unlink(src / "link-relative")
    os.symlink("empty", src / "link-relative")
    second = backup(repo, [str(src)])
    repo = reopen(repo_path)
    old, new = repo.find_snapshot(first.snapshot.id), repo.find_snapshot("latest")
    assert find_node(repo, new, f"{src}/small.txt").mode == 0o600
    assert find_node(repo, new, f"{src}/empty").xattrs == {"user.new": b"added later"}
    assert find_node(repo, new, f"{src}/dir/text.log").mtime_ns == 1_700_000_000_000_000_000
    assert find_node(repo, new, f"{src}/link-relative").target == b"empty"
    nested_old = find_node(repo, old, f"{src}/dir/nested")
    assert find_node(repo, new, f"{src}/dir/nested").subtree == nested_old.subtree
    assert find_node(repo, new, f"{src}/dir").subtree != find_node(repo, old, f"{src}/dir").subtree
    assert second.files_new == 0
    assert second.bytes_added < 64 * 1024  # new trees only: no content was new
    target = tmp_path / "restore"
    res = restore(repo, new, target)
    assert not res.errors, res.errors
    assert describe(restored(target, src)) == describe(src)


def test_removed_and_added_entries_change_the_tree(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    build_tree(src)
    backup(repo, [str(src)])
    os.unlink(src / "dir" / "nested" / "big.bin")  # the hardlink keeps its content
    backup(repo, [str(src)])
    repo = reopen(repo_path)
    after_removal = repo.find_snapshot("latest")
    with pytest.raises(EngineError):
        find_node(repo, after_removal, f"{src}/dir/nested/big.bin")
    (src / "dir" / "nested" / "again.txt").write_text("new")
    backup(repo, [str(src)])
    repo = reopen(repo_path)
    after_addition = repo.find_snapshot("latest")
    assert find_node(repo, after_addition, f"{src}/dir/nested/again.txt").size == 3
    assert after_addition.tree != after_removal.tree


def test_changed_file_is_read_again_and_only_new_chunks_stored(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = bytearray(os.urandom(4 * 1024 * 1024))
    (src / "f.bin").write_bytes(data)
    backup(repo, [str(src)])
    data[2_000_000:2_000_100] = b"x" * 100
    (src / "f.bin").write_bytes(data)
    second = backup(repo, [str(src)])
    assert second.files_changed == 1
    assert second.bytes_read == len(data)
    assert 0 < second.bytes_added < 1024 * 1024  # one or two chunks, not the file
    target = tmp_path / "out"
    restore(reopen(repo_path), reopen(repo_path).find_snapshot("latest"), target)
    assert restored(target, src / "f.bin").read_bytes() == bytes(data)


def test_identical_content_is_stored_once(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    blob = os.urandom(2 * 1024 * 1024)
    for i in range(5):
        (src / f"copy{i}").write_bytes(blob)
    result = backup(repo, [str(src)])
    assert result.bytes_read == 5 * len(blob)
    assert result.bytes_added < len(blob) + 64 * 1024


def test_excludes_and_selected_restore(repo: Repository, repo_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    (src / "cache").mkdir()
    (src / "keep" / "a.txt").write_text("a")
    (src / "keep" / "b.tmp").write_text("b")
    (src / "cache" / "c.txt").write_text("c")
    backup(repo, [str(src)], BackupOptions(excludes=["*.tmp", f"{src}/cache"]))
    target = tmp_path / "out"
    snap = reopen(repo_path).find_snapshot("latest")
    restore(reopen(repo_path), snap, target)
    out = restored(target, src)
    assert (out / "keep" / "a.txt").read_text() == "a"
    assert not (out / "keep" / "b.tmp").exists()
    assert not (out / "cache").exists()
    only = tmp_path / "only"
    restore(reopen(repo_path), snap, only, RestoreOptions(includes=[f"{src}/keep/a.txt"]))
    files = [p for p in only.rglob("*") if p.is_file()]
    assert files == [restored(only, src / "keep" / "a.txt")]


def test_include_that_matches_nothing_is_an_error(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    snap = backup(repo, [str(src)]).snapshot
    with pytest.raises(EngineError, match="matches the include"):
        restore(repo, snap, tmp_path / "out", RestoreOptions(includes=["/no/such/path"]))


def test_dump_writes_one_file(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    payload = os.urandom(1_000_000)
    (src / "f").write_bytes(payload)
    snap = backup(repo, [str(src)]).snapshot
    out = io.BytesIO()
    assert dump(repo, snap, f"{src}/f", out) == len(payload)
    assert out.getvalue() == payload
    with pytest.raises(EngineError, match="not a file"):
        dump(repo, snap, str(src), io.BytesIO())
    with pytest.raises(EngineError, match="not in snapshot"):
        dump(repo, snap, f"{src}/missing", io.BytesIO())


def test_file_changing_while_read_is_retried_then_recorded(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "stable").write_text("stable")
    growing = src / "growing.log"
    growing.write_bytes(os.urandom(8 * 1024 * 1024))
    stop = threading.Event()
    writing = threading.Event()

    def writer() -> None:
        with open(growing, "ab") as f:
            while not stop.is_set():
                f.write(b"more\n")
                f.flush()
                writing.set()

    t = threading.Thread(target=writer)
    t.start()
    assert writing.wait(10), "the writer never started"  # the file grows before it is read
    try:
        result = backup(repo, [str(src)])
    finally:
        stop.set()
        t.join()
    assert [w.path for w in result.warnings] == [str(growing)]
    assert "changed while being read" in result.warnings[0].message
    assert not result.errors
    node = find_node(repo, result.snapshot, str(growing))
    assert node.error == "changed while being read"
    assert node.size == len(b"".join(repo.load_blob(b) for b in node.content))


def test_nonexistent_path_is_refused(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="does not exist"):
        backup(repo, [str(tmp_path / "nope")])


def test_restore_threads_follow_the_cores_on_a_local_disk(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local disk: one pack in flight per core (2 to 4); a remote store keeps four for latency."""
    for cores, expected in ((1, 2), (2, 2), (3, 3), (16, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert default_workers(repo) == expected
    with GatewayStore("https://gateway.example", "vwa_credential", None) as remote:
        monkeypatch.setattr(repo, "store", remote)
        assert default_workers(repo) == 4


@pytest.mark.parametrize("expected", [0, 100, 4999, 5000, 5001, 20_000])
def test_small_file_is_read_to_its_end_whatever_its_size_was(tmp_path: Path, expected: int) -> None:
    """The size from fstat only sizes the first read: a file that grew is still read whole."""
    content = os.urandom(5000) * 3  # 15,000 bytes: more than some of the expected sizes
    path = tmp_path / "grown"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert backup_module._read_to_end(fd, expected) == content
    finally:
        os.close(fd)


def test_files_opened_ahead_are_closed_when_a_backup_is_cancelled(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(600):
        (src / f"f{i:04d}").write_bytes(b"small file %d" % i)
    progress = Progress()
    real_read_once = backup_module._Backup._read_once
    reads = 0

    def cancel_after_some(self: backup_module._Backup, path: bytes, opened: int | None) -> object:
        nonlocal reads
        reads += 1
        if reads == 40:
            progress.cancel()  # as Ctrl-C or an agent stopping would
        return real_read_once(self, path, opened)

    monkeypatch.setattr(backup_module._Backup, "_read_once", cancel_after_some)
    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(CancelledError):
        backup(repo, [str(src)], progress=progress)
    assert reads < 600
    assert len(os.listdir("/proc/self/fd")) == open_before
