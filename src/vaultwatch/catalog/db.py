"""Engines, sessions and migrations for the catalog.

SQLite (in WAL mode) is the embedded default; PostgreSQL through psycopg 3 is
the engine several server nodes share. Code above this module never branches
on the engine: concurrency-sensitive writes are single conditional statements
(UPDATE ... WHERE, INSERT ... ON CONFLICT) guarded by constraints, which are
correct under PostgreSQL's READ COMMITTED and under SQLite's one-writer lock.

On SQLite the driver opens a transaction at the first write, so reads before
it see the latest committed data and a transaction never has to upgrade a
stale read snapshot to a write lock (which SQLite would refuse at once with
"database is locked" instead of waiting).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    ColumnElement,
    Engine,
    any_,
    cast,
    create_engine,
    event,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from vaultwatch.catalog.errors import CatalogSchemaError, TenantScopeError
from vaultwatch.catalog.models import Base, HasTenant, Tenant
from vaultwatch.catalog.types import utcnow

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: How long a SQLite connection waits for the write lock before failing.
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0

#: Key of the session-level advisory lock that serializes migrations on PostgreSQL,
#: so server nodes starting together don't migrate twice.
_MIGRATION_LOCK_KEY = 0x5641554C54  # "VAULT"

_TENANT_KEY = "vaultwatch_tenant_id"


def normalize_url(url: str | URL) -> URL:
    """Use psycopg 3 for every PostgreSQL URL, whatever driver (if any) it names."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """Create an engine configured for the catalog on SQLite or PostgreSQL.

    SQLite gets WAL (readers never block the writer), foreign keys (off by
    default in SQLite), a busy timeout (writers queue instead of failing) and
    connections shareable across threads. An in-memory database (`sqlite://`)
    uses one shared connection, so it suits single-threaded tests and demos
    only: concurrent sessions would share one transaction.
    PostgreSQL connections report times in UTC and are checked before use
    when they sat idle (see `_ping_when_idle`), so a database restart costs a
    retry, not an error.
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _make_sqlite_engine(parsed, echo=echo)
    if backend == "postgresql":
        engine = create_engine(
            parsed,
            echo=echo,
            pool_size=10,
            max_overflow=20,
            pool_recycle=1800,
            connect_args={
                "options": "-c timezone=UTC",
                "application_name": "vaultwatch",
                "connect_timeout": 10,
            },
        )
        _ping_when_idle(engine)
        return engine
    raise ValueError(f"unsupported catalog database {backend!r}: use sqlite:// or postgresql://")


#: A pooled PostgreSQL connection idle for longer than this is pinged before it is used.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Check pooled connections that sat idle before handing them out.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: a round trip per
    transaction, 1 in 11 of a heartbeat's when we measured, and each one
    waits for a core on a busy server. A connection that served a
    transaction within the last second is used as it is; should the database
    have restarted in that second, that one statement fails, SQLAlchemy sees
    the disconnect and drops every older pooled connection, and the caller
    gets a retryable error (503 from the API).
    """

    @event.listens_for(engine, "checkin")
    def _note_idle(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or busy a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


def _make_sqlite_engine(url: URL, *, echo: bool) -> Engine:
    connect_args: dict[str, Any] = {
        "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
        "check_same_thread": False,
    }
    memory = _is_memory_sqlite(url)
    if memory:
        engine = create_engine(url, echo=echo, poolclass=StaticPool, connect_args=connect_args)
    else:
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            pool_size=5,
            max_overflow=10,
            pool_timeout=SQLITE_BUSY_TIMEOUT_SECONDS,
            connect_args=connect_args,
        )

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                # NORMAL is durable in WAL mode except for the last commits on power loss.
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return engine


class CatalogSession(Session):
    """A session that may be scoped to one tenant.

    A scoped session only ever sees that tenant's rows (every ORM query,
    relationship load and `get`), and refuses to write rows of another tenant;
    new rows without a tenant get the scope's. This makes "the tenant comes
    from the credential" hold by construction rather than by care in each query.
    Core statements on `Table` objects bypass it: use ORM entities.
    """

    @property
    def tenant_id(self) -> uuid.UUID | None:
        """The tenant this session is scoped to, or None for a service-wide session."""
        value = self.info.get(_TENANT_KEY)
        return value if isinstance(value, uuid.UUID) else None


def session_tenant(session: Session) -> uuid.UUID | None:
    """The tenant a session is scoped to (None when service-wide or not a CatalogSession)."""
    value = session.info.get(_TENANT_KEY)
    return value if isinstance(value, uuid.UUID) else None


def confine_to_tenant(session: Session, tenant_id: uuid.UUID) -> None:
    """From now on the session sees and writes only `tenant_id`'s rows.

    For a transaction that learns its tenant from a credential it checks
    first; a session already confined to another tenant cannot be moved.
    """
    current = session_tenant(session)
    if current is not None and current != tenant_id:
        raise TenantScopeError("this session is confined to another tenant")
    session.info[_TENANT_KEY] = tenant_id


_tenant_models_cache: tuple[int, tuple[type[Any], ...]] = (0, ())


def _tenant_owned_models() -> tuple[type[Any], ...]:
    """Every mapped model with a `tenant_id`, including models imported after the first query."""
    global _tenant_models_cache
    mappers = Base.registry.mappers
    count, models = _tenant_models_cache
    if count != len(mappers):
        models = tuple(m.class_ for m in mappers if issubclass(m.class_, HasTenant))
        _tenant_models_cache = (len(mappers), models)
    return models


#: How many tenants' scoping options are kept ready (building them costs more than the query).
_SCOPE_CACHE_TENANTS = 4096
_scope_cache: dict[uuid.UUID, tuple[int, tuple[Any, ...]]] = {}
#: Request threads share the cache: two evicting the same oldest entry at once would fail.
_scope_cache_lock = threading.Lock()


def _scope_options(tenant_id: uuid.UUID) -> tuple[Any, ...]:
    """The loader criteria that confine a statement to one tenant, built once per tenant.

    Building eleven `with_loader_criteria` options took about 1 ms per
    statement, more than most heartbeat queries themselves.
    """
    models = _tenant_owned_models()
    cached = _scope_cache.get(tenant_id)
    if cached is not None and cached[0] == len(models):
        return cached[1]
    options = (
        *(
            with_loader_criteria(
                model, lambda cls: cls.tenant_id == tenant_id, include_aliases=True
            )
            for model in models
        ),
        with_loader_criteria(Tenant, lambda cls: cls.id == tenant_id, include_aliases=True),
    )
    with _scope_cache_lock:
        while len(_scope_cache) >= _SCOPE_CACHE_TENANTS:
            _scope_cache.pop(next(iter(_scope_cache)))
        _scope_cache[tenant_id] = (len(models), options)
    return options


@event.listens_for(CatalogSession, "do_orm_execute")
def _scope_queries(state: ORMExecuteState) -> None:
    tenant_id = session_tenant(state.session)
    if tenant_id is None:
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the criteria added to the parent statement already travel with these
    if not state.all_mappers:
        return  # no entity at all (e.g. SELECT clock_timestamp()): nothing to confine
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(*_scope_options(tenant_id))


@event.listens_for(CatalogSession, "before_flush")
def _guard_tenant_writes(session: Session, _context: Any, _instances: Any) -> None:
    tenant_id = session_tenant(session)
    if tenant_id is None:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Tenant):
            if obj.id is not None and obj.id != tenant_id:
                raise TenantScopeError("a tenant-scoped session may not change other tenants")
            if obj in session.new:
                raise TenantScopeError("a tenant-scoped session may not create tenants")
        elif isinstance(obj, HasTenant):
            owner = getattr(obj, "tenant_id", None)
            if owner is None and obj in session.new:
                obj.tenant_id = tenant_id  # type: ignore[attr-defined]
            elif owner != tenant_id:
                raise TenantScopeError(
                    f"{type(obj).__name__} belongs to another tenant than this session's"
                )


class Catalog:
    """The catalog database: one engine and a factory of short transactions.

    `session()` is the unit of work: it commits when the block ends normally
    and rolls back on any exception, so a half-done change never lands.
    Objects stay readable after the block (no expiry on commit) so callers can
    render what they just wrote.
    """

    def __init__(self, url_or_engine: str | URL | Engine, *, echo: bool = False) -> None:
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
        else:
            self.engine = make_engine(url_or_engine, echo=echo)
        self._sessions = sessionmaker(
            bind=self.engine, class_=CatalogSession, expire_on_commit=False
        )
        self._writers = threading.Lock()

    @contextmanager
    def write_turn(self) -> Iterator[None]:
        """On SQLite, wait for this process's turn to write; on PostgreSQL, nothing.

        SQLite has one writer at a time, and its busy handler lets waiting
        writers poll with growing sleeps: with a hundred threads writing at
        once, some starve past the busy timeout ("database is locked").
        Threads that queue here are served in turn, so only one writer per
        process waits inside SQLite. Wrap whole write transactions of the
        busiest paths (event ingestion) in it.
        """
        if self.dialect != "sqlite":
            yield
            return
        with self._writers:
            yield

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @contextmanager
    def session(
        self, *, tenant_id: uuid.UUID | None = None, telemetry: bool = False
    ) -> Iterator[CatalogSession]:
        """A transaction; with `tenant_id`, one that sees and writes only that tenant's rows.

        `telemetry` marks a transaction whose loss in a database crash costs
        nothing (a heartbeat: the agent sends the next one anyway). PostgreSQL
        then commits without waiting for its WAL flush, so heartbeats do not
        queue behind the disk while packs are being written; the commit is
        still atomic and a crash can only lose the last moments of such
        commits. SQLite in WAL mode with synchronous=NORMAL already commits so.
        """
        session = self._sessions()
        if tenant_id is not None:
            session.info[_TENANT_KEY] = tenant_id
        try:
            if telemetry and self.dialect == "postgresql":
                session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to `revision` (see `upgrade`)."""
        upgrade(self.engine, revision)

    def check_schema(self) -> None:
        """Refuse to run against a database whose schema is not at this code's head."""
        current, head = current_revision(self.engine), head_revision()
        if current != head:
            raise CatalogSchemaError(
                f"catalog schema is at {current or 'nothing'}, this version needs {head}: "
                "run the catalog upgrade"
            )

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations; no alembic.ini needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration this code ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the catalog ships at least one migration"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(target: str | URL | Engine, revision: str = "head") -> None:
    """Migrate the database at `target` to `revision`; a no-op when already there.

    On SQLite, foreign keys are off while migrating (Alembic rebuilds tables
    to alter them, and a rebuild must not cascade) and checked afterwards.
    On PostgreSQL an advisory lock makes concurrent starts migrate once.
    """
    _run_migration(target, lambda config: command.upgrade(config, revision))


def downgrade(target: str | URL | Engine, revision: str) -> None:
    """Migrate the database at `target` back to `revision` (`base` empties it)."""
    _run_migration(target, lambda config: command.downgrade(config, revision))


def _run_migration(target: str | URL | Engine, run: Callable[[Config], None]) -> None:
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
            else:
                connection.execute(
                    text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            connection.commit()
            try:
                config = alembic_config(engine.url)
                config.attributes["connection"] = connection
                run(config)
                connection.commit()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise CatalogSchemaError(f"migration broke foreign keys: {broken[:5]}")
            finally:
                connection.rollback()
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys = ON")
                else:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                connection.commit()
    finally:
        if not isinstance(target, Engine):
            engine.dispose()


def database_now(session: Session) -> datetime:
    """The time by the database's clock, which every node sharing it agrees on.

    PostgreSQL's `clock_timestamp()` is the real time (unlike `now()`, which
    stops at the start of the transaction). A SQLite catalog is a local file,
    so every process using it shares this host's clock.
    """
    if session.get_bind().dialect.name == "postgresql":
        value = session.execute(select(func.clock_timestamp())).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return utcnow()


def one_of(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL as ``column = ANY(:array)``, one parameter.

    A thousand ids in an IN list are a thousand placeholders that SQLAlchemy
    expands and psycopg parses and adapts on every call; an array parameter
    costs one, and the primary key or index still answers it.
    """
    wanted = list(values)
    condition: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        array = ARRAY(column.type)
        condition = column == any_(cast(literal(wanted, array), array))
    else:
        condition = column.in_(wanted)
    return condition
