"""Catalog sessions: commit or roll back as a unit, and telemetry commits that skip the WAL wait."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from tests.catalog.conftest import add_tenant, terminate_other_connections
from vaultwatch.catalog import Catalog, Tenant, db


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


ON_POSTGRESQL = pytest.mark.parametrize("catalog_url", ["postgresql"], indirect=True)


def _backend_pid(catalog: Catalog) -> int:
    with catalog.session() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


@ON_POSTGRESQL
def test_idle_pooled_connections_are_checked_before_use(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection that sat idle and died meanwhile is replaced: the caller sees no error."""
    before = _backend_pid(catalog)
    assert terminate_other_connections(catalog.engine.url) >= 1
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if it sat idle for long
    assert _backend_pid(catalog) != before


@ON_POSTGRESQL
def test_recently_used_connections_skip_the_ping(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection used a moment ago goes out unpinged: one round trip less per transaction."""
    dialect = catalog.engine.dialect
    pings: list[object] = []
    real_ping = dialect.do_ping

    def counting_ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    first = _backend_pid(catalog)
    assert _backend_pid(catalog) == first
    assert pings == []
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert _backend_pid(catalog) == first
    assert len(pings) == 1


@ON_POSTGRESQL
def test_a_connection_lost_mid_use_fails_once_then_the_pool_recovers(catalog: Catalog) -> None:
    """Within the no-ping second a restart costs one failed statement, not a broken pool."""
    _backend_pid(catalog)
    terminate_other_connections(catalog.engine.url)
    with pytest.raises(OperationalError), catalog.session() as session:
        session.execute(text("SELECT 1"))
    assert _backend_pid(catalog) > 0


def test_the_tenant_scope_cache_evicts_safely_from_many_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Request threads share the cache; evicting from a full cache at once must not fail."""
    import sys
    import threading
    import uuid

    monkeypatch.setattr(db, "_SCOPE_CACHE_TENANTS", 2)
    monkeypatch.setattr(db, "_scope_cache", {})
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show at once
    failures: list[BaseException] = []

    def churn() -> None:
        try:
            for _ in range(300):
                assert db._scope_options(uuid.uuid4())
        except BaseException as exc:
            failures.append(exc)

    try:
        threads = [threading.Thread(target=churn) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert len(db._scope_cache) <= 2


def test_one_of_selects_exactly_the_listed_rows(catalog: Catalog) -> None:
    """The IN condition (one array parameter on PostgreSQL) matches the same rows on both engines."""
    tenants = [add_tenant(catalog, f"One-of {n}") for n in range(4)]
    wanted = [tenants[0].id, tenants[2].id]
    with catalog.session() as session:
        found = set(session.scalars(select(Tenant.id).where(db.one_of(session, Tenant.id, wanted))))
        name = session.scalars(select(Tenant.name).where(Tenant.id == tenants[1].id)).one()
        names = set(
            session.scalars(
                select(Tenant.name).where(db.one_of(session, Tenant.name, [name, "nobody"]))
            )
        )
        none = list(session.scalars(select(Tenant.id).where(db.one_of(session, Tenant.id, []))))
    assert found == set(wanted)
    assert names == {name}
    assert none == []
