"""The alarm list: filtered, sorted, keyset-paginated queries over the live alarms.

Keyset pagination (the cursor holds the last row's sort values) keeps every
page as cheap as the first with 100,000 alarms, where OFFSET would scan all
rows before the page. The sort column and the id always run in the same
direction, so one row-value comparison continues the list.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.orm import Session

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import Alarm, AlarmClass, Severity

_S = TypeVar("_S", bound="Select[*tuple[Any, ...]]")

MAX_PAGE = 500
DEFAULT_PAGE = 100

#: Sort names -> the columns ordered by (before the id).
SORTS: dict[str, tuple[Any, ...]] = {
    "severity": (Alarm.severity, Alarm.last_occurrence),
    "last_occurrence": (Alarm.last_occurrence,),
    "first_occurrence": (Alarm.first_occurrence,),
    "tally": (Alarm.tally,),
    "node": (Alarm.node,),
}
_TIME_SORTS = {"last_occurrence", "first_occurrence"}


@dataclass(frozen=True)
class AlarmFilter:
    """What an operator narrows the list to; empty fields do not filter."""

    min_severity: Severity | None = None
    severities: tuple[Severity, ...] = ()
    alert_group: str | None = None
    node: str | None = None
    tenant_id: uuid.UUID | None = None
    alarm_class: AlarmClass | None = None
    acknowledged: bool | None = None
    owner: str | None = None
    text: str | None = None
    include_cleared: bool = False
    include_symptoms: bool = True
    include_silenced: bool = True


@dataclass(frozen=True)
class AlarmPageResult:
    """One page of alarms and the cursor to the next (None at the end)."""

    items: list[Alarm]
    next_cursor: str | None
    total: int | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def apply_filter(statement: _S, flt: AlarmFilter) -> _S:
    """`statement` narrowed to the alarms `flt` selects."""
    if not flt.include_cleared:
        statement = statement.where(Alarm.cleared_at.is_(None))
    if flt.min_severity is not None:
        statement = statement.where(Alarm.severity >= int(flt.min_severity))
    if flt.severities:
        statement = statement.where(Alarm.severity.in_([int(s) for s in flt.severities]))
    if flt.alert_group:
        if flt.alert_group.endswith("*"):
            prefix = flt.alert_group[:-1]
            statement = statement.where(Alarm.alert_group.like(_like(prefix)[1:], escape="\\"))
        else:
            statement = statement.where(Alarm.alert_group == flt.alert_group)
    if flt.node:
        statement = statement.where(Alarm.node == flt.node)
    if flt.tenant_id is not None:
        statement = statement.where(Alarm.tenant_id == flt.tenant_id)
    if flt.alarm_class is not None:
        statement = statement.where(Alarm.alarm_class == flt.alarm_class)
    if flt.acknowledged is not None:
        statement = statement.where(Alarm.acknowledged.is_(flt.acknowledged))
    if flt.owner:
        statement = statement.where(Alarm.owner == flt.owner)
    if flt.text:
        # lower() LIKE lower() rather than ILIKE: the same match, and PostgreSQL's ILIKE
        # costs twice as much per row (SQLite's ILIKE is this very expression).
        pattern = func.lower(_like(flt.text))
        statement = statement.where(func.lower(Alarm.summary).like(pattern, escape="\\"))
    if not flt.include_symptoms:
        statement = statement.where(Alarm.suppressed_by.is_(None))
    if not flt.include_silenced:
        statement = statement.where(Alarm.silence_id.is_(None))
    return statement


def _encode_cursor(values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str, width: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != width:
            raise ValueError("wrong length")
        columns = SORTS[sort]
        decoded: list[Any] = []
        for column, value in zip((*columns, Alarm.id), values, strict=True):
            name = column.key
            if name in _TIME_SORTS:
                decoded.append(datetime.fromisoformat(value))
            elif name in ("severity", "tally", "id"):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError("not a number")
                decoded.append(value)
            else:
                decoded.append(str(value))
        return decoded
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise ValidationError(f"invalid cursor: {exc}") from None


def list_alarms(
    session: Session,
    flt: AlarmFilter | None = None,
    *,
    sort: str = "-severity",
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
    with_total: bool = False,
) -> AlarmPageResult:
    """One page of alarms matching `flt`, ordered by `sort` (``-`` prefix for descending)."""
    flt = flt or AlarmFilter()
    descending = sort.startswith("-")
    name = sort.removeprefix("-")
    if name not in SORTS:
        raise ValidationError(f"cannot sort by {name!r}: use one of {', '.join(SORTS)}")
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be 1 to {MAX_PAGE}")
    columns = (*SORTS[name], Alarm.id)
    statement = apply_filter(select(Alarm), flt)
    if cursor:
        after = _decode_cursor(cursor, name, len(columns))
        key = tuple_(*columns)
        statement = statement.where(key < tuple_(*after) if descending else key > tuple_(*after))
    order = [c.desc() if descending else c.asc() for c in columns]
    rows = list(session.scalars(statement.order_by(*order).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode_cursor([getattr(last, c.key) for c in columns])
    total = None
    if with_total:
        total = int(session.scalar(apply_filter(select(func.count()).select_from(Alarm), flt)) or 0)
    return AlarmPageResult(rows, next_cursor, total)


def severity_counts(session: Session, flt: AlarmFilter | None = None) -> dict[str, int]:
    """How many alarms of each severity `flt` selects (for the console's counters)."""
    statement = apply_filter(
        select(Alarm.severity, func.count()).select_from(Alarm), flt or AlarmFilter()
    ).group_by(Alarm.severity)
    counts = {s.label: 0 for s in Severity}
    for severity, count in session.execute(statement).all():
        counts[Severity(severity).label] = int(count)
    return counts
