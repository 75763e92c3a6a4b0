"""Retention fixtures: the real gateway (SQLite and PostgreSQL catalogs) and a managed vault in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import gateway, postgres_server_url
from tests.gateway.harness import GatewayServer
from tests.retention.harness import ManagedVault

__all__ = ["gateway", "postgres_server_url"]  # fixtures, shared with the gateway tests


@pytest.fixture
def vault(gateway: GatewayServer, tmp_path: Path) -> Iterator[ManagedVault]:
    """A new tenant whose agent backs up the set "docs" into its vault through the gateway."""
    managed = ManagedVault.create(gateway, tmp_path)
    try:
        yield managed
    finally:
        managed.close()
