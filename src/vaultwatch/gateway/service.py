"""The gateway's domain functions: enrollment, authentication, heartbeats and job reports.

HTTP handlers call these with parsed input and render what they return; the
rules live here and in the catalog, so the same behaviour holds whatever
front end calls them (the API today, a CLI or a test tomorrow).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vaultwatch.catalog import Agent, Catalog, Job
from vaultwatch.catalog.agent_lifecycle import RotatedCredential, rotate_agent_credential
from vaultwatch.catalog.agent_reports import (
    JobReport,
    ReportedBackupSet,
    report_job,
    sync_backup_sets,
)
from vaultwatch.catalog.agents import record_heartbeat
from vaultwatch.catalog.db import confine_to_tenant, database_now
from vaultwatch.catalog.enrollment import (
    AuthenticatedAgent,
    authenticate_agent,
    redeem_enrollment_token,
)
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.gateway.vault import AgentIdentity, VaultAccess

MAX_PLATFORM_LENGTH = 200

#: Backup sets reported unchanged are written again after this long anyway, so sets that
#: another server process changed meanwhile are brought back in line within this time.
SETS_RESYNC_SECONDS = 120.0


@dataclass(frozen=True)
class Enrollment:
    """What a newly enrolled agent is told (the credential only this once)."""

    agent_id: uuid.UUID
    credential: str
    tenant_id: uuid.UUID
    tenant_name: str
    server_time: datetime


@dataclass(frozen=True)
class HeartbeatReport:
    """An agent's heartbeat as parsed from the request."""

    agent_version: str
    hostname: str
    platform: str
    free_disk_bytes: int | None
    gateways: dict[str, bool]
    backup_sets: list[ReportedBackupSet]


@dataclass(frozen=True)
class HeartbeatAck:
    """What the agent learns from a heartbeat."""

    server_time: datetime
    backup_sets: int


@dataclass(frozen=True)
class JobAck:
    """The stored state of a reported job."""

    job_uid: uuid.UUID
    state: str
    created: bool
    snapshot_recorded: bool


def _check_text(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not value or len(value) > limit or not value.isprintable():
        raise ValidationError(f"{what} must be 1 to {limit} printable characters")
    return value


class GatewayService:
    """The agent-facing operations, over one catalog and the tenants' vaults."""

    def __init__(
        self, catalog: Catalog, token_key: bytes, vaults: VaultAccess, node_name: str | None = None
    ) -> None:
        self.catalog = catalog
        self._key = token_key
        self.vaults = vaults
        #: The gateway node name recorded with each heartbeat: the operations center's
        #: topology (which agents sit behind which gateway) comes from it.
        self.node_name = node_name
        # Per agent: the backup sets it last reported to this process and when they were
        # written. Heartbeats repeat them unchanged all day; this skips reading them back.
        self._synced_sets: dict[uuid.UUID, tuple[int, float]] = {}

    def enroll(self, token: str, hostname: str, agent_version: str, platform: str) -> Enrollment:
        """Redeem a single-use token: a new agent of the token's tenant, with its credential.

        The tenant's vault is provisioned here, so the agent can initialise
        its repository right away.
        """
        agent_version = _check_text(agent_version, "agent version", 64)
        platform = _check_text(platform, "platform", MAX_PLATFORM_LENGTH)
        with self.catalog.session() as session:
            enrolled = redeem_enrollment_token(session, token, key=self._key, hostname=hostname)
            agent = enrolled.agent
            agent.version = agent_version
            agent.host_facts = {"platform": platform, "hostname": agent.hostname}
            result = Enrollment(
                agent_id=agent.id,
                credential=enrolled.credential,
                tenant_id=agent.tenant_id,
                tenant_name=agent.tenant.name,
                server_time=database_now(session),
            )
        self.vaults.provision(result.tenant_id, f"agent:{result.agent_id}")
        return result

    def authenticate(self, credential: str) -> AgentIdentity:
        """The agent and tenant a bearer credential belongs to (InvalidCredentialError otherwise)."""
        with self.catalog.session() as session:
            return _identity(authenticate_agent(session, credential, key=self._key))

    def rotate_credential(self, identity: AgentIdentity) -> RotatedCredential:
        """A new credential for the calling agent; its first use revokes the current one."""
        with self.catalog.session(tenant_id=identity.tenant_id) as session:
            return rotate_agent_credential(
                session, identity.agent_id, key=self._key, actor=identity.actor
            )

    def heartbeat(self, credential: str, report: HeartbeatReport) -> HeartbeatAck:
        """Check the credential, record last_seen and facts, bring the agent's backup sets up to date.

        All in one transaction, confined to the agent's tenant once the
        credential names it: every round trip to the catalog waits for a
        core when uploads keep the machine busy, and a credential check of
        its own cost four (checkout, BEGIN, SELECT, COMMIT).
        """
        hostname = _check_text(report.hostname, "hostname", 255)
        platform = _check_text(report.platform, "platform", MAX_PLATFORM_LENGTH)
        if len(report.gateways) > 32:
            raise ValidationError("at most 32 gateways may be reported")
        facts: dict[str, Any] = {
            "hostname": hostname,
            "platform": platform,
            "gateways": dict(report.gateways),
        }
        reachable = any(report.gateways.values()) if report.gateways else True
        sets_key = hash(repr(report.backup_sets))
        with self.catalog.session(telemetry=True) as session:
            checked = authenticate_agent(session, credential, key=self._key)
            identity = _identity(checked)
            confine_to_tenant(session, identity.tenant_id)
            repository_id = self.vaults.repository_id(identity)
            synced = self._synced_sets.get(identity.agent_id)
            sets_unchanged = (
                synced is not None
                and synced[0] == sets_key
                and time.monotonic() - synced[1] < SETS_RESYNC_SECONDS
            )
            beat = record_heartbeat(
                session,
                identity.agent_id,
                version=report.agent_version,
                host_facts=facts,
                free_disk_bytes=report.free_disk_bytes,
                gateway_reachable=reachable,
                now=checked.checked_at,
                gateway_node=self.node_name,
            )
            if sets_unchanged:
                count = len(report.backup_sets)
            else:
                agent = session.get(Agent, identity.agent_id)
                assert agent is not None  # the credential check found it in this transaction
                count = len(sync_backup_sets(session, agent, repository_id, report.backup_sets))
            ack = HeartbeatAck(server_time=beat.received_at, backup_sets=count)
        if not sets_unchanged:
            self._synced_sets[identity.agent_id] = (sets_key, time.monotonic())
        return ack

    def report_job(self, identity: AgentIdentity, job_uid: uuid.UUID, report: JobReport) -> JobAck:
        """Create or update one of the agent's jobs (and the snapshot summary a backup wrote).

        A reported snapshot must exist in the tenant's vault: the catalog
        never claims a backup the vault does not hold.
        """
        repository_id = self.vaults.repository_id(identity)
        if report.snapshot is not None:
            name = f"snapshots/{report.snapshot.vault_snapshot_id}"
            if not self.vaults.store_for(identity).exists(name):
                raise ValidationError(
                    f"snapshot {report.snapshot.vault_snapshot_id[:8]} is not in the vault"
                )
        with self.catalog.session(tenant_id=identity.tenant_id) as session:
            agent = session.get(Agent, identity.agent_id)
            assert agent is not None
            job, created = report_job(session, agent, job_uid, report, repository_id=repository_id)
            return _job_ack(job, created)


def _identity(agent: AuthenticatedAgent) -> AgentIdentity:
    return AgentIdentity(
        agent_id=agent.id,
        tenant_id=agent.tenant_id,
        tenant_name=agent.tenant_name,
        hostname=agent.hostname,
        suspended=agent.suspended,
    )


def _job_ack(job: Job, created: bool) -> JobAck:
    return JobAck(
        job_uid=job.id,
        state=job.state.value,
        created=created,
        snapshot_recorded=job.snapshot_id is not None,
    )
