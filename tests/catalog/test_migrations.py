"""The migrations build the schema the models describe, on both engines."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from vaultwatch.catalog import (
    BackupMode,
    BackupSet,
    Base,
    Catalog,
    Job,
    JobKind,
    JobState,
    Repository,
    Snapshot,
    make_engine,
)
from vaultwatch.catalog.__main__ import main as catalog_main
from vaultwatch.catalog.db import current_revision, downgrade, head_revision, upgrade
from vaultwatch.catalog.errors import CatalogSchemaError

from .conftest import add_tenant, enroll

EXPECTED_TABLES = {
    "tenants",
    "users",
    "agents",
    "agent_credentials",
    "enrollment_tokens",
    "heartbeats",
    "repositories",
    "backup_sets",
    "snapshots",
    "jobs",
    "audit_log",
    "leases",
    # the operations center (revision 0003)
    "api_keys",
    "alarms",
    "alarm_history",
    "alarm_journal",
    "server_nodes",
    "node_health_samples",
    "topology_edges",
    "probes",
    "silences",
    "escalation_policies",
    "incidents",
    "incident_tenants",
    "incident_timeline",
    "customer_updates",
    "support_cases",
    "case_entries",
    "notifications",
    "snapshot_holds",
    # saved console views (revision 0006)
    "saved_views",
    # retention's vault trash (revision 0008)
    "vault_trash",
}


def _diffs(url: URL) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_from_empty_builds_every_table(catalog_url: URL) -> None:
    engine = make_engine(catalog_url)
    try:
        assert current_revision(engine) is None
        upgrade(catalog_url)
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert tables == EXPECTED_TABLES | {"alembic_version"}
    finally:
        engine.dispose()


def test_models_match_migrations(catalog_url: URL) -> None:
    # The comparison must see a difference when there is one, or "no diffs" proves nothing.
    assert len(_diffs(catalog_url)) >= len(EXPECTED_TABLES)
    upgrade(catalog_url)
    assert _diffs(catalog_url) == []


def test_indexes_the_soc_relies_on_exist(catalog: Catalog) -> None:
    inspector = inspect(catalog.engine)

    def indexed(table: str) -> list[list[str | None]]:
        return [index["column_names"] for index in inspector.get_indexes(table)]

    assert ["last_seen_at"] in indexed("agents")
    assert ["state"] in indexed("jobs")
    assert ["tenant_id", "state"] in indexed("jobs")
    for table in EXPECTED_TABLES:
        columns = {column["name"] for column in inspector.get_columns(table)}
        if "tenant_id" in columns:  # tenant-scoped queries must never scan the table
            assert any(index[0] == "tenant_id" for index in indexed(table)), table
    assert ["tenant_id", "occurred_at"] in indexed("audit_log")
    # Correlation's check of every batch: partial indexes of the open roots and the symptoms.
    assert ["entity", "severity"] in indexed("alarms")
    assert ["suppressed_by"] in indexed("alarms")


def test_upgrade_twice_is_a_no_op_and_downgrade_empties(catalog_url: URL) -> None:
    upgrade(catalog_url)
    upgrade(catalog_url)
    downgrade(catalog_url, "base")
    engine = make_engine(catalog_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert current_revision(engine) is None
    finally:
        engine.dispose()
    upgrade(catalog_url)
    assert _diffs(catalog_url) == []


def _job_states(catalog: Catalog) -> dict[uuid.UUID, str]:
    with catalog.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, state FROM jobs")).all()
    return {uuid.UUID(str(job_id)): state for job_id, state in rows}


def _state_column_and_check(catalog: Catalog) -> tuple[int | None, str]:
    inspector = inspect(catalog.engine)
    (column,) = [c for c in inspector.get_columns("jobs") if c["name"] == "state"]
    checks = [c for c in inspector.get_check_constraints("jobs") if c["name"] == "ck_jobs_state"]
    assert len(checks) == 1, checks
    return getattr(column["type"], "length", None), str(checks[0]["sqltext"])


def _refused(catalog: Catalog, state: str) -> bool:
    try:
        with catalog.engine.begin() as connection:
            connection.execute(text("UPDATE jobs SET state = :state"), {"state": state})
    except (IntegrityError, DataError):  # the CHECK constraint, or (PostgreSQL) the length
        return True
    return False


def test_new_job_states_survive_a_downgrade_and_upgrade_round_trip(
    catalog_url: URL, key: bytes
) -> None:
    catalog = Catalog(catalog_url)
    try:
        catalog.upgrade()
        tenant = add_tenant(catalog, "Acme")
        agent = enroll(catalog, tenant, key).agent
        with catalog.session() as session:
            jobs = {
                state: Job(tenant_id=tenant.id, agent_id=agent.id, kind=JobKind.BACKUP, state=state)
                for state in JobState
            }
            session.add_all(jobs.values())
        ids = {state: job.id for state, job in jobs.items()}
        assert _job_states(catalog) == {ids[state]: state.value for state in JobState}
        assert _state_column_and_check(catalog)[0] == len("waiting_for_network")

        downgrade(catalog.engine, "0001")
        assert current_revision(catalog.engine) == "0001"
        folded = {
            JobState.WAITING_FOR_NETWORK: "interrupted",
            JobState.PARTIAL: "succeeded",
            JobState.UNCHANGED: "succeeded",  # revision 0008's downgrade
        }
        assert _job_states(catalog) == {
            ids[state]: folded.get(state, state.value) for state in JobState
        }
        length, check = _state_column_and_check(catalog)
        assert length == 11
        assert "'interrupted'" in check and "partial" not in check and "waiting" not in check
        assert "unchanged" not in check
        assert _refused(catalog, "partial") and _refused(catalog, "waiting_for_network")

        catalog.upgrade()
        assert current_revision(catalog.engine) == head_revision()
        assert _diffs(catalog_url) == []
        length, check = _state_column_and_check(catalog)
        assert length == len("waiting_for_network")
        assert "'waiting_for_network'" in check and "'partial'" in check
        assert _refused(catalog, "exploded")
        # The downgrade's folding stays; the new states are accepted again.
        assert _job_states(catalog)[ids[JobState.PARTIAL]] == "succeeded"
        with catalog.session() as session:
            again = Job(
                tenant_id=tenant.id,
                agent_id=agent.id,
                kind=JobKind.BACKUP,
                state=JobState.WAITING_FOR_NETWORK,
            )
            session.add(again)
            session.flush()
            session.get_one(Job, ids[JobState.PARTIAL]).state = JobState.PARTIAL
        with catalog.session() as session:
            stored = session.get_one(Job, again.id)
            assert stored.state is JobState.WAITING_FOR_NETWORK and not stored.state.is_final
            finished = session.get_one(Job, ids[JobState.PARTIAL])
            assert finished.state is JobState.PARTIAL and finished.state.is_final
    finally:
        catalog.dispose()


def test_check_schema_refuses_an_unmigrated_database(catalog_url: URL) -> None:
    catalog = Catalog(catalog_url)
    try:
        with pytest.raises(CatalogSchemaError, match="run the catalog upgrade"):
            catalog.check_schema()
        catalog.upgrade()
        catalog.check_schema()
    finally:
        catalog.dispose()


def test_maintenance_command_upgrades_and_reports(
    catalog_url: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    url = catalog_url.render_as_string(hide_password=False)
    assert catalog_main(["--url", url, "current"]) == 0
    assert "database: empty" in capsys.readouterr().out
    assert catalog_main(["--url", url, "upgrade"]) == 0
    assert catalog_main(["--url", url, "current"]) == 0
    assert f"database: {head_revision()}" in capsys.readouterr().out


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/sub/dir/catalog.db")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_postgres_urls_use_psycopg() -> None:
    for url in ("postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg2://u@h/db"):
        engine = make_engine(url)
        assert engine.dialect.driver == "psycopg"
        engine.dispose()
    with pytest.raises(ValueError, match="unsupported"):
        make_engine("mysql://u@h/db")


def test_foreign_keys_are_enforced(catalog: Catalog) -> None:
    with pytest.raises(IntegrityError), catalog.session() as session:
        session.add(
            Repository(tenant_id=uuid.uuid4(), name="main", primary_location="/srv/vault/acme")
        )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE jobs SET state = 'exploded'",
        "UPDATE jobs SET kind = 'mining'",
        "UPDATE backup_sets SET mode = 'scheduled', schedule = NULL",
        "UPDATE backup_sets SET rpo_target_seconds = 0",
    ],
)
def test_check_constraints_hold_even_for_raw_sql(
    catalog: Catalog, key: bytes, statement: str
) -> None:
    tenant = add_tenant(catalog, "Acme")
    agent = enroll(catalog, tenant, key).agent
    with catalog.session() as session:
        repository = Repository(
            tenant_id=tenant.id, name="main", primary_location="/srv/vault/acme"
        )
        session.add(repository)
        session.flush()
        backup_set = BackupSet(
            tenant_id=tenant.id,
            agent_id=agent.id,
            repository_id=repository.id,
            name="docs",
            paths=["/srv/docs"],
            mode=BackupMode.CONTINUOUS,
            rpo_target_seconds=3600,
        )
        session.add(backup_set)
        session.flush()
        session.add(
            Job(
                tenant_id=tenant.id,
                agent_id=agent.id,
                backup_set_id=backup_set.id,
                kind=JobKind.BACKUP,
                state=JobState.QUEUED,
            )
        )
    with pytest.raises(IntegrityError), catalog.session() as session:
        session.execute(text(statement))


def test_timestamps_are_stored_and_returned_as_aware_utc(catalog: Catalog) -> None:
    tenant = add_tenant(catalog, "Acme")
    plus_two = timezone(timedelta(hours=2))
    started = datetime(2024, 3, 1, 14, 30, 15, 123456, tzinfo=plus_two)
    with catalog.session() as session:
        repository = Repository(
            tenant_id=tenant.id, name="main", primary_location="/srv/vault/acme"
        )
        session.add(repository)
        session.flush()
        session.add(
            Snapshot(
                tenant_id=tenant.id,
                repository_id=repository.id,
                vault_snapshot_id="ab" * 32,
                hostname="srv1",
                paths=["/srv"],
                started_at=started,
                finished_at=started + timedelta(minutes=5),
            )
        )
    with catalog.session() as session:
        snapshot = session.execute(select(Snapshot)).scalar_one()
        assert snapshot.started_at == started
        assert snapshot.started_at.tzinfo == UTC
        assert snapshot.started_at.hour == 12
        # Comparisons in SQL are chronological whatever offset the argument has.
        later = datetime(2024, 3, 1, 12, 32, tzinfo=UTC).astimezone(plus_two)
        found = session.execute(select(Snapshot).where(Snapshot.finished_at > later)).all()
        assert len(found) == 1
    with pytest.raises(StatementError, match="naive datetime"), catalog.session() as session:
        session.execute(select(Snapshot).where(Snapshot.started_at > datetime(2024, 1, 1))).all()


def test_job_progress_policy_and_snapshot_summary_round_trip(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    agent = enroll(catalog, tenant, key).agent
    now = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    retention = {"keep_last": 10, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}
    with catalog.session() as session:
        repository = Repository(
            tenant_id=tenant.id,
            name="main",
            primary_location="s3:https://minio.dc1.example.com/vaults/acme",
            secondary_location="s3:https://minio.dc2.example.com/vaults/acme",
        )
        session.add(repository)
        session.flush()
        backup_set = BackupSet(
            tenant_id=tenant.id,
            agent_id=agent.id,
            repository_id=repository.id,
            name="nightly",
            paths=["/srv/db", "/etc"],
            excludes=["*.tmp", "/srv/db/cache"],
            mode=BackupMode.SCHEDULED,
            schedule="0 2 * * *",
            rpo_target_seconds=86400,
            retention=retention,
        )
        session.add(backup_set)
        session.flush()
        snapshot = Snapshot(
            tenant_id=tenant.id,
            repository_id=repository.id,
            backup_set_id=backup_set.id,
            agent_id=agent.id,
            vault_snapshot_id="cd" * 32,
            hostname="srv1",
            paths=["/srv/db", "/etc"],
            tags=["nightly"],
            started_at=now,
            finished_at=now + timedelta(minutes=3),
            files_total=1200,
            bytes_total=5 * 2**40,
            files_new=3,
            files_changed=20,
            bytes_added=7 * 2**30,
        )
        session.add(snapshot)
        session.flush()
        session.add(
            Job(
                tenant_id=tenant.id,
                agent_id=agent.id,
                backup_set_id=backup_set.id,
                kind=JobKind.BACKUP,
                state=JobState.SUCCEEDED,
                started_at=now,
                finished_at=now + timedelta(minutes=3),
                bytes_done=5 * 2**40,
                bytes_total=5 * 2**40,
                files_done=1200,
                files_total=1200,
                rate_bytes_per_second=1.5e9,
                eta_seconds=0,
                error_count=2,
                errors=["/srv/db/lock: permission denied", "/etc/shadow: permission denied"],
                snapshot_id=snapshot.id,
            )
        )
    with catalog.session() as session:
        job = session.execute(select(Job).where(Job.state == JobState.SUCCEEDED)).scalar_one()
        assert job.kind is JobKind.BACKUP and job.state is JobState.SUCCEEDED
        assert job.state.is_final
        assert job.bytes_total == 5 * 2**40  # beyond 32 bits
        assert job.errors[1] == "/etc/shadow: permission denied"
        assert job.snapshot is not None and job.snapshot.bytes_added == 7 * 2**30
        stored = session.execute(select(BackupSet)).scalar_one()
        assert stored.mode is BackupMode.SCHEDULED
        assert stored.retention == retention
        assert stored.excludes == ["*.tmp", "/srv/db/cache"]
        assert (
            stored.repository.secondary_location == "s3:https://minio.dc2.example.com/vaults/acme"
        )


def test_in_place_changes_to_json_documents_are_saved(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    agent = enroll(catalog, tenant, key).agent
    with catalog.session() as session:
        job = Job(tenant_id=tenant.id, agent_id=agent.id, kind=JobKind.BACKUP, state="running")
        session.add(job)
    with catalog.session() as session:
        loaded = session.get(Job, job.id)
        assert loaded is not None
        before = loaded.updated_at
        loaded.errors.append("/srv/a: permission denied")
        loaded.error_count += 1
        stored_agent = session.get(type(agent), agent.id)
        assert stored_agent is not None
        stored_agent.host_facts["os"] = "Debian 12"
    with catalog.session() as session:
        reloaded = session.get(Job, job.id)
        assert reloaded is not None
        assert reloaded.errors == ["/srv/a: permission denied"]
        assert reloaded.state is JobState.RUNNING  # plain strings are accepted and typed on read
        assert reloaded.updated_at > before
        stored_agent = session.get(type(agent), agent.id)
        assert stored_agent is not None and stored_agent.host_facts == {"os": "Debian 12"}
