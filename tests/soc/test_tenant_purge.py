"""The purge duty: a deleted tenant's vault and records go after the grace period, not before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from tests.catalog.conftest import ACTOR, add_tenant, enroll
from vaultwatch.catalog import Agent, AuditEntry, Catalog
from vaultwatch.catalog.tenant_lifecycle import delete_tenant, tenant_state
from vaultwatch.catalog.tenants import get_tenant
from vaultwatch.catalog.vaults import register_tenant_vault
from vaultwatch.soc.duties import DutyContext
from vaultwatch.soc.housekeeping import housekeeping_duties
from vaultwatch.soc.tenant_purge import empty_vault
from vaultwatch.store.local import LocalStore

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _vault(root: Path, name: str) -> LocalStore:
    store = LocalStore(root / name)
    store.create_if_missing()
    for i in range(3):
        store.put(f"data/{i:02x}/{i:064x}", b"pack %d" % i)
    store.put("config", b"cfg")
    return store


def test_the_duty_purges_only_tenants_past_their_grace_period(
    catalog: Catalog, key: bytes, tmp_path: Path
) -> None:
    gone, waiting = add_tenant(catalog, "Acme"), add_tenant(catalog, "Globex")
    enroll(catalog, gone, key)
    enroll(catalog, waiting, key)
    stores = {t.id: _vault(tmp_path, t.name) for t in (gone, waiting)}
    with catalog.session() as session:
        for tenant in (gone, waiting):
            register_tenant_vault(session, tenant.id, str(tmp_path / tenant.name), actor=ACTOR)
        delete_tenant(session, gone.id, actor=ACTOR, grace=timedelta(days=30), now=NOW)
        delete_tenant(session, waiting.id, actor=ACTOR, grace=timedelta(days=90), now=NOW)
    (duty,) = [d for d in housekeeping_duties() if d.name == "tenants.purge"]
    assert duty.leased
    early = DutyContext(catalog, "n1", "n1:1", "soc-duties", epoch=None, clock_now=NOW)
    assert duty.run(early) == 0
    assert len(list(stores[gone.id].list())) == 4
    later = DutyContext(
        catalog, "n1", "n1:1", "soc-duties", epoch=None, clock_now=NOW + timedelta(days=31)
    )
    assert duty.run(later) == 1
    assert list(stores[gone.id].list()) == []
    assert len(list(stores[waiting.id].list())) == 4  # still within its grace period
    with catalog.session() as session:
        assert tenant_state(get_tenant(session, gone.id)) == "purged"
        assert tenant_state(get_tenant(session, waiting.id)) == "deleted"
        left = session.scalars(select(Agent.tenant_id)).all()
        assert left == [waiting.id]
        purge = session.scalars(select(AuditEntry).where(AuditEntry.action == "tenant.purge")).one()
        assert purge.actor == "system:tenants.purge" and purge.tenant_id == gone.id
    assert duty.run(later) == 0  # nothing left to do


def test_emptying_a_vault_twice_or_a_missing_one_is_harmless(tmp_path: Path) -> None:
    _vault(tmp_path, "v")
    assert empty_vault(str(tmp_path / "v")) == 4
    assert empty_vault(str(tmp_path / "v")) == 0
    assert empty_vault(str(tmp_path / "never-made")) == 0


def test_an_interrupted_purge_is_finished_by_the_next_run(
    catalog: Catalog, key: bytes, tmp_path: Path
) -> None:
    from vaultwatch.catalog.tenant_lifecycle import begin_tenant_purge

    tenant = add_tenant(catalog, "Acme")
    enroll(catalog, tenant, key)
    store = _vault(tmp_path, "acme")
    with catalog.session() as session:
        register_tenant_vault(session, tenant.id, str(tmp_path / "acme"), actor=ACTOR)
        delete_tenant(session, tenant.id, actor=ACTOR, grace=timedelta(0), now=NOW)
    with catalog.session() as session:  # a node began, then died before emptying the vault
        begin_tenant_purge(session, tenant.id, actor=ACTOR, now=NOW)
    (duty,) = [d for d in housekeeping_duties() if d.name == "tenants.purge"]
    context = DutyContext(catalog, "n2", "n2:1", "soc-duties", epoch=None, clock_now=NOW)
    assert duty.run(context) == 1
    assert list(store.list()) == []
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Agent)) == 0
