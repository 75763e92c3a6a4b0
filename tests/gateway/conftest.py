"""Gateway fixtures: one real gateway per catalog engine (SQLite, PostgreSQL) for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.catalog.conftest import ENGINES, postgres_server_url
from tests.gateway.harness import GatewayServer, postgres_database, running_gateway

__all__ = ["postgres_server_url"]  # a fixture, shared with the catalog tests


@pytest.fixture(scope="session", params=ENGINES)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """A gateway over TLS on loopback with its catalog on each engine."""
    data_dir = tmp_path_factory.mktemp(f"gateway-{request.param}") / "data"
    if request.param == "sqlite":
        with running_gateway(data_dir, None, "sqlite") as gw:
            yield gw
        return
    server_url = request.getfixturevalue("postgres_server_url")
    with (
        postgres_database(server_url) as url,
        running_gateway(data_dir, url.render_as_string(hide_password=False), "postgresql") as gw,
    ):
        yield gw
