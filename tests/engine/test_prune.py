"""Prune: what it keeps, deletes and repacks, and that no crash or refusal ever loses a snapshot."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.engine.maint_helpers import (
    backup_dir,
    data_bytes,
    file_path,
    flip_byte,
    make_repo,
    pack_names,
    read_everything,
    reopen,
    snapshot_files,
)
from vaultwatch.engine.check import check
from vaultwatch.engine.compress import compress
from vaultwatch.engine.errors import PruneRefusedError, RepositoryLockedError
from vaultwatch.engine.pack import DATA, PackBuilder, pack_name
from vaultwatch.engine.prune import PruneOptions, plan_prune, prune
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.retention import RetentionPolicy, forget

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def everything(repo: Repository) -> dict[str, bytes]:
    """Every object's bytes, to prove that something did not change."""
    return {
        o.name: repo.store.get(o.name)
        for o in repo.store.list("")
        if not o.name.startswith("locks/")
    }


def assert_all_snapshots_complete(repo: Repository) -> None:
    fresh = reopen(repo)
    snaps = fresh.snapshots()
    assert snaps
    for s in snaps:
        assert read_everything(fresh, s) > 0
    result = check(fresh, read_data=True)
    assert result.ok, [p.message for p in result.errors]


def pack_of(repo: Repository, blob: bytes) -> str:
    repo.load_index(reload=True)
    loc = repo.lookup(blob)
    assert loc is not None
    return pack_name(loc.pack_id)


def test_forget_then_prune_frees_space_and_keeps_every_snapshot(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    shared = os.urandom(150_000)
    for i in range(4):
        snapshot_files(
            repo,
            {"/data/shared.bin": shared, "/data/day.bin": os.urandom(120_000)},
            time=T0 + timedelta(days=i),
        )
    before = data_bytes(repo)
    forget(repo, RetentionPolicy(last=2))
    result = prune(repo)
    after = data_bytes(repo)
    assert after < before
    assert result.bytes_freed == before - after
    assert result.bytes_after == after
    assert result.snapshots == 2
    assert result.blobs_removed > 0
    # two days of unique data are gone: about 240 kB of the ~630 kB
    assert before - after > 200_000
    assert_all_snapshots_complete(repo)
    # one index file describes the whole repository
    assert len(list(repo.store.list("index/"))) == 1


def test_prune_with_real_backups(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "stays.bin").write_bytes(os.urandom(200_000))
    (src / "goes.bin").write_bytes(os.urandom(300_000))
    first = backup_dir(repo, src)
    (src / "goes.bin").unlink()
    (src / "new.bin").write_bytes(os.urandom(50_000))
    second = backup_dir(repo, src)
    before = data_bytes(repo)
    repo.delete_snapshot(first.id)
    result = prune(repo)
    assert data_bytes(repo) < before - 250_000
    assert result.snapshots == 1
    fresh = reopen(repo)
    assert [s.id for s in fresh.snapshots()] == [second.id]
    assert_all_snapshots_complete(repo)


def test_dry_run_changes_nothing_and_predicts_the_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    a = snapshot_files(repo, {"/data/a.bin": os.urandom(100_000)})
    snapshot_files(repo, {"/data/b.bin": os.urandom(100_000)})
    repo.delete_snapshot(a.id)
    objects = everything(repo)
    planned = prune(repo, dry_run=True)
    assert planned.dry_run
    assert everything(repo) == objects
    done = prune(repo)
    assert (planned.packs_deleted, planned.packs_repacked, planned.blobs_removed) == (
        done.packs_deleted,
        done.packs_repacked,
        done.blobs_removed,
    )
    assert planned.bytes_freed == done.bytes_freed  # nothing repacked: the estimate is exact


def test_nothing_to_prune_touches_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    snapshot_files(repo, {"/data/a.bin": os.urandom(50_000)})
    snapshot_files(repo, {"/data/b.bin": os.urandom(50_000)})
    objects = everything(repo)
    result = prune(repo)
    assert result.packs_deleted == result.packs_repacked == result.bytes_freed == 0
    assert "nothing to prune" in result.messages
    assert everything(repo) == objects


def test_no_snapshots_left_means_no_data_left(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    s = snapshot_files(repo, {"/data/a.bin": os.urandom(80_000)})
    repo.delete_snapshot(s.id)
    prune(repo)
    assert pack_names(repo) == set()
    assert list(repo.store.list("index/")) == []
    assert check(reopen(repo)).ok


def _partly_used_pack(tmp_path: Path, pack_size: int) -> tuple[Repository, bytes, str]:
    """One pack holding keep.bin (used by the remaining snapshot) and gone.bin (not used any more)."""
    repo = make_repo(tmp_path, pack_size=pack_size)
    keep, gone = os.urandom(60_000), os.urandom(40_000)
    first = snapshot_files(repo, {"/data/keep.bin": keep, "/data/gone.bin": gone})
    snapshot_files(repo, {"/data/keep.bin": keep})
    repo.delete_snapshot(first.id)
    blob = repo.blob_id(keep[:4096])
    return repo, blob, pack_of(repo, blob)


def test_partly_used_packs_are_repacked(tmp_path: Path) -> None:
    repo, kept_blob, old_pack = _partly_used_pack(tmp_path, pack_size=256 * 1024)
    before = data_bytes(repo)
    result = prune(repo)
    assert result.packs_repacked == 1
    assert result.packs_written >= 1
    assert result.blobs_repacked == 15  # the 60 kB file in 4 KiB chunks
    assert result.bytes_repacked > 60_000
    assert old_pack not in pack_names(repo)
    assert pack_of(repo, kept_blob) != old_pack
    assert before - data_bytes(repo) == result.bytes_freed > 35_000
    assert_all_snapshots_complete(repo)


def test_a_pack_with_little_waste_is_left_alone(tmp_path: Path) -> None:
    repo, kept_blob, old_pack = _partly_used_pack(tmp_path, pack_size=256 * 1024)
    # 40 % of the pack is unused: under a 50 % threshold it stays (it is not small either)
    result = prune(repo, options=PruneOptions(repack_threshold=0.5))
    assert result.packs_repacked == 0
    assert result.packs_deleted == 1  # the first snapshot's trees
    assert old_pack in pack_names(repo)
    assert pack_of(repo, kept_blob) == old_pack
    assert_all_snapshots_complete(repo)


def test_small_partly_used_packs_are_repacked_below_the_threshold(tmp_path: Path) -> None:
    # the same pack is tiny next to an 8 MiB target size: cheap to copy, so it is merged
    repo, _, old_pack = _partly_used_pack(tmp_path, pack_size=8 * 1024 * 1024)
    result = prune(repo, options=PruneOptions(repack_threshold=0.5))
    assert result.packs_repacked == 1
    assert old_pack not in pack_names(repo)
    assert_all_snapshots_complete(repo)


def test_a_crash_between_the_phases_loses_nothing(tmp_path: Path) -> None:
    repo, _, old_pack = _partly_used_pack(tmp_path, pack_size=256 * 1024)
    extra = snapshot_files(repo, {"/other/x.bin": os.urandom(70_000)})
    repo.delete_snapshot(extra.id)  # a fully unused pack too
    index_before = {o.name for o in repo.store.list("index/")}
    packs_before = pack_names(repo)
    bytes_before = data_bytes(repo)

    class Crash(Exception):
        pass

    def crash() -> None:
        raise Crash

    with pytest.raises(Crash):
        prune(repo, between_phases=crash)
    # phase 1 only added: the new pack and the complete index; nothing was deleted
    assert packs_before < pack_names(repo)
    assert index_before < {o.name for o in repo.store.list("index/")}
    assert not list(repo.store.list("locks/"))
    assert_all_snapshots_complete(repo)
    # the next prune finishes the job
    result = prune(reopen(repo))
    assert old_pack not in pack_names(repo)
    assert result.blobs_duplicate == 15  # the copies phase 1 made are the ones kept
    # packs listed by both the old and the new index are not mistaken for half-used ones
    assert result.packs_repacked == 0
    assert len(list(repo.store.list("index/"))) == 1
    assert_all_snapshots_complete(repo)
    assert data_bytes(repo) < bytes_before - 100_000  # gone.bin and x.bin


def test_a_crash_before_the_new_index_loses_nothing(tmp_path: Path) -> None:
    repo, _, old_pack = _partly_used_pack(tmp_path, pack_size=256 * 1024)
    packs_before = pack_names(repo)

    def power_cut(packs: object) -> str:
        raise OSError("power cut")

    repo.write_index = power_cut  # type: ignore[method-assign,assignment]
    with pytest.raises(OSError, match="power cut"):
        prune(repo)
    # the repacked copy was uploaded but never indexed: a leftover, nothing more
    leftovers = pack_names(repo) - packs_before
    assert len(leftovers) == 1
    assert packs_before <= pack_names(repo)
    result = check(reopen(repo))
    assert result.ok
    assert [w.kind for w in result.warnings] == ["pack-unindexed"]
    assert_all_snapshots_complete(repo)
    again = prune(reopen(repo))
    assert again.packs_unindexed_deleted == 1
    assert old_pack not in pack_names(repo)
    assert not leftovers & pack_names(repo)
    assert_all_snapshots_complete(repo)


def test_prune_refuses_while_someone_else_holds_a_lock(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    s = snapshot_files(repo, {"/data/a.bin": os.urandom(50_000)})
    repo.delete_snapshot(s.id)
    objects = everything(repo)
    with (
        repo.lock(exclusive=False, purpose="backup"),
        pytest.raises(RepositoryLockedError, match="backup"),
    ):
        prune(repo)
    assert everything(repo) == objects


def test_prune_refuses_when_a_needed_pack_is_missing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    data = os.urandom(50_000)
    s = snapshot_files(repo, {"/data/a.bin": data})
    old = snapshot_files(repo, {"/data/old.bin": os.urandom(50_000)})
    repo.delete_snapshot(old.id)
    repo.store.delete(pack_of(repo, repo.blob_id(data[:4096])))
    objects = everything(repo)
    with pytest.raises(PruneRefusedError, match=r"missing from the store.*vaultwatch check"):
        prune(repo)
    assert everything(repo) == objects
    assert s.id in repo.snapshot_ids()


def test_prune_refuses_when_a_needed_blob_is_not_indexed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    snapshot_files(repo, {"/data/a.bin": os.urandom(50_000)})
    # an index file is lost: the packs it listed are unindexed, the snapshot's blobs unknown
    for obj in repo.store.list("index/"):
        repo.store.delete(obj.name)
    objects = everything(repo)
    with pytest.raises(PruneRefusedError, match="run `vaultwatch check`"):
        prune(repo)
    assert everything(repo) == objects


def test_prune_refuses_when_a_snapshot_cannot_be_read(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    s = snapshot_files(repo, {"/data/a.bin": os.urandom(50_000)})
    flip_byte(repo, f"snapshots/{s.id}", 60)
    objects = everything(repo)
    with pytest.raises(PruneRefusedError, match="snapshot cannot be read"):
        prune(repo)
    assert everything(repo) == objects


def test_prune_refuses_to_copy_a_damaged_blob(tmp_path: Path) -> None:
    repo, kept_blob, old_pack = _partly_used_pack(tmp_path, pack_size=256 * 1024)
    loc = repo.lookup(kept_blob)
    assert loc is not None
    flip_byte(repo, old_pack, loc.offset + 30)
    with pytest.raises(PruneRefusedError, match=f"blob {kept_blob.hex()[:8]}"):
        prune(repo)
    assert old_pack in pack_names(repo)


def _store_unindexed_pack(repo: Repository) -> str:
    builder = PackBuilder(repo.master.enc_key, DATA)
    payload = os.urandom(30_000)
    builder.add(repo.blob_id(payload), compress(payload), len(payload))
    pid, data = builder.finish()
    repo.store.put(pack_name(pid), data)
    return pack_name(pid)


def test_packs_no_index_lists_are_deleted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    snapshot_files(repo, {"/data/a.bin": os.urandom(50_000)})
    leftover = _store_unindexed_pack(repo)
    result = prune(repo)
    assert result.packs_unindexed == result.packs_unindexed_deleted == 1
    assert leftover not in pack_names(repo)
    assert_all_snapshots_complete(repo)


def test_packs_no_index_lists_stay_when_another_lock_appears(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    s = snapshot_files(repo, {"/data/a.bin": os.urandom(50_000)})
    snapshot_files(repo, {"/data/b.bin": os.urandom(50_000)})
    repo.delete_snapshot(s.id)
    leftover = _store_unindexed_pack(repo)

    def intruder() -> None:
        # a client that ignores locks starts a backup while prune runs: its pack may be that one
        doc = {
            "exclusive": False,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "time": time.time(),
            "purpose": "backup",
        }
        repo.store.put("locks/intruder", json.dumps(doc).encode())

    result = prune(repo, between_phases=intruder)
    assert leftover in pack_names(repo)
    assert result.packs_unindexed_deleted == 0
    assert any("another process holds a lock" in m for m in result.messages)
    assert result.packs_deleted == 2  # the rest of the work was done: s's data and trees
    repo.store.delete("locks/intruder")


def test_duplicate_blobs_keep_one_copy(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    data = os.urandom(40_000)
    snap = snapshot_files(repo, {"/data/a.bin": data})
    # a second writer stores the same chunks again (two backups racing do this)
    with repo.writer() as writer:
        for i in range(0, len(data), 4096):
            chunk = data[i : i + 4096]
            writer.add(DATA, repo.blob_id(chunk), compress(chunk), len(chunk))
    repo.load_index(reload=True)
    assert len(repo.index) == 10 + 10 + 2  # two copies of 10 chunks, the trees of / and /data
    before = data_bytes(repo)
    result = prune(repo)
    assert result.blobs_duplicate == 10
    assert result.blobs_removed == 10
    assert data_bytes(repo) < before - 35_000
    fresh = reopen(repo)
    assert len(fresh.index) == 12
    assert read_everything(fresh, snap) == 12
    assert_all_snapshots_complete(repo)


def test_index_entries_of_lost_unused_packs_are_dropped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    keep = snapshot_files(repo, {"/data/a.bin": os.urandom(30_000)})
    gone_data = os.urandom(30_000)
    gone = snapshot_files(repo, {"/data/gone.bin": gone_data})
    repo.delete_snapshot(gone.id)
    repo.store.delete(pack_of(repo, repo.blob_id(gone_data[:4096])))
    assert not check(reopen(repo)).ok  # the index still lists the lost pack
    result = prune(repo)
    assert result.packs_missing == 1
    assert check(reopen(repo)).ok
    assert read_everything(reopen(repo), keep) > 0


def test_plan_is_read_only_and_classifies_packs(tmp_path: Path) -> None:
    repo, _, old_pack = _partly_used_pack(tmp_path, pack_size=256 * 1024)
    objects = everything(repo)
    plan = plan_prune(repo)
    assert everything(repo) == objects
    actions = {pack_name(pid): a for pid, a in zip(plan.pack_ids, plan.actions, strict=True)}
    assert actions[old_pack] == "repack"
    assert plan.changes_anything
    # damaging the store file after planning is what phase 1's verification is for
    assert file_path(repo, old_pack).exists()
