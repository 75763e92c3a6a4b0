"""Web fixtures: one web role app per test module on each engine, reset between tests.

Making a data directory (migrations, TLS identity, five users' password
hashes) takes seconds, so a module shares one and each test starts from
no alarms, no sessions and no failed logins, with a browser holding no cookies.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, delete, text, update
from sqlalchemy.engine import URL

from tests.catalog.conftest import ENGINES, postgres_server_url
from tests.soc.api.harness import SocApi, soc_api
from vaultwatch.catalog import AuditEntry
from vaultwatch.catalog.models import User
from vaultwatch.catalog.soc_models import Alarm, AlarmJournalEntry, ApiKey
from vaultwatch.web.sessions import SESSION_NAME

__all__ = ["postgres_server_url"]


@pytest.fixture(scope="module", params=ENGINES)
def web_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SocApi]:
    """The web role with an administrator, an operator, a technician and two customers."""
    root = tmp_path_factory.mktemp("web")
    if request.param == "sqlite":
        with soc_api(root) as running:
            yield running
        return
    server: URL = request.getfixturevalue("postgres_server_url")
    name = f"vwtest_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        with soc_api(root, server.set(database=name)) as running:
            yield running
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def api(web_api: SocApi) -> SocApi:
    """The module's app with no alarms, sessions or failed logins, and a browser without cookies."""
    with web_api.catalog.session() as session:
        session.execute(delete(AlarmJournalEntry))
        session.execute(delete(Alarm))
        session.execute(delete(ApiKey).where(ApiKey.name == SESSION_NAME))
        session.execute(delete(AuditEntry).where(AuditEntry.action.like("login.%")))
        session.execute(update(User).values(last_login_at=None))
    web_api.client.cookies.clear()
    return web_api
