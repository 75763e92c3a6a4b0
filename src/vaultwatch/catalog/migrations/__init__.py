"""Alembic migrations of the catalog; run them with `vaultwatch.catalog.db.upgrade`."""
