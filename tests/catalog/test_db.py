"""Catalog sessions: commit or roll back as a unit, and telemetry commits that skip the WAL wait."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from tests.catalog.conftest import add_tenant
from vaultwatch.catalog import Catalog, Tenant


def _commit_sync(catalog: Catalog, *, telemetry: bool) -> str:
    """How the session's commit waits for the disk, as the engine reports it."""
    query = "SHOW synchronous_commit" if catalog.dialect == "postgresql" else "PRAGMA synchronous"
    with catalog.session(telemetry=telemetry) as session:
        return str(session.execute(text(query)).scalar_one())


def test_telemetry_sessions_do_not_wait_for_the_disk(catalog: Catalog) -> None:
    """PostgreSQL: only the telemetry transaction skips the WAL flush, and only itself (SET LOCAL).

    SQLite commits every transaction that way already (WAL with synchronous=NORMAL, 1).
    """
    if catalog.dialect == "postgresql":
        assert _commit_sync(catalog, telemetry=True) == "off"
        assert _commit_sync(catalog, telemetry=False) == "on"
    else:
        assert _commit_sync(catalog, telemetry=True) == "1"
        assert _commit_sync(catalog, telemetry=False) == "1"


def test_telemetry_sessions_commit_and_roll_back_like_any_other(catalog: Catalog) -> None:
    tenant = add_tenant(catalog, "Acme")
    with catalog.session(tenant_id=tenant.id, telemetry=True) as session:
        session.get(Tenant, tenant.id).escrow_allowed = True  # type: ignore[union-attr]
    with pytest.raises(RuntimeError), catalog.session(telemetry=True) as session:
        session.get(Tenant, tenant.id).escrow_allowed = False  # type: ignore[union-attr]
        raise RuntimeError("the request failed half way")
    with catalog.session() as session:
        allowed = session.execute(select(Tenant.escrow_allowed)).scalars().all()
    assert allowed == [True]
