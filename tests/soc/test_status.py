"""Derived protection state: every state and reason, jobs, snapshots, nodes and tenant scoping."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.agent_reports import (
    JobReport,
    ReportedBackupSet,
    ReportedSnapshot,
    report_job,
    sync_backup_sets,
)
from vaultwatch.catalog.agents import record_heartbeat
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import Agent, BackupMode, BackupSet, JobKind, JobState
from vaultwatch.catalog.soc_models import ServerNode, Silence
from vaultwatch.catalog.tenants import create_tenant
from vaultwatch.catalog.vaults import register_tenant_vault
from vaultwatch.soc import status
from vaultwatch.soc.status import ProtectionState, Reason

ACTOR = "system:test"
RPO = 3600


@dataclass
class Fleet:
    """Two tenants' agents, one for each state and reason, built through the catalog's own code."""

    now: datetime
    acme: uuid.UUID
    globex: uuid.UUID
    agents: dict[str, uuid.UUID]
    sets: dict[str, uuid.UUID]
    jobs: dict[str, uuid.UUID]


def _snapshot(name: str, finished: datetime) -> ReportedSnapshot:
    return ReportedSnapshot(
        vault_snapshot_id=uuid.uuid4().hex + uuid.uuid4().hex,
        hostname=name,
        paths=["/srv"],
        started_at=finished - timedelta(seconds=30),
        finished_at=finished,
        files_total=10,
        bytes_total=1000,
        files_new=2,
        bytes_added=200,
    )


def build_fleet(
    catalog: Catalog,
    now: datetime | None = None,
    tenants: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> Fleet:
    """Acme has one agent per state/reason; Globex one protected agent (tenants made if not given)."""
    now = now or datetime.now(UTC)
    agents: dict[str, uuid.UUID] = {}
    sets: dict[str, uuid.UUID] = {}
    jobs: dict[str, uuid.UUID] = {}
    with catalog.session() as session:
        if tenants is None:
            acme = create_tenant(session, "Acme", actor=ACTOR).id
            globex = create_tenant(session, "Globex", actor=ACTOR).id
        else:
            acme, globex = tenants
        repos = {
            t: register_tenant_vault(session, t, f"/srv/vaults/{t}", actor=ACTOR).id
            for t in (acme, globex)
        }

    def agent(
        name: str,
        tenant: uuid.UUID,
        *,
        seen_ago: float | None = 10,
        snapshot_ago: float | None = None,
        last_job: JobState | None = None,
        with_set: bool = True,
        created_ago: float = 60,
    ) -> None:
        with catalog.session() as session:
            row = Agent(id=uuid.uuid4(), tenant_id=tenant, hostname=name, enrolled_at=now)
            session.add(row)
            session.flush()
            agents[name] = row.id
            if seen_ago is not None:
                record_heartbeat(
                    session,
                    row.id,
                    version="1.2.3",
                    host_facts={"os": "linux", "cpus": 2},
                    free_disk_bytes=10**9,
                    gateway_reachable=True,
                    now=now - timedelta(seconds=seen_ago),
                )
            if not with_set:
                return
            (bs,) = sync_backup_sets(
                session,
                row,
                repos[tenant],
                [ReportedBackupSet("home", ["/srv"], BackupMode.CONTINUOUS, RPO)],
            )
            bs.created_at = now - timedelta(seconds=created_ago)
            sets[name] = bs.id
            if snapshot_ago is not None:
                finished = now - timedelta(seconds=snapshot_ago)
                job_id = uuid.uuid4()
                report_job(
                    session,
                    row,
                    job_id,
                    JobReport(
                        JobKind.BACKUP,
                        JobState.SUCCEEDED,
                        backup_set="home",
                        bytes_done=1000,
                        bytes_total=1000,
                        snapshot=_snapshot(name, finished),
                    ),
                    repository_id=repos[tenant],
                    now=finished,
                )
                jobs[f"{name}:ok"] = job_id
            if last_job is not None:
                job_id = uuid.uuid4()
                report_job(
                    session,
                    row,
                    job_id,
                    JobReport(
                        JobKind.BACKUP,
                        last_job,
                        backup_set="home",
                        errors=["/srv/db: permission denied", "gateway refused the pack"],
                    ),
                    repository_id=repos[tenant],
                    now=now - timedelta(seconds=5),
                )
                jobs[f"{name}:last"] = job_id

    agent("a-protected", acme, snapshot_ago=600)
    agent("b-at-risk", acme, snapshot_ago=2400)
    agent("c-breached", acme, snapshot_ago=7200)
    agent("d-failed", acme, snapshot_ago=60, last_job=JobState.FAILED)
    agent("e-silent", acme, seen_ago=600, snapshot_ago=60)
    agent("f-never-seen", acme, seen_ago=None, snapshot_ago=60)
    agent("g-no-sets", acme, with_set=False)
    agent("h-paused", acme, snapshot_ago=60)
    agent("i-maintenance", acme, seen_ago=900, snapshot_ago=9000)
    agent("j-new", acme, created_ago=60)
    agent("k-new-breached", acme, created_ago=RPO * 2)
    agent("l-cancelled-after-ok", acme, snapshot_ago=60, last_job=JobState.CANCELLED)
    agent("z-globex", globex, snapshot_ago=60)
    with catalog.session() as session:
        session.execute(
            update(BackupSet).where(BackupSet.id == sets["h-paused"]).values(enabled=False)
        )
        session.add(
            Silence(
                tenant_id=acme,
                kind="maintenance",
                matchers=[
                    {"field": "entity", "op": "=", "value": f"agent:{agents['i-maintenance']}"}
                ],
                comment="disk swap",
                created_by=ACTOR,
                starts_at=now - timedelta(minutes=30),
                ends_at=now + timedelta(hours=1),
            )
        )
    return Fleet(now, acme, globex, agents, sets, jobs)


@pytest.fixture
def fleet(catalog: Catalog) -> Fleet:
    return build_fleet(catalog)


EXPECTED = {
    "a-protected": (ProtectionState.PROTECTED, Reason.WITHIN_RPO),
    "b-at-risk": (ProtectionState.AT_RISK, Reason.RPO_HALF_USED),
    "c-breached": (ProtectionState.UNPROTECTED, Reason.RPO_BREACHED),
    "d-failed": (ProtectionState.UNPROTECTED, Reason.LAST_JOB_FAILED),
    "e-silent": (ProtectionState.UNPROTECTED, Reason.AGENT_SILENT),
    "f-never-seen": (ProtectionState.UNPROTECTED, Reason.AGENT_SILENT),
    "g-no-sets": (ProtectionState.NOT_CONFIGURED, Reason.NO_BACKUP_SETS),
    "h-paused": (ProtectionState.PAUSED, Reason.ALL_SETS_DISABLED),
    "i-maintenance": (ProtectionState.MAINTENANCE, Reason.MAINTENANCE_WINDOW),
    "j-new": (ProtectionState.AT_RISK, Reason.NO_SNAPSHOT_YET),
    "k-new-breached": (ProtectionState.UNPROTECTED, Reason.RPO_BREACHED),
    "l-cancelled-after-ok": (ProtectionState.PROTECTED, Reason.WITHIN_RPO),
    "z-globex": (ProtectionState.PROTECTED, Reason.WITHIN_RPO),
}


def test_every_state_and_reason_is_derived(catalog: Catalog, fleet: Fleet) -> None:
    with catalog.session() as session:
        page = status.list_agent_status(session, limit=100, now=fleet.now)
    got = {a.hostname: (a.state, a.reason) for a in page.items}
    assert got == EXPECTED
    assert page.next_cursor is None


def test_the_reason_text_says_what_happened(catalog: Catalog, fleet: Fleet) -> None:
    with catalog.session() as session:
        failed = status.agent_status(session, fleet.agents["d-failed"], now=fleet.now)
        silent = status.agent_status(session, fleet.agents["e-silent"], now=fleet.now)
        breached = status.agent_status(session, fleet.agents["c-breached"], now=fleet.now)
        never = status.agent_status(session, fleet.agents["f-never-seen"], now=fleet.now)
    assert "failed" in failed.detail and "gateway refused the pack" in failed.detail
    assert failed.backup_sets[0].last_job_error == "gateway refused the pack"
    assert silent.detail == "no heartbeat for 10m"
    assert never.detail == "never sent a heartbeat"
    assert "RPO of 1h breached" in breached.detail and "2h" in breached.detail


def test_agent_detail_has_heartbeat_facts_and_each_sets_last_good_snapshot(
    catalog: Catalog, fleet: Fleet
) -> None:
    with catalog.session() as session:
        s = status.agent_status(session, fleet.agents["b-at-risk"], now=fleet.now)
    assert s.version == "1.2.3"
    assert s.host_facts == {"os": "linux", "cpus": 2}
    assert s.free_disk_bytes == 10**9 and s.gateway_reachable is True
    assert s.last_heartbeat_at is not None
    assert abs((fleet.now - s.last_heartbeat_at).total_seconds() - 10) < 1
    (bs,) = s.backup_sets
    assert bs.name == "home" and bs.rpo_target_seconds == RPO and bs.enabled
    assert bs.last_good_snapshot is not None
    assert abs((fleet.now - bs.last_good_snapshot.finished_at).total_seconds() - 2400) < 1
    assert bs.rpo_used == pytest.approx(2400 / RPO, abs=0.001)
    assert bs.last_job_state == "succeeded"


def test_a_failed_job_after_a_good_one_is_unprotected_until_the_next_success(
    catalog: Catalog, fleet: Fleet
) -> None:
    with catalog.session() as session:
        agent = session.get(Agent, fleet.agents["d-failed"])
        assert agent is not None
        repo = session.get(BackupSet, fleet.sets["d-failed"])
        assert repo is not None
        report_job(
            session,
            agent,
            uuid.uuid4(),
            JobReport(
                JobKind.BACKUP,
                JobState.SUCCEEDED,
                backup_set="home",
                snapshot=_snapshot("d-failed", fleet.now - timedelta(seconds=1)),
            ),
            repository_id=repo.repository_id,
            now=fleet.now - timedelta(seconds=1),
        )
    with catalog.session() as session:
        s = status.agent_status(session, fleet.agents["d-failed"], now=fleet.now)
    assert (s.state, s.reason) == (ProtectionState.PROTECTED, Reason.WITHIN_RPO)


def test_time_moves_a_protected_set_to_at_risk_then_unprotected(
    catalog: Catalog, fleet: Fleet
) -> None:
    agent_id = fleet.agents["a-protected"]
    with catalog.session() as session:
        record_heartbeat(
            session,
            agent_id,
            version="1.2.3",
            host_facts={},
            free_disk_bytes=None,
            gateway_reachable=True,
            now=fleet.now + timedelta(hours=2),
        )
    with catalog.session() as session:
        later = status.agent_status(session, agent_id, now=fleet.now + timedelta(seconds=1500))
        much_later = status.agent_status(session, agent_id, now=fleet.now + timedelta(hours=2))
    assert later.state == ProtectionState.AT_RISK  # 2100 s of 3600 used
    assert much_later.reason == Reason.RPO_BREACHED


def test_silences_covering_the_whole_agent_mean_maintenance(catalog: Catalog, fleet: Fleet) -> None:
    from vaultwatch.soc.silences import create_silence

    def silence(matchers: list[dict[str, str]], **kw: object) -> None:
        with catalog.session() as session:
            create_silence(
                session,
                actor=ACTOR,
                comment="moving racks",
                matchers=matchers,
                starts_at=kw.pop("starts_at", fleet.now - timedelta(minutes=1)),  # type: ignore[arg-type]
                ends_at=kw.pop("ends_at", fleet.now + timedelta(minutes=30)),  # type: ignore[arg-type]
                now=fleet.now,
                **kw,  # type: ignore[arg-type]
            )

    silence([{"field": "node", "op": "=~", "value": "c-.*"}])
    # Only some of the agent's alarms, another tenant, or not yet begun: not maintenance.
    silence(
        [
            {"field": "node", "op": "=", "value": "b-at-risk"},
            {"field": "alert_group", "op": "=", "value": "agent.disk"},
        ]
    )
    silence([{"field": "node", "op": "=", "value": "b-at-risk"}], tenant_id=fleet.globex)
    silence(
        [{"field": "node", "op": "=", "value": "b-at-risk"}],
        starts_at=fleet.now + timedelta(minutes=5),
    )
    # A recurring window counts only during an occurrence (this one: 03:00-03:10 UTC daily).
    silence(
        [{"field": "node", "op": "=", "value": "a-protected"}],
        kind="maintenance",
        recurrence="0 3 * * *",
        duration_seconds=600,
        starts_at=fleet.now - timedelta(days=2),
        ends_at=fleet.now + timedelta(days=2),
    )
    with catalog.session() as session:
        covered = status.agent_status(session, fleet.agents["c-breached"], now=fleet.now)
        not_covered = status.agent_status(session, fleet.agents["b-at-risk"], now=fleet.now)
        forced = status.agent_status(
            session, fleet.agents["j-new"], now=fleet.now, maintenance={fleet.agents["j-new"]}
        )
        in_window = fleet.now.replace(hour=3, minute=5, second=0, microsecond=0)
        out_of_window = in_window + timedelta(minutes=10)
        agent = session.get(Agent, fleet.agents["a-protected"])
        assert agent is not None
        windowed = [
            status.agents_in_maintenance(session, [agent], at) for at in (in_window, out_of_window)
        ]
    assert covered.state == ProtectionState.MAINTENANCE
    assert not_covered.state == ProtectionState.AT_RISK
    assert forced.state == ProtectionState.MAINTENANCE
    assert windowed == [{fleet.agents["a-protected"]}, set()]


def test_fleet_summary_counts_per_state_and_per_tenant(catalog: Catalog, fleet: Fleet) -> None:
    with catalog.session() as session:
        session.add(ServerNode(name="gw1", site="dc1", roles=["gateway"], last_seen_at=fleet.now))
        session.add(
            ServerNode(
                name="gw2",
                site="dc1",
                roles=["gateway"],
                last_seen_at=fleet.now - timedelta(hours=1),
            )
        )
    with catalog.session() as session:
        summary = status.fleet_summary(session, now=fleet.now)
    assert summary.agents == len(EXPECTED)
    assert summary.states == {
        "protected": 3,
        "at_risk": 2,
        "unprotected": 5,
        "not_configured": 1,
        "paused": 1,
        "maintenance": 1,
    }
    by_name = {t.tenant_name: t for t in summary.tenants}
    assert by_name["Globex"].agents == 1 and by_name["Globex"].states["protected"] == 1
    assert by_name["Acme"].agents == len(EXPECTED) - 1
    assert by_name["Acme"].states["unprotected"] == 5
    assert (summary.nodes, summary.nodes_down) == (2, 1)


def test_a_tenant_scoped_session_sees_only_its_tenant(catalog: Catalog, fleet: Fleet) -> None:
    with catalog.session(tenant_id=fleet.globex) as session:
        summary = status.fleet_summary(session, now=fleet.now)
        page = status.list_agent_status(session, limit=100, now=fleet.now)
        jobs = status.list_jobs(session, limit=100, now=fleet.now)
        for missing in (
            lambda: status.agent_status(session, fleet.agents["a-protected"], now=fleet.now),
            lambda: status.job_detail(session, fleet.jobs["d-failed:last"]),
            lambda: status.list_snapshots(session, fleet.sets["a-protected"]),
        ):
            with pytest.raises(status.StatusNotFoundError):
                missing()
        own = status.list_snapshots(session, fleet.sets["z-globex"])
    assert summary.agents == 1 and [t.tenant_name for t in summary.tenants] == ["Globex"]
    assert summary.nodes is None  # the service's own machines are not a customer's business
    assert [a.hostname for a in page.items] == ["z-globex"]
    assert {j.hostname for j in jobs} == {"z-globex"}
    assert len(own) == 1
    with catalog.session(tenant_id=fleet.acme) as session:
        acme_page = status.list_agent_status(
            session, tenant_id=fleet.globex, limit=100, now=fleet.now
        )
    assert acme_page.items == []  # asking for another tenant finds nothing


def test_pages_by_cursor_and_offset_cover_every_agent_once(catalog: Catalog, fleet: Fleet) -> None:
    seen: list[str] = []
    cursor = None
    with catalog.session() as session:
        while True:
            page = status.list_agent_status(session, limit=4, cursor=cursor, now=fleet.now)
            seen += [a.hostname for a in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        by_offset = status.list_agent_status(session, limit=3, offset=3, now=fleet.now)
        unprotected = status.list_agent_status(
            session, state=ProtectionState.UNPROTECTED, limit=2, now=fleet.now
        )
        rest = status.list_agent_status(
            session,
            state=ProtectionState.UNPROTECTED,
            limit=10,
            cursor=unprotected.next_cursor,
            now=fleet.now,
        )
        only_globex = status.list_agent_status(
            session, tenant_id=fleet.globex, limit=10, now=fleet.now
        )
    assert seen == sorted(EXPECTED)
    assert [a.hostname for a in by_offset.items] == sorted(EXPECTED)[3:6]
    wanted = sorted(h for h, (s, _) in EXPECTED.items() if s == ProtectionState.UNPROTECTED)
    assert [a.hostname for a in unprotected.items] == wanted[:2]
    assert [a.hostname for a in rest.items] == wanted[2:] and rest.next_cursor is None
    assert [a.hostname for a in only_globex.items] == ["z-globex"]


def test_bad_paging_input_is_a_validation_error(catalog: Catalog) -> None:
    with catalog.session() as session:
        for kwargs in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"cursor": "%%%"}):
            with pytest.raises(ValidationError):
                status.list_agent_status(session, **kwargs)
        with pytest.raises(ValidationError):
            status.list_agent_status(session, cursor="abc", offset=2)


def test_running_jobs_show_phase_progress_rate_eta_and_resumed_bytes(
    catalog: Catalog, fleet: Fleet
) -> None:
    job_id = uuid.uuid4()
    with catalog.session() as session:
        agent = session.get(Agent, fleet.agents["a-protected"])
        bs = session.get(BackupSet, fleet.sets["a-protected"])
        assert agent is not None and bs is not None
        report_job(
            session,
            agent,
            job_id,
            JobReport(
                JobKind.BACKUP,
                JobState.RUNNING,
                backup_set="home",
                bytes_done=250,
                bytes_total=1000,
                files_done=3,
                files_total=12,
                rate=50.0,
                eta_seconds=15,
                phase="backing up",
                current_file="/srv/db/big.sqlite",
                resumed_bytes=100,
            ),
            repository_id=bs.repository_id,
            now=fleet.now,
        )
    with catalog.session() as session:
        running = status.list_jobs(session, running=True, now=fleet.now)
        stalled = status.job_detail(session, job_id, now=fleet.now + timedelta(minutes=10))
        recent = status.list_jobs(session, agent_id=fleet.agents["d-failed"], now=fleet.now)
    (job,) = running
    assert job.id == job_id and job.hostname == "a-protected" and job.backup_set == "home"
    assert (job.phase, job.current_file, job.resumed_bytes) == (
        "backing up",
        "/srv/db/big.sqlite",
        100,
    )
    assert (job.bytes_done, job.bytes_total, job.files_done, job.files_total) == (250, 1000, 3, 12)
    assert job.percent == 25.0 and job.rate_bytes_per_second == 50.0 and job.eta_seconds == 15
    assert not job.stalled and stalled.stalled
    assert [j.state for j in recent] == ["failed", "succeeded"]
    assert recent[0].errors == ["/srv/db: permission denied", "gateway refused the pack"]
    assert recent[0].error_count == 2


def test_snapshots_of_a_set_newest_first(catalog: Catalog, fleet: Fleet) -> None:
    with catalog.session() as session:
        agent = session.get(Agent, fleet.agents["b-at-risk"])
        bs = session.get(BackupSet, fleet.sets["b-at-risk"])
        assert agent is not None and bs is not None
        report_job(
            session,
            agent,
            uuid.uuid4(),
            JobReport(
                JobKind.BACKUP,
                JobState.PARTIAL,
                backup_set="home",
                snapshot=_snapshot("b-at-risk", fleet.now - timedelta(seconds=30)),
            ),
            repository_id=bs.repository_id,
            now=fleet.now - timedelta(seconds=30),
        )
    with catalog.session() as session:
        snaps = status.list_snapshots(session, fleet.sets["b-at-risk"])
        after = status.agent_status(session, fleet.agents["b-at-risk"], now=fleet.now)
        with pytest.raises(status.StatusNotFoundError):
            status.list_snapshots(session, uuid.uuid4())
    assert len(snaps) == 2 and snaps[0].finished_at > snaps[1].finished_at
    assert snaps[0].bytes_added == 200 and snaps[0].paths == ["/srv"]
    assert after.state == ProtectionState.PROTECTED  # the partial snapshot is a good one


def test_nodes_are_up_while_heard_from(catalog: Catalog) -> None:
    now = datetime.now(UTC)
    with catalog.session() as session:
        session.add(
            ServerNode(
                name="web1",
                site="dc2",
                roles=["web"],
                version="1.0",
                last_seen_at=now,
                health={"cpu": 0.5, "disk_free_bytes": 10**10},
            )
        )
        session.add(ServerNode(name="gw9", site="dc1", roles=["gateway"], last_seen_at=None))
    with catalog.session() as session:
        nodes = status.list_nodes(session, now=now)
    assert [(n.site, n.name, n.up) for n in nodes] == [("dc1", "gw9", False), ("dc2", "web1", True)]
    assert nodes[1].health["cpu"] == 0.5 and nodes[1].roles == ["web"]
