"""Monitor fixtures: a tenant with one enrolled agent, its vault and a backup set."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.catalog.conftest import ACTOR, add_tenant, enroll
from vaultwatch.catalog import Agent, BackupMode, Catalog, JobKind, JobState
from vaultwatch.catalog.agent_reports import (
    JobReport,
    ReportedBackupSet,
    ReportedSnapshot,
    report_job,
    sync_backup_sets,
)
from vaultwatch.catalog.agents import record_heartbeat
from vaultwatch.catalog.soc_models import Alarm
from vaultwatch.catalog.vaults import register_tenant_vault

#: Just after the fixtures were made (rows carry real creation times).
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)


@dataclass
class Fleet:
    """One agent of one tenant, with a backup set `docs` (RPO one hour)."""

    catalog: Catalog
    agent_id: uuid.UUID
    tenant_id: uuid.UUID
    repository_id: uuid.UUID

    def agent(self, session: object) -> Agent:
        found = session.get(Agent, self.agent_id)  # type: ignore[attr-defined]
        assert isinstance(found, Agent)
        return found

    def heartbeat(self, at: datetime) -> None:
        with self.catalog.session() as session:
            record_heartbeat(
                session,
                self.agent_id,
                version="1.0",
                host_facts={},
                free_disk_bytes=10**9,
                gateway_reachable=True,
                now=at,
            )

    def job(
        self,
        state: JobState,
        at: datetime,
        *,
        job_id: uuid.UUID | None = None,
        kind: JobKind = JobKind.BACKUP,
        errors: list[str] | None = None,
        error_count: int | None = None,
        bytes_done: int = 0,
        snapshot: bool = False,
    ) -> uuid.UUID:
        job_id = job_id or uuid.uuid4()
        snap = None
        if snapshot:
            snap = ReportedSnapshot(
                vault_snapshot_id=uuid.uuid4().hex,
                hostname="srv1",
                paths=["/srv/docs"],
                started_at=at - timedelta(minutes=1),
                finished_at=at,
            )
        report = JobReport(
            kind=kind,
            state=state,
            backup_set="docs" if kind == JobKind.BACKUP else None,
            bytes_done=bytes_done,
            errors=errors or [],
            error_count=error_count,
            snapshot=snap,
        )
        with self.catalog.session() as session:
            report_job(
                session,
                self.agent(session),
                job_id,
                report,
                repository_id=self.repository_id,
                now=at,
            )
        return job_id

    def alarm(self, identifier: str) -> Alarm | None:
        with self.catalog.session() as session:
            alarm = session.scalars(select(Alarm).where(Alarm.identifier == identifier)).first()
            if alarm is not None:
                session.expunge(alarm)
            return alarm

    def alarms(self, group_prefix: str = "") -> list[Alarm]:
        with self.catalog.session() as session:
            rows = list(
                session.scalars(
                    select(Alarm)
                    .where(Alarm.alert_group.startswith(group_prefix))
                    .order_by(Alarm.id)
                )
            )
            for row in rows:
                session.expunge(row)
            return rows


@pytest.fixture
def fleet(catalog: Catalog, key: bytes) -> Fleet:
    tenant = add_tenant(catalog, "Acme")
    enrolled = enroll(catalog, tenant, key, hostname="srv1")
    with catalog.session() as session:
        vault = register_tenant_vault(session, tenant.id, "/srv/vault/acme", actor=ACTOR)
        agent = session.get(Agent, enrolled.agent.id)
        assert agent is not None
        sync_backup_sets(
            session,
            agent,
            vault.id,
            [
                ReportedBackupSet(
                    name="docs", paths=["/srv/docs"], mode=BackupMode.CONTINUOUS, rpo_seconds=3600
                )
            ],
        )
    return Fleet(catalog, enrolled.agent.id, tenant.id, vault.id)
