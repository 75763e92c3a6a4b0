"""Alembic environment for the catalog, run from `vaultwatch.catalog.db`.

The caller passes an open connection in `config.attributes["connection"]`
(that is how in-memory SQLite and the migration lock work); with only a URL,
an engine is made with the catalog's own settings.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from vaultwatch.catalog.models import Base
from vaultwatch.catalog.types import EnumText, JSONList, JSONObject, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write plain SQLAlchemy types into migrations, so old revisions never import model code."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(obj, EnumText):
        return f"sa.String(length={obj.length})"
    if kind == "type" and (obj is JSONObject or obj is JSONList):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return "sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')"
    return False


def skip_empty_revisions(context_: Any, revision: Any, directives: list[Any]) -> None:
    """Write no file when autogenerate finds nothing to change."""
    if getattr(config.cmd_opts, "autogenerate", False) or config.attributes.get("autogenerate"):
        script = directives[0]
        if script.upgrade_ops.is_empty():
            directives[:] = []
            print("models match the migrations: no revision written")


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
        process_revision_directives=skip_empty_revisions,
        **kwargs,
    )


def run_offline() -> None:
    """Emit SQL text instead of running it (`alembic upgrade --sql`)."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations on the caller's connection or on a fresh engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    from vaultwatch.catalog.db import make_engine

    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no catalog URL: pass a connection or set sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.begin() as new_connection:
            _run_on(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
