"""Catalog test fixtures: every catalog test runs on SQLite and on PostgreSQL.

The PostgreSQL server is $VAULTWATCH_TEST_POSTGRES_URL (scripts/test.sh sets it
to the throwaway cluster it runs for the whole suite) or else a throwaway
cluster that scripts/test-postgres.sh starts for this pytest session and
removes at its end. A PostgreSQL the machine already runs (on 5432 or
elsewhere) is never used. When PostgreSQL cannot be had the PostgreSQL tests
fail with the reason, in CI and outside it: they never silently disappear.
``pytest -m "not postgres"`` leaves them out on purpose. Each PostgreSQL test
gets a database of its own, created and dropped here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from vaultwatch.catalog import Catalog, Tenant
from vaultwatch.catalog.enrollment import (
    EnrolledAgent,
    create_enrollment_token,
    redeem_enrollment_token,
)
from vaultwatch.catalog.security import new_token_key
from vaultwatch.catalog.tenants import create_tenant

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO_ROOT / "scripts" / "test-postgres.sh"
PG_URL_ENV = "VAULTWATCH_TEST_POSTGRES_URL"
ACTOR = "user:00000000-0000-0000-0000-000000000001"

ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def _connect_error(url: str) -> str | None:
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        engine.dispose()


def _cluster(action: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLUSTER_SCRIPT), action, str(directory)],
        capture_output=True,
        text=True,
        timeout=900,  # may install PostgreSQL first
        check=False,
        # Removed by a watcher if this process dies before the teardown runs.
        env={**os.environ, "VAULTWATCH_PG_OWNER_PID": str(os.getpid())},
    )


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[URL]:
    """A PostgreSQL URL whose role may create databases: the given one, or a cluster of our own."""
    given = os.environ.get(PG_URL_ENV)
    if given:
        error = _connect_error(given)
        if error is not None:
            pytest.fail(
                f"PostgreSQL unreachable at ${PG_URL_ENV}={make_url(given)!r}: {error}",
                pytrace=False,
            )
        yield make_url(given)
        return
    # Not pytest's tmp_path: the server runs as another user when we are root, and
    # pytest's directories are private to us. The script takes the empty directory over.
    directory = Path(tempfile.mkdtemp(prefix="vaultwatch-pg-"))
    try:
        started = _cluster("start", directory)
        if started.returncode != 0 or not started.stdout.strip():
            pytest.fail(
                f"could not start a PostgreSQL cluster for the tests "
                f"({CLUSTER_SCRIPT.name} start, exit {started.returncode}):\n"
                f"{started.stderr.strip()}",
                pytrace=False,
            )
        yield make_url(started.stdout.strip().splitlines()[-1])
    finally:
        _cluster("stop", directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server_url: URL) -> Iterator[URL]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"vwtest_{uuid.uuid4().hex[:16]}"
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield postgres_server_url.set(database=name)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=ENGINES)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> URL:
    """An empty catalog database on each engine."""
    if request.param == "sqlite":
        return make_url(f"sqlite:///{tmp_path / 'catalog.db'}")
    url: URL = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def catalog(catalog_url: URL) -> Iterator[Catalog]:
    """A migrated catalog on each engine."""
    cat = Catalog(catalog_url)
    cat.upgrade()
    try:
        yield cat
    finally:
        cat.dispose()


@pytest.fixture
def key() -> bytes:
    """The server's token key."""
    return new_token_key()


def add_tenant(catalog: Catalog, name: str) -> Tenant:
    """Create a tenant in its own transaction."""
    with catalog.session() as session:
        return create_tenant(session, name, actor=ACTOR)


def enroll(catalog: Catalog, tenant: Tenant, key: bytes, hostname: str = "srv1") -> EnrolledAgent:
    """Create a token for `tenant` and redeem it: a new agent with its credential."""
    with catalog.session() as session:
        issued = create_enrollment_token(session, tenant.id, key=key, created_by=ACTOR)
    with catalog.session() as session:
        return redeem_enrollment_token(session, issued.plaintext, key=key, hostname=hostname)


def terminate_other_connections(url: URL) -> int:
    """Terminate every other connection to the database: a restart, as the pool sees it."""
    admin = Catalog(url)
    try:
        with admin.session() as session:
            killed = session.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        admin.dispose()
    return int(killed)
