"""Incidents: which alarms open one, who is affected, crisis mode, acknowledge and resolve."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select, update

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import Agent, Role, Tenant, User
from vaultwatch.catalog.soc_models import (
    Alarm,
    CustomerUpdate,
    Incident,
    IncidentState,
    Severity,
)
from vaultwatch.server_config import ServerSettings
from vaultwatch.soc import escalation, incidents, silences, topology
from vaultwatch.soc.alarms import raise_events
from vaultwatch.soc.duties import DutyContext
from vaultwatch.soc.events import Event
from vaultwatch.soc.pipeline import process_events

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OPERATOR = "user:00000000-0000-0000-0000-0000000000aa"


def add_tenants(catalog: Catalog, count: int, *, agents: int = 1) -> list[uuid.UUID]:
    """`count` tenants, each with `agents` agents and one customer administrator."""
    ids: list[uuid.UUID] = []
    with catalog.session() as session:
        for n in range(count):
            tenant = Tenant(id=uuid.uuid4(), name=f"T{n}", name_key=f"t{n}-{uuid.uuid4().hex[:6]}")
            session.add(tenant)
            session.flush()
            for a in range(agents):
                session.add(Agent(tenant_id=tenant.id, hostname=f"t{n}-srv{a}"))
            session.add(
                User(
                    tenant_id=tenant.id,
                    email=f"admin@t{n}-{tenant.id.hex[:6]}.example",
                    display_name="Admin",
                    password_hash="x",
                    role=Role.CUSTOMER_ADMIN,
                )
            )
            ids.append(tenant.id)
    return ids


def agents_of(catalog: Catalog, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    """A tenant's agent ids."""
    with catalog.session() as session:
        return list(session.scalars(select(Agent.id).where(Agent.tenant_id == tenant_id)))


def add_policy(catalog: Catalog, name: str = "default", **changes: object) -> int:
    """A two-level policy: level 0 pages a@ (5 min), level 1 pages b@ (10 min)."""
    fields: dict[str, object] = {
        "levels": [
            {"targets": [{"kind": "email", "address": "a@soc.example"}], "timeout_seconds": 300},
            {"targets": [{"kind": "email", "address": "b@soc.example"}], "timeout_seconds": 600},
        ],
        "repeat": 0,
        "ack_timeout_seconds": 1800,
        "customer_update_interval_seconds": 3600,
    }
    fields.update(changes)
    with catalog.session() as session:
        return escalation.create_policy(session, name=name, **fields).id  # type: ignore[arg-type]


def event(**changes: object) -> Event:
    """A critical problem on a tenant's server unless changed."""
    fields: dict[str, object] = {
        "node": "srv1",
        "alert_group": "agent.heartbeat",
        "summary": "agent srv1 is silent",
        "severity": Severity.CRITICAL,
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def incident_list(catalog: Catalog) -> list[Incident]:
    """Every incident, oldest first."""
    with catalog.session() as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


def test_a_major_alarm_opens_one_incident_for_its_tenant(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    add_policy(catalog)
    with catalog.session() as session:
        process_events(session, [event(tenant_id=tenant, severity=Severity.MAJOR)], now=T0)
    with catalog.session() as session:
        process_events(session, [event(tenant_id=tenant)], now=T0 + timedelta(minutes=1))
    [incident] = incident_list(catalog)
    assert incident.state == IncidentState.TRIGGERED
    assert incident.severity == Severity.MAJOR
    assert incident.title == "agent srv1 is silent"
    assert incident.created_by == incidents.SYSTEM_ACTOR
    with catalog.session() as session:
        alarm = session.scalars(select(Alarm)).one()
        assert incident.root_alarm_id == alarm.id and alarm.incident_id == incident.id
        assert incidents.tenants_of(session, incident.id) == [tenant]
        kinds = [e.kind for e in incidents.timeline(session, incident.id)]
    assert kinds[:2] == ["triggered", "paged"]


def test_minor_alarms_do_not_but_rpo_breaches_do(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    with catalog.session() as session:
        process_events(session, [event(tenant_id=tenant, severity=Severity.MINOR)], now=T0)
    assert incident_list(catalog) == []
    with catalog.session() as session:
        process_events(
            session,
            [
                event(
                    tenant_id=tenant,
                    alert_group="backup.overdue",
                    severity=Severity.WARNING,
                    summary="backup set docs missed its RPO",
                    alert_key="docs",
                )
            ],
            now=T0,
        )
    [incident] = incident_list(catalog)
    assert incident.title == "backup set docs missed its RPO"
    assert incident.policy_id is None  # no "default" policy exists: nobody paged, said so
    with catalog.session() as session:
        assert [e.kind for e in incidents.timeline(session, incident.id)][:2] == [
            "triggered",
            "no_policy",
        ]


def test_a_minor_alarm_that_becomes_major_opens_one(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    with catalog.session() as session:
        process_events(session, [event(tenant_id=tenant, severity=Severity.MINOR)], now=T0)
    with catalog.session() as session:
        process_events(session, [event(tenant_id=tenant, severity=Severity.MAJOR)], now=T0)
    assert len(incident_list(catalog)) == 1


def test_symptoms_silenced_and_cleared_alarms_open_nothing(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    with catalog.session() as session:
        raised = raise_events(
            session,
            [event(tenant_id=tenant, node=f"srv{n}") for n in range(3)],
            now=T0,
        )
        ids = sorted(r.id for r in raised)
        session.execute(update(Alarm).where(Alarm.id == ids[0]).values(suppressed_by=ids[2]))
        session.execute(update(Alarm).where(Alarm.id == ids[1]).values(silence_id=77))
        session.execute(update(Alarm).where(Alarm.id == ids[2]).values(cleared_at=T0))
        assert incidents.open_incidents_for(session, raised, T0) == []
    assert incident_list(catalog) == []


def test_a_resolution_opens_nothing_and_a_recurrence_after_resolve_opens_anew(
    catalog: Catalog,
) -> None:
    [tenant] = add_tenants(catalog, 1)
    with catalog.session() as session:
        process_events(session, [event(tenant_id=tenant)], now=T0)
    [first] = incident_list(catalog)
    with catalog.session() as session:
        incidents.resolve(session, first.id, OPERATOR, now=T0 + timedelta(minutes=5))
        process_events(session, [event(tenant_id=tenant, severity=Severity.CLEAR)], now=T0)
    assert len(incident_list(catalog)) == 1
    with catalog.session() as session:
        process_events(session, [event(tenant_id=tenant)], now=T0 + timedelta(hours=1))
    assert [i.state for i in incident_list(catalog)] == [
        IncidentState.RESOLVED,
        IncidentState.TRIGGERED,
    ]


def test_a_gateway_alarm_affects_the_tenants_behind_it(catalog: Catalog) -> None:
    behind = add_tenants(catalog, 2)
    elsewhere = add_tenants(catalog, 1)
    with catalog.session() as session:
        for tenant in behind:
            for agent in agents_of(catalog, tenant):
                topology.link_agent(session, agent, "gw1")
        for agent in agents_of(catalog, elsewhere[0]):
            topology.link_agent(session, agent, "gw2")
        topology.link(session, "gateway:gw1", "site:dc1")
        topology.link(session, "gateway:gw2", "site:dc1")
    with catalog.session() as session:
        assert incidents.affected_tenants(session, "gateway:gw1", None) == sorted(behind, key=str)
        assert incidents.affected_tenants(session, "site:dc1", None) == sorted(
            [*behind, *elsewhere], key=str
        )
        assert incidents.affected_tenants(session, "node:unknown", None) == []
        assert incidents.affected_tenants(session, "gateway:gw1", elsewhere[0]) == elsewhere


def test_a_site_without_topology_affects_every_tenant_with_agents(catalog: Catalog) -> None:
    tenants = add_tenants(catalog, 3)
    with catalog.session() as session:
        session.add(Tenant(id=uuid.uuid4(), name="Empty", name_key="empty"))
    with catalog.session() as session:
        assert incidents.affected_tenants(session, "site:dc9", None) == sorted(tenants, key=str)
        assert incidents.affected_tenants(session, "node:db1", None) == []


def test_many_tenants_make_a_crisis(catalog: Catalog) -> None:
    add_tenants(catalog, 5)
    with catalog.session() as session:
        process_events(
            session,
            [
                event(
                    node="dc1",
                    entity="site:dc1",
                    alert_group="site.power",
                    summary="site dc1 lost power",
                )
            ],
            now=T0,
        )
    [incident] = incident_list(catalog)
    assert incident.crisis is True
    with catalog.session() as session:
        assert len(incidents.tenants_of(session, incident.id)) == 5
        assert "crisis" in [e.kind for e in incidents.timeline(session, incident.id)]
        drafts = session.scalars(select(CustomerUpdate)).all()
    assert len(drafts) == 5 and {d.created_at for d in drafts} == {T0}


def test_the_crisis_threshold_is_configurable(catalog: Catalog) -> None:
    tenants = add_tenants(catalog, 2)
    rules = incidents.incident_rules({"soc": {"incidents": {"crisis_threshold": 2}}})
    with catalog.session() as session:
        big = incidents.open_incident(
            session,
            title="gw1 down",
            severity="critical",
            actor=OPERATOR,
            tenant_ids=tenants,
            now=T0,
            rules=rules,
        )
        small = incidents.open_incident(
            session,
            title="srv1 down",
            severity="major",
            actor=OPERATOR,
            tenant_ids=tenants[:1],
            now=T0,
            rules=rules,
        )
    assert (big.crisis, small.crisis) == (True, False)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"soc": {"incidents": {"crisis_threshold": 0}}}, "crisis_threshold"),
        ({"soc": {"incidents": {"min_severity": "awful"}}}, "min_severity"),
        ({"soc": {"incidents": {"rpo_alert_groups": "backup.overdue"}}}, "rpo_alert_groups"),
    ],
)
def test_bad_incident_settings_are_named(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        incidents.incident_rules(extra)


def test_an_operator_opens_an_incident_for_a_minor_alarm(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    with catalog.session() as session:
        [raised] = process_events(
            session, [event(tenant_id=tenant, severity=Severity.MINOR)], now=T0
        )
    with catalog.session() as session:
        incident = incidents.open_incident_for_alarm(session, raised.id, actor=OPERATOR, now=T0)
        assert incident.severity == Severity.MINOR and incident.created_by == OPERATOR
        with pytest.raises(incidents.IncidentStateError, match="already has open incident"):
            incidents.open_incident_for_alarm(session, raised.id, actor=OPERATOR, now=T0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": "  "}, "needs a title"),
        ({"severity": "clear"}, "cannot have severity clear"),
        ({"severity": "awful"}, "unknown severity"),
        ({"tenant_ids": [uuid.UUID(int=5)]}, "unknown tenant"),
        ({"policy": "nope"}, "no escalation policy"),
    ],
)
def test_bad_incidents_are_refused_and_nothing_is_stored(
    catalog: Catalog, changes: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {"title": "gw1 down", "severity": "major", "actor": OPERATOR}
    fields.update(changes)
    with pytest.raises(Exception, match=message), catalog.session() as session:
        incidents.open_incident(session, now=T0, **fields)  # type: ignore[arg-type]
    assert incident_list(catalog) == []


def test_acknowledge_and_resolve_follow_the_states(catalog: Catalog) -> None:
    with catalog.session() as session:
        incident = incidents.open_incident(
            session, title="gw1 down", severity="major", actor=OPERATOR, now=T0
        )
    with catalog.session() as session:
        acked = incidents.acknowledge(session, incident.id, OPERATOR, now=T0 + timedelta(minutes=1))
        assert acked.state == IncidentState.ACKNOWLEDGED and acked.acknowledged_by == OPERATOR
        done = incidents.resolve(session, incident.id, OPERATOR, now=T0 + timedelta(minutes=2))
        assert done.state == IncidentState.RESOLVED and done.resolved_at == T0 + timedelta(
            minutes=2
        )
    with catalog.session() as session:
        with pytest.raises(incidents.IncidentStateError, match="resolved"):
            incidents.acknowledge(session, incident.id, OPERATOR, now=T0)
        with pytest.raises(incidents.IncidentStateError, match="already resolved"):
            incidents.resolve(session, incident.id, OPERATOR, now=T0)
        with pytest.raises(incidents.IncidentNotFoundError):
            incidents.acknowledge(session, 99999, OPERATOR, now=T0)


def test_customers_see_only_incidents_affecting_them(catalog: Catalog) -> None:
    mine, theirs = add_tenants(catalog, 2)
    with catalog.session() as session:
        incident = incidents.open_incident(
            session, title="srv down", severity="major", actor=OPERATOR, tenant_ids=[theirs], now=T0
        )
    with catalog.session() as session:
        assert incidents.list_incidents(session, tenant_id=mine) == []
        assert [i.id for i in incidents.list_incidents(session, tenant_id=theirs)] == [incident.id]
        with pytest.raises(incidents.IncidentNotFoundError):
            incidents.visible_incident(session, incident.id, mine)
        assert incidents.visible_incident(session, incident.id, theirs).id == incident.id


def test_the_duties_run_escalation_delivery_and_reminders(
    catalog: Catalog, tmp_path: object
) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    settings = ServerSettings(
        data_dir=root,
        catalog_url=str(catalog.engine.url),
        vault_url=str(root / "vault"),
        tls_cert=root / "c",
        tls_key=root / "k",
        ca_cert=None,
        token_key_file=root / "t",
    )
    duties = incidents.incident_duties(catalog, settings)
    assert [d.name for d in duties] == [
        "incidents.escalate",
        "notifications.deliver",
        "incidents.customer-updates",
        "cases.status-updates",
    ]
    add_policy(catalog)
    with catalog.session() as session:
        incident = incidents.open_incident(
            session, title="gw1 down", severity="major", actor=OPERATOR, now=T0
        )
    ctx = DutyContext(catalog, "n1", "n1:1", "soc-duties", None, T0 + timedelta(minutes=5))
    assert duties[0].run(ctx) == 1  # level 1 paged
    with catalog.session() as session:
        assert escalation.get_incident(session, incident.id).escalation_level == 1
    assert duties[1].run(ctx) == 0  # no email sender configured: pages wait in the outbox


def test_a_storm_of_one_kind_is_one_incident_and_later_alarms_join_it(catalog: Catalog) -> None:
    add_policy(catalog)
    storm = [
        event(node=f"n{i}", alert_group="node.disk", summary=f"disk full on n{i}")
        for i in range(50)
    ]
    with catalog.session() as session:
        process_events(session, storm, now=T0)
    [incident] = incident_list(catalog)
    assert incident.title == "disk full on n0 (and 49 more node.disk alarms)"
    with catalog.session() as session:
        process_events(session, [event(node="n99", alert_group="node.disk")], now=T0)
        process_events(session, [event(node="gw1", alert_group="gateway.down")], now=T0)
    first, second = incident_list(catalog)
    assert first.id == incident.id and second.title == "agent srv1 is silent"
    with catalog.session() as session:
        members = session.scalars(select(Alarm.incident_id).where(Alarm.alert_group == "node.disk"))
        assert set(members) == {incident.id}
        assert (
            len(session.scalars(select(Alarm.id).where(Alarm.incident_id == incident.id)).all())
            == 51
        )
        kinds = [e.kind for e in incidents.timeline(session, incident.id)]
    assert "alarms_joined" in kinds


def test_an_incident_resolves_itself_when_every_alarm_has_cleared(catalog: Catalog) -> None:
    [tenant] = add_tenants(catalog, 1)
    add_policy(catalog)
    with catalog.session() as session:
        process_events(
            session, [event(tenant_id=tenant, node="a"), event(tenant_id=tenant, node="b")], now=T0
        )
    assert len(incident_list(catalog)) == 1
    with catalog.session() as session:
        process_events(
            session, [event(tenant_id=tenant, node="a", severity=Severity.CLEAR)], now=T0
        )
    assert incident_list(catalog)[0].state == IncidentState.TRIGGERED  # b is still open
    later = T0 + timedelta(minutes=3)
    with catalog.session() as session:
        process_events(
            session, [event(tenant_id=tenant, node="b", severity=Severity.CLEAR)], now=later
        )
    [resolved] = incident_list(catalog)
    assert (
        resolved.state == IncidentState.RESOLVED and resolved.resolved_by == incidents.SYSTEM_ACTOR
    )
    with catalog.session() as session:
        kinds = [e.kind for e in incidents.timeline(session, resolved.id)]
        notices = session.scalars(
            select(CustomerUpdate.kind).where(CustomerUpdate.incident_id == resolved.id)
        ).all()
    assert "resolved" in kinds
    assert "resolution" in notices


def test_new_alarms_are_stored_in_the_open_incident_of_their_group(catalog: Catalog) -> None:
    add_policy(catalog)
    with catalog.session() as session:
        process_events(session, [event(node="n0", alert_group="node.disk")], now=T0)
    [incident] = incident_list(catalog)
    updates: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE ALARMS"):
            updates.append(statement)

    later = [event(node=f"n{i}", alert_group="node.disk") for i in range(1, 30)]
    sqlalchemy_event.listen(catalog.engine, "before_cursor_execute", note)
    try:
        with catalog.session() as session:
            process_events(session, later, now=T0 + timedelta(minutes=1))
    finally:
        sqlalchemy_event.remove(catalog.engine, "before_cursor_execute", note)
    # Stored once, already in the incident: no second write of the new rows.
    assert updates == []
    with catalog.session() as session:
        members = session.scalars(select(Alarm.incident_id).where(Alarm.alert_group == "node.disk"))
        assert list(members) == [incident.id] * 30
        joined = [e for e in incidents.timeline(session, incident.id) if e.kind == "alarms_joined"]
    assert len(joined) == 1 and "29 more" in joined[0].text


def test_a_new_alarm_silenced_or_a_symptom_in_its_batch_leaves_the_incident(
    catalog: Catalog,
) -> None:
    add_policy(catalog)
    with catalog.session() as session:
        topology.link(session, "node:n2", "gateway:gw1")
        process_events(session, [event(node="n0", alert_group="node.disk")], now=T0)
        silences.create_silence(
            session,
            actor="soc:alice",
            comment="disk swap on n1",
            matchers=[{"field": "node", "op": "=", "value": "n1"}],
            starts_at=T0,
            ends_at=T0 + timedelta(hours=1),
            now=T0,
        )
    [incident] = incident_list(catalog)
    batch = [
        event(node="gw1", alert_group="gateway.down", entity="gateway:gw1", summary="gw1 is down"),
        event(node="n1", alert_group="node.disk"),  # silenced
        event(node="n2", alert_group="node.disk", entity="node:n2"),  # below the down gateway
        event(node="n3", alert_group="node.disk"),  # joins
    ]
    with catalog.session() as session:
        process_events(session, batch, now=T0 + timedelta(minutes=1))
        rows = dict(
            session.execute(
                select(Alarm.node, Alarm.incident_id).where(Alarm.alert_group == "node.disk")
            ).all()
        )
    assert rows == {"n0": incident.id, "n1": None, "n2": None, "n3": incident.id}
