"""LocalStore behaviour that only a file system has: full disks, permissions, crash leftovers."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultwatch.store.base import check_name
from vaultwatch.store.errors import (
    InvalidObjectNameError,
    ObjectExistsError,
    ObjectNotFoundError,
    RepositoryNotFoundError,
    StoreError,
    StoreFullError,
    StorePermissionError,
)
from vaultwatch.store.local import LocalStore

NOBODY = 65534


def _run(*cmd: str) -> None:
    """Run a setup command; a failure fails the test (these tests must not quietly skip)."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)} failed: {result.stderr.strip()}"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, so ENOSPC and EROFS come from a real kernel, not a mock."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    _run("mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def leftovers(root: Path) -> list[str]:
    return [
        os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.startswith(".tmp-")
    ]


def names(store: LocalStore, prefix: str = "") -> set[str]:
    return {obj.name for obj in store.list(prefix)}


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "repo")
    s.create_if_missing()
    return s


def test_objects_are_files_at_their_name(store: LocalStore) -> None:
    store.put("data/ab/ab12", b"pack bytes")
    path = store.root / "data" / "ab" / "ab12"
    assert path.read_bytes() == b"pack bytes"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.location == str(store.root)
    assert Path(store.location).is_absolute()
    assert not leftovers(store.root)


def test_location_is_absolute_for_relative_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalStore(Path("rel"))
    assert store.location == str(tmp_path / "rel")
    store.create_if_missing()
    monkeypatch.chdir("/")  # a later chdir must not move the repository
    store.put("config", b"c")
    assert (tmp_path / "rel" / "config").read_bytes() == b"c"


def test_read_into_fills_a_caller_buffer(store: LocalStore) -> None:
    store.put("data/ab/obj", bytes(range(256)) * 4)
    buffer = memoryview(bytearray(100))
    assert store.read_into("data/ab/obj", 10, buffer) == 100
    assert bytes(buffer) == (bytes(range(256)) * 4)[10:110]
    assert store.read_into("data/ab/obj", 1000, buffer) == 24  # short only at the end
    assert bytes(buffer[:24]) == (bytes(range(256)) * 4)[1000:]
    with pytest.raises(ObjectNotFoundError):
        store.read_into("data/ab/missing", 0, buffer)
    with pytest.raises(ValueError):
        store.read_into("data/ab/obj", -1, buffer)


def test_capabilities_of_a_file_system(store: LocalStore) -> None:
    # what restores and backups tune themselves by (see the Store protocol)
    assert store.reads_cheaply
    assert store.reads_in_place
    assert store.leaves_no_cycles


def test_any_file_makes_the_directory_hold_something(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "repo")
    assert not store.holds_anything()  # not even created
    store.create_if_missing()
    assert not store.holds_anything()
    (tmp_path / "repo" / "notes from someone.txt").write_text("not an object")
    assert list(store.list()) == []
    assert store.holds_anything()


def test_crash_leftovers_are_invisible(store: LocalStore) -> None:
    store.put("data/ab/ab01", b"real")
    # What a crash between "write temp" and "link" leaves behind.
    (store.root / ".tmp-deadbeef").write_bytes(b"half")
    (store.root / "data" / "ab" / ".tmp-0123abcd").write_bytes(b"half a pack")
    (store.root / "data" / ".tmp-dir").mkdir()
    (store.root / "data" / ".tmp-dir" / "inner").write_bytes(b"x")
    assert names(store) == {"data/ab/ab01"}
    assert names(store, "data/ab/") == {"data/ab/ab01"}
    assert names(store, ".tmp") == set()
    with pytest.raises(InvalidObjectNameError):
        store.exists("data/ab/.tmp-0123abcd")
    with pytest.raises(InvalidObjectNameError):
        store.get(".tmp-deadbeef")
    store.put("data/ab/ab02", b"more")  # writes still work next to leftovers
    assert names(store, "data/") == {"data/ab/ab01", "data/ab/ab02"}


def test_foreign_files_are_not_listed(store: LocalStore) -> None:
    store.put("keys/k1", b"k")
    (store.root / "keys" / "not ours.txt").write_bytes(b"x")
    os.symlink("/etc", store.root / "keys" / "link-to-etc")
    assert names(store) == {"keys/k1"}


def record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths fsynced from now on, in order."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return synced


def test_put_is_durable(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temp file is fsynced before it is linked, then every directory that changed."""
    synced = record_fsyncs(monkeypatch)
    store.put("data/ab/ab01", b"x")
    root = str(store.root)
    tmp_index = next(i for i, p in enumerate(synced) if os.path.basename(p).startswith(".tmp-"))
    assert os.path.dirname(synced[tmp_index]) == f"{root}/data/ab"
    assert synced[tmp_index + 1 :] == [f"{root}/data/ab"]  # the new link
    assert f"{root}" in synced[:tmp_index]  # "data" was created in root
    assert f"{root}/data" in synced[:tmp_index]  # "ab" was created in data

    synced.clear()
    store.delete("data/ab/ab01")
    assert synced == [f"{root}/data/ab"]


def test_put_file_links_a_finished_file_into_place(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same file system: the spooled file becomes the object (no second write), fsynced first."""
    source = tmp_path / "spooled"
    source.write_bytes(b"pack bytes")
    synced = record_fsyncs(monkeypatch)
    store.put_file("data/cd/cd01", source)
    stored = store.root / "data/cd/cd01"
    assert stored.read_bytes() == b"pack bytes"
    assert os.stat(stored).st_ino == os.stat(source).st_ino  # linked, not copied
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert synced[synced.index(str(source)) + 1 :] == [f"{store.root}/data/cd"]
    source.unlink()  # the caller removes its spool file; the object stays
    assert store.get("data/cd/cd01") == b"pack bytes"


def test_put_file_never_replaces(store: LocalStore, tmp_path: Path) -> None:
    store.put("data/cd/cd02", b"first")
    source = tmp_path / "spooled"
    source.write_bytes(b"second")
    with pytest.raises(ObjectExistsError, match="cd02"):
        store.put_file("data/cd/cd02", source)
    assert store.get("data/cd/cd02") == b"first"


def test_put_file_across_file_systems_copies(tmpfs: Path, tmp_path: Path) -> None:
    """A spool on another file system (EXDEV) still lands, as an ordinary put."""
    store = LocalStore(tmpfs / "repo")
    store.create_if_missing()
    source = tmp_path / "spooled"
    source.write_bytes(b"elsewhere")
    store.put_file("data/ef/ef01", source)
    assert store.get("data/ef/ef01") == b"elsewhere"
    assert source.read_bytes() == b"elsewhere"
    assert not leftovers(tmpfs)


def test_no_space_left(tmpfs: Path) -> None:
    store = LocalStore(tmpfs / "repo")
    store.create_if_missing()
    store.put("config", b"c")
    with pytest.raises(StoreFullError) as info:
        store.put("data/ab/big", os.urandom(2 * 1024 * 1024))
    assert "data/ab/big" in str(info.value)
    assert store.location in str(info.value)
    assert not leftovers(tmpfs)  # the partial temp file is gone and its space freed
    assert names(store) == {"config"}
    store.put("data/ab/small", os.urandom(512 * 1024))
    assert store.size("data/ab/small") == 512 * 1024


def test_read_only_file_system(tmpfs: Path) -> None:
    store = LocalStore(tmpfs / "repo")
    store.create_if_missing()
    store.put("config", b"c")
    _run("mount", "-o", "remount,ro", str(tmpfs))
    with pytest.raises(StorePermissionError, match="keys/k1"):
        store.put("keys/k1", b"k")
    with pytest.raises(StorePermissionError, match="config"):
        store.put("config", b"new", overwrite=True)
    with pytest.raises(StorePermissionError, match="config"):
        store.delete("config")
    assert store.get("config") == b"c"  # reading still works


def test_immutable_directory(store: LocalStore) -> None:
    """chattr +i gives EPERM even to root: what an append-only or locked vault looks like."""
    store.put("locks/l1", b"l")
    _run("chattr", "+i", str(store.root / "locks"))
    try:
        with pytest.raises(StorePermissionError, match="locks/l2"):
            store.put("locks/l2", b"l")
        with pytest.raises(StorePermissionError, match="locks/l1"):
            store.delete("locks/l1")
    finally:
        _run("chattr", "-i", str(store.root / "locks"))
    assert names(store) == {"locks/l1"}
    assert not leftovers(store.root)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="vw-perm-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", str(path)], check=False)


def test_access_denied_for_another_user(shared_dir: Path) -> None:
    store = LocalStore(shared_dir / "repo")
    store.create_if_missing()
    store.root.chmod(0o755)
    store.put("config", b"secret")  # mode 0600, owned by root
    os.seteuid(NOBODY)
    try:
        with pytest.raises(StorePermissionError, match="config"):
            store.get("config")
        with pytest.raises(StorePermissionError, match="keys/k1"):
            store.put("keys/k1", b"k")
        with pytest.raises(StorePermissionError, match=str(store.root)):
            store.get_range("config", 0, 2)
    finally:
        os.seteuid(0)
    assert store.get("config") == b"secret"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, StoreFullError),
        (errno.EDQUOT, StoreFullError),
        (errno.EACCES, StorePermissionError),
        (errno.EPERM, StorePermissionError),
        (errno.EROFS, StorePermissionError),
        (errno.ENOENT, ObjectNotFoundError),
        (errno.EIO, StoreError),
    ],
)
def test_os_error_mapping(store: LocalStore, code: int, expected: type[StoreError]) -> None:
    error = store._error(OSError(code, os.strerror(code)), "data/ab/x", "writing")
    assert type(error) is expected
    assert "data/ab/x" in str(error)
    assert store.location in str(error)


def test_missing_root_is_not_created_by_put(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "typo")
    with pytest.raises(RepositoryNotFoundError, match="typo"):
        store.put("config", b"c")
    assert not (tmp_path / "typo").exists()


def test_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    store = LocalStore(tmp_path / "file")
    with pytest.raises(RepositoryNotFoundError):
        store.create_if_missing()
    with pytest.raises(RepositoryNotFoundError):
        store.get("config")
    with pytest.raises(RepositoryNotFoundError):
        list(store.list())


def test_create_if_missing_is_idempotent(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "a" / "b" / "repo")
    store.create_if_missing()
    store.put("config", b"c")
    store.create_if_missing()
    assert store.get("config") == b"c"


def test_object_and_directory_names_collide(store: LocalStore) -> None:
    """On a file system "a" cannot be both an object and the parent of "a/b"."""
    store.put("snapshots", b"an object")
    with pytest.raises(ObjectExistsError, match="snapshots/s1"):
        store.put("snapshots/s1", b"x")
    with pytest.raises(ObjectNotFoundError):
        store.get("snapshots/s1")
    assert not store.exists("snapshots/s1")
    store.put("data/ab/ab01", b"x")
    assert not store.exists("data")  # a directory is not an object
    with pytest.raises(ObjectNotFoundError):
        store.get("data")
    with pytest.raises(ObjectNotFoundError):
        store.size("data")
    with pytest.raises(ObjectNotFoundError):
        store.get_range("data", 0, 1)
    with pytest.raises(ObjectExistsError):
        store.put("data", b"x")
    with pytest.raises(ObjectExistsError):
        store.put("data", b"x", overwrite=True)
    assert store.get("data/ab/ab01") == b"x"


@given(st.text(min_size=0, max_size=40))
def test_accepted_names_stay_inside_the_root(name: str) -> None:
    """Whatever the input, a name check_name accepts maps to a path strictly under the root."""
    root = "/srv/vault"
    try:
        check_name(name)
    except InvalidObjectNameError:
        return
    path = os.path.join(root, name)
    assert os.path.normpath(path) == path
    assert path.startswith(root + "/")


@given(
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=8),
        min_size=1,
        max_size=4,
    )
)
def test_name_check_matches_path_rules(parts: list[str]) -> None:
    """Valid characters still fail when a part is ".", "..", or reserved for temp files."""
    name = "/".join(parts)
    bad = any(p in (".", "..") or p.startswith(".tmp-") for p in parts)
    if bad:
        with pytest.raises(InvalidObjectNameError):
            check_name(name)
    else:
        assert check_name(name) == name
