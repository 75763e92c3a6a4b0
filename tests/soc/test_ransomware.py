"""The ransomware guard: mass change against the set's history raises a critical alarm and a hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.catalog.conftest import add_tenant, enroll
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.models import AuditEntry, BackupMode, BackupSet, Repository, Snapshot
from vaultwatch.catalog.soc_models import Alarm, Severity, SnapshotHold
from vaultwatch.soc import ransomware
from vaultwatch.soc.ransomware import HoldReleasedError

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
OPERATOR = "user:00000000-0000-0000-0000-0000000000aa"


def _backup_set(catalog: Catalog, key: bytes) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    tenant = add_tenant(catalog, "Acme")
    agent = enroll(catalog, tenant, key, "files1").agent
    with catalog.session() as session:
        repo = Repository(tenant_id=tenant.id, name="acme", primary_location="/srv/vault/acme")
        session.add(repo)
        session.flush()
        backup_set = BackupSet(
            tenant_id=tenant.id,
            agent_id=agent.id,
            repository_id=repo.id,
            name="documents",
            paths=["/srv/docs"],
            mode=BackupMode.CONTINUOUS,
            rpo_target_seconds=3600,
        )
        session.add(backup_set)
        session.flush()
        return tenant.id, repo.id, backup_set.id


def _snapshot(
    catalog: Catalog,
    ids: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    hour: int,
    changed: int,
    bytes_added: int = 10_000,
    bytes_stored: int | None = None,
    bytes_total: int = 1_000_000,
) -> Snapshot:
    tenant_id, repo_id, set_id = ids
    with catalog.session() as session:
        agent_id = session.scalar(select(BackupSet.agent_id).where(BackupSet.id == set_id))
        snap = Snapshot(
            tenant_id=tenant_id,
            repository_id=repo_id,
            backup_set_id=set_id,
            agent_id=agent_id,
            vault_snapshot_id=f"{hour:064x}",
            hostname="files1",
            paths=["/srv/docs"],
            started_at=T0 + timedelta(hours=hour),
            finished_at=T0 + timedelta(hours=hour, minutes=5),
            files_total=1000,
            bytes_total=bytes_total,
            files_new=changed // 2,
            files_changed=changed - changed // 2,
            bytes_added=bytes_added,
            bytes_stored=bytes_stored,
        )
        session.add(snap)
        session.flush()
        session.expunge(snap)
        return snap


def _guard(catalog: Catalog, snap: Snapshot) -> ransomware.Verdict | None:
    """Judge `snap` the way job reports run: in the tenant's scoped session."""
    with catalog.session(tenant_id=snap.tenant_id) as session:
        row = session.get(Snapshot, snap.id)
        assert row is not None
        return ransomware.guard_snapshot(session, row, now=row.finished_at)


def test_normal_history_then_mass_change_raises_a_critical_alarm_and_holds(
    catalog: Catalog, key: bytes
) -> None:
    ids = _backup_set(catalog, key)
    earlier = [_snapshot(catalog, ids, hour, changed=20 + hour) for hour in range(5)]
    for snap in earlier:
        assert _guard(catalog, snap) is None
    suspect = _snapshot(catalog, ids, 6, changed=900, bytes_added=850_000)
    verdict = _guard(catalog, suspect)
    assert verdict is not None
    assert verdict.reasons == [
        "90% files new or changed (usually 2%)",
        "85% bytes new (usually 1%)",
    ]
    assert _guard(catalog, suspect) == verdict  # reported again: same alarm, same hold
    with catalog.session() as session:
        alarm = session.get(Alarm, verdict.alarm_id)
        assert alarm is not None
        assert alarm.alert_group == "ransomware.suspected"
        assert alarm.severity == Severity.CRITICAL and alarm.tally == 1
        assert alarm.tenant_id == ids[0] and alarm.alert_key == str(ids[2])
        assert alarm.entity == f"agent:{alarm.agent_id}"
        holds = session.scalars(select(SnapshotHold)).all()
        assert [h.id for h in holds] == [verdict.hold_id]
        assert holds[0].held_before == suspect.finished_at
        held = ransomware.held_snapshot_ids(session, ids[2])
    assert held == {s.id for s in earlier}
    with catalog.session() as session:
        hold = ransomware.release_hold(
            session, verdict.hold_id, OPERATOR, now=T0 + timedelta(days=1)
        )
        assert hold.released_by == OPERATOR
        assert ransomware.held_snapshot_ids(session, ids[2]) == set()
        with pytest.raises(HoldReleasedError):
            ransomware.release_hold(session, verdict.hold_id, OPERATOR)
        audit = session.execute(
            select(AuditEntry.action, AuditEntry.actor)
            .where(AuditEntry.action.like("snapshot_hold.%"))
            .order_by(AuditEntry.id)
        ).all()
    assert [tuple(a) for a in audit] == [
        ("snapshot_hold.create", ransomware.ACTOR),
        ("snapshot_hold.release", OPERATOR),
    ]


def _incompressible_after(catalog: Catalog, key: bytes, usual: int | None) -> Snapshot:
    """Five quiet snapshots that stored `usual` bytes of their 4 MiB of new content (None:
    not reported), then one as quiet whose new content did not compress at all."""
    ids = _backup_set(catalog, key)
    sizes = {"bytes_total": 1 << 30, "bytes_added": 4 << 20}
    for hour in range(5):
        quiet = _snapshot(catalog, ids, hour, 20, bytes_stored=usual, **sizes)
        assert _guard(catalog, quiet) is None
    return _snapshot(catalog, ids, 6, 20, bytes_stored=(4 << 20) + 4096, **sizes)


def test_content_that_stops_compressing_raises_the_alarm_from_the_reported_sizes(
    catalog: Catalog, key: bytes
) -> None:
    suspect = _incompressible_after(catalog, key, usual=2 << 20)  # it used to halve
    verdict = _guard(catalog, suspect)
    assert verdict is not None
    assert verdict.reasons == ["new content stopped compressing (100% stored, usually 50%)"]
    with catalog.session() as session:
        alarm = session.get(Alarm, verdict.alarm_id)
        assert alarm is not None and alarm.severity == Severity.CRITICAL
        assert suspect.backup_set_id is not None
        assert ransomware.held_snapshot_ids(session, suspect.backup_set_id) != set()


def test_snapshots_without_stored_sizes_leave_the_compression_rule_out(
    catalog: Catalog, key: bytes
) -> None:
    # A history from agents that did not send bytes_stored: nothing to compare with.
    assert _guard(catalog, _incompressible_after(catalog, key, usual=None)) is None


def test_busy_sets_short_histories_and_large_single_files(catalog: Catalog, key: bytes) -> None:
    ids = _backup_set(catalog, key)
    first = _snapshot(catalog, ids, 0, changed=1000, bytes_added=1_000_000)
    assert _guard(catalog, first) is None  # the first backup has no history to compare with
    busy = [_snapshot(catalog, ids, hour, changed=600) for hour in range(1, 5)]
    assert _guard(catalog, busy[-1]) is None  # this set always changes a lot
    with catalog.session() as session:
        assert session.scalars(select(Alarm)).all() == []
        assert ransomware.held_snapshot_ids(session, ids[2]) == set()


def test_new_content_that_stops_compressing_is_suspect() -> None:
    class Row:
        def __init__(self, stored: int) -> None:
            self.files_total, self.files_new, self.files_changed = 100, 1, 1
            self.bytes_total, self.bytes_added, self.bytes_stored = 100 << 20, 4 << 20, stored

    history = [Row(1 << 20) for _ in range(5)]
    assert ransomware.assess(Row(4 << 20), history) == [
        "new content stopped compressing (100% stored, usually 25%)"
    ]
    assert ransomware.assess(Row(2 << 20), history) == []


def test_the_guard_duty_judges_snapshots_recorded_since_its_last_pass(
    catalog: Catalog, key: bytes
) -> None:
    ids = _backup_set(catalog, key)
    for hour in range(5):
        _snapshot(catalog, ids, hour, changed=20)
    _snapshot(catalog, ids, 5, changed=900)
    with catalog.session() as session:
        assert ransomware.guard_recent(session, T0 + timedelta(hours=4, minutes=30)) == 1
    with catalog.session() as session:
        alarm = session.scalars(
            select(Alarm).where(Alarm.alert_group == "ransomware.suspected")
        ).one()
        assert alarm.severity == Severity.CRITICAL and alarm.tally == 1
        assert len(ransomware.open_holds(session, ids[2])) == 1
    with catalog.session() as session:  # judged again: idempotent
        assert ransomware.guard_recent(session, T0) == 1
    with catalog.session() as session:
        alarm = session.scalars(
            select(Alarm).where(Alarm.alert_group == "ransomware.suspected")
        ).one()
        assert alarm.tally == 1 and len(ransomware.open_holds(session, ids[2])) == 1
