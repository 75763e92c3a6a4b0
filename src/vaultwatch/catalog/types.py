"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no time zones and no JSONB, so these types hide the differences:
every timestamp goes in and comes out as an aware UTC datetime, and JSON
documents use JSONB on PostgreSQL (indexable, compact) and JSON text on SQLite.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.types import TypeDecorator, TypeEngine

E = TypeVar("E", bound=enum.StrEnum)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the only kind the catalog stores)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every engine.

    Naive datetimes are refused rather than guessed at: a naive value is almost
    always a bug (local time sneaking in) and would silently shift by hours.
    SQLite stores the UTC wall time as text in a fixed format, so comparisons
    in SQL stay chronological.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the catalog stores aware UTC times only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class EnumText(TypeDecorator[E], Generic[E]):
    """A `StrEnum` stored as plain text (plus a CHECK constraint declared on the table).

    Native PostgreSQL enum types need special migrations to gain a value; text
    with a CHECK constraint changes with an ordinary batch migration on both engines.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[E]) -> None:
        self.enum_class = enum_class
        self.length = max(len(member.value) for member in enum_class)
        super().__init__(length=self.length)

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_class(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        return self.enum_class(value)


def check_in(column: str, enum_class: type[enum.StrEnum]) -> str:
    """The SQL text of a CHECK constraint that limits `column` to the enum's values."""
    values = ", ".join(f"'{member.value}'" for member in enum_class)
    return f"{column} IN ({values})"


def _json_document() -> TypeEngine[Any]:
    return JSON().with_variant(JSONB(), "postgresql")


#: JSON objects and lists: JSONB on PostgreSQL, JSON text elsewhere. In-place
#: changes at the top level (`job.errors.append(...)`, `facts["os"] = ...`) are
#: tracked and saved; changes deeper inside need the value assigned again.
JSONObject: TypeEngine[Any] = MutableDict.as_mutable(_json_document())
JSONList: TypeEngine[Any] = MutableList.as_mutable(_json_document())

#: 64-bit ids for append-heavy journals; SQLite needs plain INTEGER to autoincrement.
BigIntId: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
