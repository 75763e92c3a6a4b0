"""Tenants, and the scoping that keeps each tenant's rows away from every other."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import delete, func, select, update

from vaultwatch.catalog import (
    Agent,
    AuditEntry,
    Catalog,
    Repository,
    Role,
    Tenant,
    User,
)
from vaultwatch.catalog.errors import (
    TenantExistsError,
    TenantNotFoundError,
    TenantScopeError,
    ValidationError,
)
from vaultwatch.catalog.security import hash_password
from vaultwatch.catalog.tenants import (
    create_tenant,
    find_tenant,
    get_tenant,
    list_tenants,
    normalize_tenant_name,
)

from .conftest import ACTOR, add_tenant, enroll


def test_create_list_and_get_tenants(catalog: Catalog) -> None:
    zeta = add_tenant(catalog, "  Zeta   Logistics ")
    acme = add_tenant(catalog, "Acme Corp")
    with catalog.session() as session:
        assert [t.name for t in list_tenants(session)] == ["Acme Corp", "Zeta Logistics"]
        assert get_tenant(session, zeta.id).name == "Zeta Logistics"
        assert find_tenant(session, "ACME corp") is not None
        assert find_tenant(session, "Nobody") is None
        entries = session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars().all()
        assert [(e.action, e.tenant_id, e.actor) for e in entries] == [
            ("tenant.create", zeta.id, ACTOR),
            ("tenant.create", acme.id, ACTOR),
        ]


@pytest.mark.parametrize("duplicate", ["Acme Corp", "acme corp", " ACME   CORP "])
def test_duplicate_names_are_refused_ignoring_case_and_spacing(
    catalog: Catalog, duplicate: str
) -> None:
    add_tenant(catalog, "Acme Corp")
    with pytest.raises(TenantExistsError, match="'Acme Corp' already exists"):
        add_tenant(catalog, duplicate)
    with catalog.session() as session:
        assert len(list_tenants(session)) == 1


@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "empty"), ("   ", "empty"), ("x" * 201, "at most 200"), ("Acme\x00", "control")],
)
def test_malformed_names_are_refused(catalog: Catalog, name: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        add_tenant(catalog, name)


def test_name_key_folds_case_and_compatibility_forms() -> None:
    assert normalize_tenant_name("Straße  GmbH") == ("Straße GmbH", "strasse gmbh")
    assert normalize_tenant_name("\uff21\uff23\uff2d\uff25")[1] == "acme"  # full-width ACME


def test_unknown_tenant_is_a_clear_error(catalog: Catalog) -> None:
    missing = uuid.uuid4()
    with pytest.raises(TenantNotFoundError, match=str(missing)), catalog.session() as session:
        get_tenant(session, missing)


def test_concurrent_creation_of_one_name_makes_one_tenant(catalog: Catalog) -> None:
    threads = 6
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []
    lock = threading.Lock()

    def create() -> None:
        barrier.wait()
        try:
            with catalog.session() as session:
                create_tenant(session, "Race Ltd", actor=ACTOR)
            outcome = "created"
        except TenantExistsError:
            outcome = "exists"
        with lock:
            outcomes.append(outcome)

    workers = [threading.Thread(target=create) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(outcomes) == ["created"] + ["exists"] * (threads - 1)
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Tenant)) == 1


def _two_tenants_with_data(catalog: Catalog, key: bytes) -> tuple[Tenant, Tenant]:
    acme, zeta = add_tenant(catalog, "Acme"), add_tenant(catalog, "Zeta")
    for tenant in (acme, zeta):
        enroll(catalog, tenant, key, hostname=f"{tenant.name.lower()}-1")
        enroll(catalog, tenant, key, hostname=f"{tenant.name.lower()}-2")
        with catalog.session() as session:
            session.add(
                Repository(tenant_id=tenant.id, name="main", primary_location="/srv/vault/t")
            )
            session.add(
                User(
                    tenant_id=tenant.id,
                    email=f"admin@{tenant.name.lower()}.example",
                    display_name="Admin",
                    password_hash=hash_password("correct horse"),
                    role=Role.CUSTOMER_ADMIN,
                )
            )
    with catalog.session() as session:
        session.add(
            User(
                tenant_id=None,
                email="ops@vaultwatch.example",
                display_name="Operator",
                password_hash=hash_password("battery staple"),
                role=Role.SOC_OPERATOR,
            )
        )
    return acme, zeta


def test_scoped_session_sees_only_its_tenant(catalog: Catalog, key: bytes) -> None:
    acme, zeta = _two_tenants_with_data(catalog, key)
    with catalog.session() as session:
        zeta_agent = session.execute(select(Agent).where(Agent.tenant_id == zeta.id)).scalars()
        zeta_agent_id = next(iter(zeta_agent)).id
        assert session.scalar(select(func.count()).select_from(Agent)) == 4

    with catalog.session(tenant_id=acme.id) as session:
        assert session.tenant_id == acme.id
        agents = session.execute(select(Agent)).scalars().all()
        assert sorted(a.hostname for a in agents) == ["acme-1", "acme-2"]
        # Even asking for the other tenant explicitly, or by primary key, finds nothing.
        assert session.execute(select(Agent).where(Agent.tenant_id == zeta.id)).all() == []
        assert session.get(Agent, zeta_agent_id) is None
        assert [t.name for t in session.execute(select(Tenant)).scalars()] == ["Acme"]
        assert session.get(Tenant, zeta.id) is None
        # Staff users and other tenants' users are invisible; so are joins through them.
        emails = session.execute(select(User.email)).scalars().all()
        assert emails == ["admin@acme.example"]
        joined = session.execute(select(Agent.hostname).join(Tenant)).scalars().all()
        assert sorted(joined) == ["acme-1", "acme-2"]
        audit_tenants = set(session.execute(select(AuditEntry.tenant_id)).scalars())
        assert audit_tenants == {acme.id}
        # Relationship loads carry the scope too.
        assert all(a.tenant.id == acme.id for a in agents)


def test_scoped_bulk_update_and_delete_touch_only_the_tenant(catalog: Catalog, key: bytes) -> None:
    acme, zeta = _two_tenants_with_data(catalog, key)
    with catalog.session(tenant_id=acme.id) as session:
        result = session.execute(
            update(Agent).values(version="9.9").execution_options(synchronize_session=False)
        )
        assert result.rowcount == 2  # type: ignore[attr-defined]
        session.execute(delete(Repository).execution_options(synchronize_session=False))
    with catalog.session() as session:
        rows = session.execute(select(Agent.hostname, Agent.version)).all()
        versions = {hostname: version for hostname, version in rows}
        assert versions == {"acme-1": "9.9", "acme-2": "9.9", "zeta-1": None, "zeta-2": None}
        owners = session.execute(select(Repository.tenant_id)).scalars().all()
        assert owners == [zeta.id]


def test_scoped_session_refuses_writes_for_another_tenant(catalog: Catalog, key: bytes) -> None:
    acme, zeta = _two_tenants_with_data(catalog, key)
    with pytest.raises(TenantScopeError), catalog.session(tenant_id=acme.id) as session:
        session.add(Repository(tenant_id=zeta.id, name="sneaky", primary_location="/srv/vault/x"))
    with pytest.raises(TenantScopeError), catalog.session(tenant_id=acme.id) as session:
        session.add(Tenant(name="New", name_key="new"))
    with pytest.raises(TenantScopeError), catalog.session(tenant_id=acme.id) as session:
        create_tenant(session, "Another", actor=ACTOR)
    # A row without a tenant takes the session's: the tenant comes from the credential.
    with catalog.session(tenant_id=acme.id) as session:
        repository = Repository(name="second", primary_location="/srv/vault/y")
        session.add(repository)
    assert repository.tenant_id == acme.id
    with catalog.session() as session:
        names = session.execute(select(Repository.name).where(Repository.tenant_id == zeta.id))
        assert names.scalars().all() == ["main"]


def test_tenant_scoped_session_lists_only_its_own_tenant(catalog: Catalog) -> None:
    acme = add_tenant(catalog, "Acme")
    add_tenant(catalog, "Zeta")
    with catalog.session(tenant_id=acme.id) as session:
        assert [t.name for t in list_tenants(session)] == ["Acme"]
