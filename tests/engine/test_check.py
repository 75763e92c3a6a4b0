"""check: a clean repository passes; each kind of damage is found and named."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.engine.maint_helpers import (
    backup_dir,
    file_path,
    flip_byte,
    make_repo,
    reopen,
    snapshot_files,
)
from vaultwatch.engine.check import (
    BLOB_DAMAGED,
    BLOB_MISSING,
    INDEX,
    KEY_SLOT,
    PACK_HASH,
    PACK_MISSING,
    PACK_SIZE,
    PACK_TRAILER,
    PACK_UNINDEXED,
    PACK_UNREADABLE,
    SNAPSHOT,
    TREE_DAMAGED,
    CheckResult,
    check,
    select_packs,
)
from vaultwatch.engine.compress import compress
from vaultwatch.engine.errors import InvalidSubsetError, RepositoryLockedError
from vaultwatch.engine.pack import DATA, PackBuilder, pack_name
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.snapshot import Snapshot

REPORT = os.urandom(30_000)
PHOTO = os.urandom(50_000)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    r = make_repo(tmp_path)
    snapshot_files(r, {"/home/u/report.txt": REPORT, "/home/u/pics/photo.jpg": PHOTO})
    snapshot_files(r, {"/home/u/report.txt": REPORT, "/home/u/notes.txt": b"notes" * 50})
    return reopen(r)


def kinds(result: CheckResult) -> set[str]:
    return {p.kind for p in result.errors}


def location(repo: Repository, data: bytes, chunk: int = 0) -> tuple[str, int, bytes]:
    """(pack name, offset, blob id) of one 4 KiB chunk of a file's content."""
    bid = repo.blob_id(data[chunk * 4096 : (chunk + 1) * 4096])
    repo.load_index(reload=True)
    loc = repo.lookup(bid)
    assert loc is not None
    return pack_name(loc.pack_id), loc.offset, bid


def test_a_clean_repository_passes(repo: Repository) -> None:
    progress = Progress()
    result = check(repo, read_data=True, progress=progress)
    assert result.ok
    assert result.errors == [] and result.warnings == []
    assert result.snapshots == 2
    assert result.trees == 7  # /, /home, /home/u and /home/u/pics, then a new /, /home, /home/u
    assert result.packs_read == result.packs > 0
    assert result.bytes_read == sum(o.size for o in repo.store.list("data/"))
    assert progress.phase == "done"
    assert not list(repo.store.list("locks/"))
    doc = result.to_dict()
    assert json.loads(json.dumps(doc))["ok"] is True


def test_a_real_backup_passes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(100_000))
    (src / "sub" / "b.txt").write_bytes(b"hello " * 1000)
    (src / "link").symlink_to("a.bin")
    backup_dir(repo, src)
    result = check(reopen(repo), read_data=True)
    assert result.ok, [p.message for p in result.errors]


def test_a_flipped_byte_in_a_pack_is_found_only_by_reading_data(repo: Repository) -> None:
    name, offset, bid = location(repo, PHOTO, chunk=3)
    flip_byte(repo, name, offset + 40)
    assert check(repo).ok  # the structure is intact
    result = check(repo, read_data=True)
    assert not result.ok
    pack_hex = name.rsplit("/", 1)[-1]
    assert kinds(result) == {PACK_HASH, BLOB_DAMAGED}
    [damaged] = [p for p in result.errors if p.kind == BLOB_DAMAGED]
    assert damaged.pack == pack_hex
    assert damaged.blob == bid.hex()
    assert damaged.path == "/home/u/pics/photo.jpg"
    assert pack_hex in damaged.message and bid.hex() in damaged.message
    assert "/home/u/pics/photo.jpg" in damaged.message
    [hashed] = [p for p in result.errors if p.kind == PACK_HASH]
    assert hashed.pack == pack_hex


def test_a_damaged_tree_is_found_with_its_directory(repo: Repository) -> None:
    snap = repo.snapshots()[0]
    home = repo.load_tree(snap.tree).nodes[0]
    assert home.subtree is not None
    u = repo.load_tree(home.subtree).nodes[0]
    assert u.subtree is not None
    loc = repo.lookup(u.subtree)
    assert loc is not None
    flip_byte(repo, pack_name(loc.pack_id), loc.offset + 20)
    result = check(reopen(repo))
    assert TREE_DAMAGED in kinds(result)
    [tree] = [p for p in result.errors if p.kind == TREE_DAMAGED]
    assert tree.path == "/home/u"
    assert tree.blob == u.subtree.hex()
    assert tree.snapshot == snap.id
    assert tree.pack == loc.pack_id.hex()


def test_a_deleted_pack_is_found_without_reading_data(repo: Repository) -> None:
    name, _, bid = location(repo, REPORT)
    repo.store.delete(name)
    result = check(reopen(repo))
    assert not result.ok
    pack_hex = name.rsplit("/", 1)[-1]
    missing = [p for p in result.errors if p.kind == PACK_MISSING]
    assert [p.pack for p in missing] == [pack_hex]
    # and the files that lose data with it are named, in every snapshot that has them
    lost = [p for p in result.errors if p.kind == BLOB_MISSING]
    assert all(p.pack == pack_hex for p in lost)
    report = [p for p in lost if p.path == "/home/u/report.txt"]
    assert len({p.snapshot for p in report}) == 2
    assert bid.hex() in {p.blob for p in report}


def test_a_truncated_pack_is_found_without_reading_data(repo: Repository) -> None:
    name, _, _ = location(repo, PHOTO)
    path = file_path(repo, name)
    path.write_bytes(path.read_bytes()[:-200])
    result = check(repo)
    assert kinds(result) == {PACK_SIZE}
    assert result.errors[0].pack == name.rsplit("/", 1)[-1]


def test_a_damaged_trailer_is_reported_and_the_blobs_still_verified(repo: Repository) -> None:
    name, _, _ = location(repo, PHOTO)
    size = file_path(repo, name).stat().st_size
    flip_byte(repo, name, size - 20)  # inside the sealed table of contents
    result = check(repo, read_data=True)
    assert kinds(result) == {PACK_HASH, PACK_TRAILER}
    assert not [p for p in result.errors if p.kind == BLOB_DAMAGED]


def test_a_damaged_index_file_is_reported(repo: Repository) -> None:
    victim = sorted(o.name for o in repo.store.list("index/"))[0]
    flip_byte(repo, victim, 50)
    result = check(reopen(repo, load_index=False))
    assert not result.ok
    [bad] = [p for p in result.errors if p.kind == INDEX]
    assert bad.name == victim
    assert victim in bad.message
    # what only that file listed is now unknown: reported, but the check carried on
    assert result.snapshots == 2
    assert {w.kind for w in result.warnings} == {PACK_UNINDEXED}


def test_an_unindexed_pack_is_only_a_warning(repo: Repository) -> None:
    builder = PackBuilder(repo.master.enc_key, DATA)
    payload = os.urandom(5000)
    builder.add(repo.blob_id(payload), compress(payload), len(payload))
    pid, data = builder.finish()
    repo.store.put(pack_name(pid), data)
    result = check(repo)
    assert result.ok
    [warning] = result.warnings
    assert (warning.kind, warning.pack) == (PACK_UNINDEXED, pid.hex())


def test_an_unreadable_unindexed_pack_is_an_error(repo: Repository) -> None:
    builder = PackBuilder(repo.master.enc_key, DATA)
    builder.add(repo.blob_id(b"x" * 100), compress(b"x" * 100), 100)
    pid, data = builder.finish()
    repo.store.put(pack_name(pid), data[:-10])  # named after bytes it no longer has
    result = check(repo)
    assert kinds(result) == {PACK_UNREADABLE}


def test_a_damaged_snapshot_is_reported(repo: Repository) -> None:
    victim = repo.snapshot_ids()[0]
    flip_byte(repo, f"snapshots/{victim}", 70)
    result = check(repo)
    [bad] = result.errors
    assert (bad.kind, bad.snapshot) == (SNAPSHOT, victim)


def test_a_snapshot_pointing_at_nothing_is_reported(repo: Repository) -> None:
    ghost = Snapshot(repo.snapshots()[0].time, b"\x42" * 32, ["/x"], "h")
    repo.save_snapshot(ghost)
    result = check(repo)
    [bad] = result.errors
    assert bad.kind == BLOB_MISSING
    assert bad.snapshot == ghost.id
    assert bad.blob == (b"\x42" * 32).hex()


def test_a_damaged_key_slot_is_reported(repo: Repository) -> None:
    repo.store.put("keys/" + "0" * 32, b"{not json")
    result = check(repo)
    assert kinds(result) == {KEY_SLOT}


def test_a_missing_config_is_reported(repo: Repository) -> None:
    repo.store.delete("config")
    result = check(repo)
    assert "config" in kinds(result)


def test_read_data_subset_groups_cover_every_pack_once(repo: Repository) -> None:
    total = len(list(repo.store.list("data/")))
    read = [check(repo, read_data_subset=f"{n}/3").packs_read for n in (1, 2, 3)]
    assert sum(read) == total
    ids = [os.urandom(32) for _ in range(50)]
    groups = [set(select_packs(ids, f"{n}/4")) for n in (1, 2, 3, 4)]
    assert set().union(*groups) == set(ids)
    assert sum(len(g) for g in groups) == 50


def test_read_data_subset_percentage(repo: Repository) -> None:
    total = len(list(repo.store.list("data/")))
    result = check(repo, read_data_subset="50%", rng=random.Random(1))
    assert result.packs_read == max(1, round(total / 2))
    ids = [os.urandom(32) for _ in range(200)]
    assert len(select_packs(ids, "10%")) == 20
    assert len(select_packs(ids, "0.1%")) == 1
    assert select_packs(ids, "100%") == sorted(ids)


@pytest.mark.parametrize("subset", ["0/3", "4/3", "1/0", "abc", "0%", "150%", "5", ""])
def test_bad_subsets_are_refused_before_any_work(repo: Repository, subset: str) -> None:
    with pytest.raises(InvalidSubsetError, match="subset"):
        check(repo, read_data_subset=subset)


def test_a_subset_finds_damage_in_the_packs_it_reads(repo: Repository) -> None:
    name, offset, _ = location(repo, PHOTO)
    flip_byte(repo, name, offset + 10)
    found = [not check(repo, read_data_subset=f"{n}/2").ok for n in (1, 2)]
    assert sorted(found) == [False, True]


def test_check_takes_a_shared_lock(repo: Repository) -> None:
    with repo.lock(exclusive=True, purpose="prune"):
        with pytest.raises(RepositoryLockedError):
            check(repo)
        assert check(repo, lock=False).ok
    with repo.lock(exclusive=False, purpose="backup"):
        assert check(repo).ok  # backups may run while a check does


def test_problems_serialize_without_empty_fields(repo: Repository) -> None:
    name, _, _ = location(repo, REPORT)
    repo.store.delete(name)
    doc = check(reopen(repo)).to_dict()
    assert doc["ok"] is False
    first = doc["errors"][0]
    assert first["severity"] == "error"
    assert set(first) >= {"kind", "message", "pack"}
    assert None not in first.values()
