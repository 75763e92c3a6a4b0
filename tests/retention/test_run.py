"""Retention runs on a real managed vault behind the real gateway (SQLite and PostgreSQL catalogs)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import blake3
import pytest
from sqlalchemy import select

from tests.gateway.harness import upload
from tests.retention.harness import PASSPHRASE, ManagedVault, random_files
from vaultwatch.catalog.models import BackupSet, TrashState, VaultTrash
from vaultwatch.catalog.soc_models import SnapshotHold
from vaultwatch.engine.check import PACK_RETIRED, check
from vaultwatch.engine.manifest import Manifest
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.retention_state import RETENTION_STATE, RetentionState
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.retention.run import VaultOutcome
from vaultwatch.retention.suspects import SUSPECTS, Suspects
from vaultwatch.retention.vault import pack_object, read_state


def _four_snapshots(vault: ManagedVault) -> tuple[list[str], dict[str, dict[str, bytes]]]:
    """Four snapshots, each holding only its own random file (and one shared small file)."""
    ids, contents = [], {}
    for name in ("a", "b", "c", "d"):
        files = {**random_files(f"{name}.bin"), "common.txt": b"shared by all\n"}
        snap = vault.backup(files)
        ids.append(snap.id)
        contents[snap.id] = files
    return ids, contents


def _objects(vault: ManagedVault) -> dict[str, bytes]:
    return {
        name: blake3.blake3(vault.server().get(name)).digest()
        for name in vault.names()
        if not name.startswith("locks/")
    }


def test_run_removes_what_the_policy_says_and_kept_snapshots_restore(vault: ManagedVault) -> None:
    ids, contents = _four_snapshots(vault)
    vault.set_policy({"last": 2})
    kept_refs = set(vault.manifest(ids[2]).packs) | set(vault.manifest(ids[3]).packs)
    old_refs = set(vault.manifest(ids[0]).packs) | set(vault.manifest(ids[1]).packs)
    assert old_refs - kept_refs, "the old snapshots' own files must be in packs of their own"

    before = _objects(vault)
    dry = vault.run(dry_run=True)
    assert _objects(vault) == before  # a dry run changes nothing at all
    (judged,) = dry.sets
    assert [line.snapshot for line in judged.lines if line.action == "remove"] == [ids[1], ids[0]]
    assert dry.packs_garbage == len(old_refs - kept_refs)  # what the forgotten ones alone used

    done = vault.run()
    assert done.snapshots_removed == 2
    assert vault.names("snapshots/") == {f"snapshots/{i}" for i in ids[2:]}
    assert vault.names("manifests/") == {f"manifests/{i}" for i in ids[2:]}
    assert {f"trash/snapshots/{i}" for i in ids[:2]} <= vault.names("trash/")
    # Every pack a kept snapshot needs is in place; every pack only the forgotten ones used is
    # in the trash; nothing else is left in data/.
    data = {n.rsplit("/", 1)[-1] for n in vault.names("data/")}
    assert data == kept_refs
    assert {f"trash/{pack_object(p)}" for p in old_refs - kept_refs} <= vault.names("trash/data/")
    assert done.packs_trashed == len(old_refs - kept_refs)
    for sid in ids[2:]:
        assert vault.restored(sid, sid[:8]) == contents[sid]
    # The vault is sound for a check with the key: removed packs are only a warning.
    report = check(Repository.open(vault.server(), PASSPHRASE), read_data=True)
    assert report.ok, report.to_dict()
    assert [w.kind for w in report.warnings] == [PACK_RETIRED]

    # The agent's long-lived index still listed the collected packs: after its next lock it
    # reads retention/state, so content equal to a collected file is stored again, not
    # deduplicated against a pack that is gone.
    state = RetentionState.from_json(vault.server().get(RETENTION_STATE))
    assert state.generation == 1 and not state.doomed
    again = vault.backup(contents[ids[0]])
    assert vault.repo.retention_generation == 1
    assert vault.restored(again.id, "again") == contents[ids[0]]
    assert set(vault.manifest(again.id).packs) <= {
        n.rsplit("/", 1)[-1] for n in vault.names("data/")
    }


def test_held_snapshots_are_never_removed(vault: ManagedVault) -> None:
    ids, contents = _four_snapshots(vault)
    vault.set_policy({"last": 1})
    second = vault.manifest(ids[1])
    with vault.gateway.catalog.session() as session:
        set_id = session.scalars(
            select(BackupSet.id).where(BackupSet.tenant_id == vault.tenant_id)
        ).one()
        session.add(
            SnapshotHold(
                tenant_id=vault.tenant_id,
                backup_set_id=set_id,
                reason="ransomware suspected",
                held_before=second.time + timedelta(milliseconds=1),
                created_by="system:test",
            )
        )
    outcome = vault.run()
    (judged,) = outcome.sets
    assert judged.held == 2
    assert outcome.snapshots_removed == 1
    assert vault.names("snapshots/") == {f"snapshots/{i}" for i in (ids[0], ids[1], ids[3])}
    for sid in (ids[0], ids[1], ids[3]):
        assert vault.restored(sid, sid[:8]) == contents[sid]


def test_trash_is_kept_for_the_grace_period_then_purged(vault: ManagedVault) -> None:
    ids, _ = _four_snapshots(vault)
    vault.set_policy({"last": 1})
    first = vault.run()
    trashed = vault.names("trash/")
    assert len(trashed) == 3 * 2 + first.packs_trashed  # 3 snapshots, their manifests, packs

    later = vault.run(now=first_run_time(vault) + timedelta(days=6))
    assert later.objects_purged == 0 and vault.names("trash/") == trashed

    purge = vault.run(now=first_run_time(vault) + timedelta(days=7, minutes=1))
    assert purge.objects_purged == len(trashed)
    assert vault.names("trash/") == set()
    with vault.gateway.catalog.session() as session:
        states = session.scalars(
            select(VaultTrash.state).where(VaultTrash.tenant_id == vault.tenant_id)
        ).all()
    assert states and set(states) == {TrashState.PURGED}
    assert vault.names("snapshots/") == {f"snapshots/{ids[3]}"}


def first_run_time(vault: ManagedVault) -> datetime:
    with vault.gateway.catalog.session() as session:
        first = session.scalars(
            select(VaultTrash.trashed_at).where(VaultTrash.tenant_id == vault.tenant_id)
        ).first()
    assert first is not None
    return first


def test_a_manifest_that_claims_nothing_cannot_cost_older_snapshots_their_data(
    vault: ManagedVault,
) -> None:
    honest = vault.backup(random_files("a.bin"))
    newer = vault.backup(random_files("b.bin"))
    contents = vault.restored(newer.id, "before")
    # Malware with the agent's credential adds a snapshot whose manifest needs nothing.
    client = vault.gateway.client(vault.agent.credential)
    fake = b"not a real snapshot, but stored under its hash"
    fake_id = blake3.blake3(fake).hexdigest()
    claim = Manifest(
        fake_id, newer.time, "srv1", newer.paths, newer.tags, packs=[], backup_set="docs"
    )
    r = upload(client, f"manifests/{fake_id}", claim.to_json())
    assert r.status_code == 201, r.text
    r = upload(client, f"snapshots/{fake_id}", fake)
    assert r.status_code == 201, r.text

    vault.set_policy({"last": 2})
    outcome = vault.run()
    assert outcome.snapshots_removed == 1  # the honest old one, by the policy
    assert f"snapshots/{honest.id}" not in vault.names("snapshots/")
    # The newer honest snapshot's own manifest still names its packs: they stay.
    assert set(vault.manifest(newer.id).packs) <= {
        n.rsplit("/", 1)[-1] for n in vault.names("data/")
    }
    assert vault.restored(newer.id, "after") == contents


def test_collection_waits_for_backups_that_were_running_at_the_announcement(
    vault: ManagedVault,
) -> None:
    ids, contents = _four_snapshots(vault)
    vault.set_policy({"last": 1})
    with vault.repo.lock(exclusive=False, purpose="backup"):  # a backup is running
        waiting = vault.run()
        assert waiting.collection == "waiting" and waiting.packs_trashed == 0
        assert waiting.packs_waiting > 0
        state = RetentionState.from_json(vault.server().get(RETENTION_STATE))
        assert len(state.doomed) == waiting.packs_waiting and state.waiting_for_locks
    done = vault.run()
    assert done.packs_trashed == waiting.packs_waiting and done.packs_waiting == 0
    assert vault.restored(ids[3], "latest") == contents[ids[3]]


def test_snapshots_without_a_manifest_stop_collection(vault: ManagedVault) -> None:
    _four_snapshots(vault)
    # A snapshot written without a manifest (as an older agent or a plain CLI would).
    snap = vault.backup(random_files("e.bin"))
    vault.server().delete(f"manifests/{snap.id}")
    vault.set_policy({"last": 1})
    outcome = vault.run()
    assert outcome.collection == "skipped" and outcome.packs_trashed == 0
    assert any("no readable reference manifest" in m for m in outcome.messages)
    assert f"snapshots/{snap.id}" in vault.names("snapshots/")  # never judged blind


def test_a_backup_running_during_a_run_keeps_its_packs_readable(
    vault: ManagedVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention runs after the backup's packs are stored and before its manifest is."""
    earlier_files = random_files("a.bin")
    earlier = vault.backup(earlier_files)
    outcomes: list[VaultOutcome] = []
    store_snapshot = vault.repo.save_snapshot

    def retention_runs_first(snapshot: Snapshot) -> str:
        outcomes.append(vault.run())
        return store_snapshot(snapshot)

    monkeypatch.setattr(vault.repo, "save_snapshot", retention_runs_first)
    files = random_files("b.bin")
    running = vault.backup(files)
    (during,) = outcomes
    assert during.packs_garbage > 0 and during.packs_unconfirmed == during.packs_garbage
    assert during.packs_trashed == 0 and during.packs_waiting == 0
    assert not read_state(vault.server()).doomed
    # A fresh reader indexes every pack the finished snapshot needs.
    assert vault.restored(running.id, "finished") == files
    monkeypatch.undo()
    after = vault.run()
    assert after.packs_garbage == 0 and after.packs_unconfirmed == 0
    assert SUSPECTS not in vault.names("retention/")
    assert vault.restored(earlier.id, "earlier") == earlier_files


def test_a_leftover_pack_is_collected_once_the_backups_seen_with_it_have_finished(
    vault: ManagedVault,
) -> None:
    kept_files = random_files("a.bin")
    kept = vault.backup(kept_files)
    leftover = pack_object(os.urandom(32).hex())  # an interrupted backup's pack
    with vault.repo.lock(exclusive=False, purpose="backup") as lock:
        vault.server().put(leftover, os.urandom(4096))
        first = vault.run()
        assert first.packs_unconfirmed == 1 and first.packs_trashed == 0
        groups = Suspects.from_json(vault.server().get(SUSPECTS)).groups
        assert [sorted(g.locks) for g in groups] == [[lock.name]]
        second = vault.run()  # the backup seen with it still runs: still only watched
        assert second.packs_unconfirmed == 1 and second.packs_waiting == 0
        assert leftover in vault.names("data/")
    third = vault.run()
    assert third.packs_trashed == 1 and third.packs_unconfirmed == 0
    assert vault.names("data/") & {leftover} == set()
    assert f"trash/{leftover}" in vault.names("trash/")
    assert SUSPECTS not in vault.names("retention/")
    assert vault.restored(kept.id, "kept") == kept_files
