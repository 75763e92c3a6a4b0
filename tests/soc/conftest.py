"""SOC fixtures: the catalog fixtures (SQLite and PostgreSQL) shared with the catalog tests."""

from tests.catalog.conftest import catalog, catalog_url, key, postgres_server_url, postgres_url

__all__ = ["catalog", "catalog_url", "key", "postgres_server_url", "postgres_url"]
