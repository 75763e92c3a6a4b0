"""Catalog test fixtures: every catalog test runs on SQLite and on PostgreSQL.

The PostgreSQL server comes from $VAULTWATCH_TEST_POSTGRES_URL or the URL that
scripts/ensure-postgres.sh prints; when it cannot be reached the script is run
to install or start it. If PostgreSQL is still unreachable the PostgreSQL tests
fail when $CI is set (they must never silently disappear there) and are
skipped with the reason otherwise. Each PostgreSQL test gets a database of its
own, created and dropped here.
"""

from __future__ import annotations

import os
import subprocess
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
ENSURE_SCRIPT = REPO_ROOT / "scripts" / "ensure-postgres.sh"
PG_URL_ENV = "VAULTWATCH_TEST_POSTGRES_URL"
DEFAULT_PG_URL = "postgresql+psycopg://vaultwatch:vaultwatch@127.0.0.1:5432/vaultwatch_test"
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


def _ensure_postgres(url: URL) -> tuple[str | None, str]:
    """Run the bootstrap script for the server, role and database in `url`.

    Returns the URL it printed (None if it failed) and what it said.
    """
    env = dict(os.environ)
    settings = {
        "VAULTWATCH_PG_HOST": url.host,
        "VAULTWATCH_PG_PORT": url.port,
        "VAULTWATCH_PG_USER": url.username,
        "VAULTWATCH_PG_PASSWORD": url.password,
        "VAULTWATCH_PG_DATABASE": url.database,
    }
    env.update({name: str(value) for name, value in settings.items() if value})
    try:
        result = subprocess.run(
            [str(ENSURE_SCRIPT)], capture_output=True, text=True, timeout=900, check=False, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    output = (result.stderr + result.stdout).strip()
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        return None, output
    return lines[-1], output


@pytest.fixture(scope="session")
def postgres_server_url() -> URL:
    """A PostgreSQL URL whose role may create databases; bootstraps the server if needed."""
    url = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    error = _connect_error(url)
    if error is not None:
        ensured_url, output = _ensure_postgres(make_url(url))
        if ensured_url is not None:
            url = ensured_url
            error = _connect_error(url)
        if error is not None:
            message = (
                f"PostgreSQL unreachable at {make_url(url).render_as_string()}: {error}\n"
                f"{ENSURE_SCRIPT.name} said: {output}"
            )
            if os.environ.get("CI"):
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
    return make_url(url)


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
