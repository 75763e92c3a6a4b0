"""Silences and maintenance windows: mute matching alarms for a bounded time.

A silence matches alarms by matchers on their fields (``=``, ``!=``, ``=~``
full-match regex) and lasts from `starts_at` to `ends_at` (at most
`MAX_SILENCE`). A maintenance window is a silence too: one-off, or recurring
by a cron expression (5 fields, UTC) with a duration per occurrence, valid
between `starts_at` and `ends_at`. A muted alarm carries the silence's id in
``silence_id``; it stays visible and is still deduplicated, it just pages no
one. The pipeline mutes new alarms as they arrive; `silence_tick` (a duty)
mutes alarms when a silence starts, un-mutes them when it ends, and raises a
``silence.expiring`` reminder once, `REMIND_BEFORE` the end. Creating and
cancelling are audited with the actor.

The silence table is read through the core table: silences are service-wide,
and an event raised in a tenant's session must still be muted by them.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from vaultwatch.catalog.audit import record
from vaultwatch.catalog.db import database_now, session_tenant
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.soc_models import (
    Alarm,
    AlarmClass,
    EventSource,
    EventType,
    Severity,
    Silence,
)
from vaultwatch.soc.alarms import RaisedAlarm, raise_events
from vaultwatch.soc.events import Event, clean_text

if TYPE_CHECKING:
    from vaultwatch.soc.duties import Duty, DutyContext

FIELDS = (
    "node",
    "entity",
    "alert_group",
    "alert_key",
    "tenant_id",
    "severity",
    "alarm_class",
    "source",
)
OPS = ("=", "!=", "=~")
KINDS = ("silence", "maintenance")
MAX_MATCHERS = 20
MAX_VALUE = 256
MAX_COMMENT = 1000
MAX_SILENCE = timedelta(days=30)
MAX_WINDOW_SPAN = timedelta(days=366)
MIN_OCCURRENCE = timedelta(minutes=1)
MAX_OCCURRENCE = timedelta(hours=24)
REMIND_BEFORE = timedelta(minutes=15)
REMINDER_GROUP = "silence.expiring"

_SILENCES = cast(Table, Silence.__table__)
_ALARMS = cast(Table, Alarm.__table__)
_s = _SILENCES.c
_a = _ALARMS.c
#: A quantified group that itself holds a quantifier, e.g. ``(a+)+``: exponential backtracking.
_NESTED_REPEAT = re.compile(r"\((?:[^()\\]|\\.)*(?:[+*]|\{\d*,?\d*\})(?:[^()\\]|\\.)*\)(?:[+*]|\{)")


class SilenceNotFoundError(CatalogError):
    """No silence has this id."""

    http_status = 404


class SilenceStateError(CatalogError):
    """The silence is already cancelled or over."""

    http_status = 409


# -- cron ----------------------------------------------------------------------------------

_CRON_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _cron_field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else (1 if not step_text else 0)
        if step <= 0:
            raise ValueError(f"bad step in {part!r}")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            if not (first.isdigit() and last.isdigit()):
                raise ValueError(f"bad range {body!r}")
            start, end = int(first), int(last)
        elif body.isdigit():
            start = int(body)
            end = high if step_text else start
        else:
            raise ValueError(f"bad value {body!r}")
        if not (low <= start <= end <= high):
            raise ValueError(f"{body!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed 5-field cron expression (minute hour day-of-month month day-of-week), in UTC."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse numbers, ``*``, ranges ``a-b``, steps ``/n`` and lists; ValidationError otherwise."""
        parts = expression.split()
        if len(parts) != 5:
            raise ValidationError(
                f"recurrence {expression!r}: a cron expression has 5 fields "
                "(minute hour day-of-month month day-of-week), e.g. '0 2 * * 0'"
            )
        try:
            sets = [_cron_field(p, lo, hi) for p, (lo, hi) in zip(parts, _CRON_FIELDS, strict=True)]
        except ValueError as exc:
            raise ValidationError(f"recurrence {expression!r}: {exc}") from None
        weekdays = frozenset(d % 7 for d in sets[4])  # 0 and 7 are both Sunday
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*")

    def matches(self, at: datetime) -> bool:
        """Whether the minute `at` (UTC) is a firing time."""
        at = at.astimezone(UTC)
        if at.minute not in self.minutes or at.hour not in self.hours:
            return False
        if at.month not in self.months:
            return False
        day_ok = at.day in self.days
        weekday_ok = (at.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok  # both restricted: either matches (as cron does)

    def last_fire(self, at: datetime, within: timedelta) -> datetime | None:
        """The latest firing minute in ``(at - within, at]``, or None."""
        minute = at.astimezone(UTC).replace(second=0, microsecond=0)
        earliest = at - within
        while minute > earliest:
            if self.matches(minute):
                return minute
            minute -= timedelta(minutes=1)
        return None


_occurrences: OrderedDict[tuple[str, int, datetime], datetime | None] = OrderedDict()


def _occurrence_start(recurrence: str, duration: int, at: datetime) -> datetime | None:
    """When the window's current occurrence started (None: not in one); cached per minute."""
    key = (recurrence, duration, at.replace(second=0, microsecond=0))
    if key in _occurrences:
        return _occurrences[key]
    start = Cron.parse(recurrence).last_fire(at, timedelta(seconds=duration))
    _occurrences[key] = start
    if len(_occurrences) > 1024:
        _occurrences.popitem(last=False)
    return start


# -- matchers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matcher:
    """One condition on an alarm field."""

    field: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether the alarm's `fields` satisfy this condition."""
        actual = fields.get(self.field, "")
        if self.op == "=~":
            assert self.pattern is not None
            return self.pattern.fullmatch(actual) is not None
        return (actual == self.value) == (self.op == "=")

    def to_dict(self) -> dict[str, str]:
        """The stored form."""
        return {"field": self.field, "op": self.op, "value": self.value}


def _normal_value(name: str, value: str) -> str:
    try:
        if name == "severity":
            return Severity.parse(value).label
        if name == "alarm_class":
            return AlarmClass(value.strip().lower()).value
        if name == "source":
            return EventSource(value.strip().lower()).value
        if name == "tenant_id":
            return str(uuid.UUID(value.strip()))
    except ValueError as exc:
        raise ValidationError(f"matcher on {name}: {exc}") from None
    return value


def _compile(value: str) -> re.Pattern[str]:
    if _NESTED_REPEAT.search(value):
        raise ValidationError(
            f"regex {value!r} repeats a repeated group (like (a+)+): refused, it can run for ever"
        )
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValidationError(f"regex {value!r} does not compile: {exc}") from None


def parse_matchers(raw: Iterable[Mapping[str, Any]]) -> list[Matcher]:
    """Validated matchers; at least one must select something (not ``!=``, not matching '')."""
    matchers: list[Matcher] = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise ValidationError("a matcher is {field, op, value}")
        name, op, value = item.get("field"), item.get("op", "="), item.get("value")
        if name not in FIELDS:
            raise ValidationError(f"matcher field {name!r}: use one of {', '.join(FIELDS)}")
        if op not in OPS:
            raise ValidationError(f"matcher op {op!r}: use one of {', '.join(OPS)}")
        if not isinstance(value, str) or len(value) > MAX_VALUE or not value.isprintable():
            raise ValidationError(f"matcher value must be printable text of at most {MAX_VALUE}")
        if op == "=~":
            matchers.append(Matcher(name, op, value, _compile(value)))
        else:
            matchers.append(Matcher(name, op, _normal_value(name, value)))
    if not matchers or len(matchers) > MAX_MATCHERS:
        raise ValidationError(f"a silence needs 1 to {MAX_MATCHERS} matchers")
    if not any(m.op != "!=" and not m.matches({}) for m in matchers):
        raise ValidationError(
            "a silence needs a matcher that selects something (= or =~ not matching '')"
        )
    return matchers


def _alarm_fields(row: Any) -> dict[str, str]:
    return {
        "node": row.node,
        "entity": row.entity,
        "alert_group": row.alert_group,
        "alert_key": row.alert_key or "",
        "tenant_id": str(row.tenant_id) if row.tenant_id is not None else "",
        "severity": Severity(row.severity).label,
        "alarm_class": str(
            row.alarm_class.value if hasattr(row.alarm_class, "value") else row.alarm_class
        ),
        "source": str(row.source.value if hasattr(row.source, "value") else row.source),
    }


_ALARM_COLUMNS = (
    _a.id,
    _a.node,
    _a.entity,
    _a.alert_group,
    _a.alert_key,
    _a.tenant_id,
    _a.severity,
    _a.alarm_class,
    _a.source,
    _a.silence_id,
)


@dataclass(frozen=True)
class ActiveSilence:
    """A silence in force now, with its matchers compiled."""

    id: int
    tenant_id: uuid.UUID | None
    matchers: tuple[Matcher, ...]

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether an alarm with `fields` is muted by this silence."""
        if self.tenant_id is not None and fields.get("tenant_id") != str(self.tenant_id):
            return False
        return all(m.matches(fields) for m in self.matchers)

    def prefilter(self) -> list[Any]:
        """SQL conditions for the equality matchers, so a scan reads only likely alarms."""
        conditions: list[Any] = [_a.cleared_at.is_(None)]
        if self.tenant_id is not None:
            conditions.append(_a.tenant_id == self.tenant_id)
        for m in self.matchers:
            if m.op != "=":
                continue
            if m.field == "severity":
                conditions.append(_a.severity == int(Severity.parse(m.value)))
            elif m.field == "tenant_id":
                conditions.append(_a.tenant_id == uuid.UUID(m.value))
            elif m.field == "alert_key":
                conditions.append(func.coalesce(_a.alert_key, "") == m.value)
            else:
                conditions.append(_a[m.field] == m.value)
        return conditions


# -- state ---------------------------------------------------------------------------------


def is_active(silence: Any, now: datetime) -> bool:
    """Whether `silence` (a row or ORM object) mutes alarms at `now`."""
    if silence.cancelled_at is not None or not (silence.starts_at <= now < silence.ends_at):
        return False
    if silence.recurrence is None:
        return True
    return _occurrence_start(silence.recurrence, silence.duration_seconds, now) is not None


def state_of(silence: Silence, now: datetime) -> str:
    """``cancelled``, ``expired``, ``pending`` (not started, or between occurrences) or ``active``."""
    if silence.cancelled_at is not None:
        return "cancelled"
    if now >= silence.ends_at:
        return "expired"
    return "active" if is_active(silence, now) else "pending"


def active_silences(session: Session, now: datetime) -> list[ActiveSilence]:
    """Every silence in force at `now`, lowest id first (one indexed query)."""
    rows = session.execute(
        select(_SILENCES)
        .where(_s.cancelled_at.is_(None), _s.starts_at <= now, _s.ends_at > now)
        .order_by(_s.id)
    ).all()
    return [
        ActiveSilence(row.id, row.tenant_id, tuple(parse_matchers(row.matchers)))
        for row in rows
        if is_active(row, now)
    ]


def _choose(active: Sequence[ActiveSilence], fields: Mapping[str, str]) -> int | None:
    return next((s.id for s in active if s.matches(fields)), None)


def _set_silence(session: Session, changes: Mapping[int, int | None]) -> None:
    by_target: dict[int | None, list[int]] = {}
    for alarm_id, target in changes.items():
        by_target.setdefault(target, []).append(alarm_id)
    for target, ids in by_target.items():
        session.execute(update(_ALARMS).where(_a.id.in_(sorted(ids))).values(silence_id=target))


def _reevaluate(
    session: Session, rows: Sequence[Any], active: Sequence[ActiveSilence]
) -> dict[int, int | None]:
    changes = {}
    for row in rows:
        target = _choose(active, _alarm_fields(row))
        if target != row.silence_id:
            changes[row.id] = target
    _set_silence(session, changes)
    return changes


def apply_silences(
    session: Session, raised: Sequence[RaisedAlarm], now: datetime
) -> dict[int, int | None]:
    """Mute (or un-mute) the open alarms of a batch; returns alarm id -> silence id that changed.

    Returns at once when no silence is in force (one indexed query).
    """
    if not raised:
        return {}
    active = active_silences(session, now)
    if not active:
        return {}
    ids = sorted({r.id for r in raised if not r.cleared})
    if not ids:
        return {}
    rows = session.execute(
        select(*_ALARM_COLUMNS).where(_a.id.in_(ids), _a.cleared_at.is_(None))
    ).all()
    return _reevaluate(session, rows, active)


def _apply_one(session: Session, silence: ActiveSilence) -> int:
    rows = session.execute(
        select(*_ALARM_COLUMNS).where(_a.silence_id.is_(None), *silence.prefilter())
    ).all()
    ids = [row.id for row in rows if silence.matches(_alarm_fields(row))]
    _set_silence(session, {alarm_id: silence.id for alarm_id in ids})
    return len(ids)


# -- create, cancel, list ------------------------------------------------------------------


def _aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must be a date and time with a time zone")
    return value.astimezone(UTC)


def create_silence(
    session: Session,
    *,
    actor: str,
    comment: str,
    matchers: Iterable[Mapping[str, Any]],
    starts_at: datetime,
    ends_at: datetime,
    kind: str = "silence",
    recurrence: str | None = None,
    duration_seconds: int | None = None,
    tenant_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Silence:
    """Create a silence or maintenance window, audit it, and mute matching open alarms now."""
    now = now or database_now(session)
    parsed = parse_matchers(matchers)
    starts_at, ends_at = _aware("starts_at", starts_at), _aware("ends_at", ends_at)
    text = clean_text(comment or "", MAX_COMMENT)
    if not text:
        raise ValidationError("a silence needs a comment saying why")
    if kind not in KINDS:
        raise ValidationError(f"kind must be one of {', '.join(KINDS)}")
    if ends_at <= starts_at:
        raise ValidationError("ends_at must be after starts_at")
    if ends_at <= now:
        raise ValidationError("ends_at is in the past: the silence would never apply")
    if (recurrence is None) != (duration_seconds is None):
        raise ValidationError("a recurring window needs both recurrence and duration_seconds")
    if recurrence is not None and duration_seconds is not None:
        if kind != "maintenance":
            raise ValidationError("only a maintenance window recurs")
        Cron.parse(recurrence)
        duration = timedelta(seconds=duration_seconds)
        if not MIN_OCCURRENCE <= duration <= MAX_OCCURRENCE:
            raise ValidationError("an occurrence lasts from 1 minute to 24 hours")
        if ends_at - starts_at > MAX_WINDOW_SPAN:
            raise ValidationError("a recurring window is valid for at most 366 days")
    elif ends_at - starts_at > MAX_SILENCE:
        raise ValidationError(f"a silence lasts at most {MAX_SILENCE.days} days")
    scope = session_tenant(session)
    if scope is not None and tenant_id not in (None, scope):
        raise ValidationError("a silence names another tenant")
    silence = Silence(
        tenant_id=tenant_id or scope,
        kind=kind,
        matchers=[m.to_dict() for m in parsed],
        comment=text,
        created_by=actor,
        created_at=now,
        starts_at=starts_at,
        ends_at=ends_at,
        recurrence=" ".join(recurrence.split()) if recurrence else None,
        duration_seconds=duration_seconds,
    )
    session.add(silence)
    session.flush()
    record(
        session,
        actor,
        f"{kind}.create",
        silence.tenant_id,
        f"silence:{silence.id}",
        {
            "matchers": silence.matchers,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
            "recurrence": silence.recurrence,
        },
        at=now,
    )
    if is_active(silence, now):
        _apply_one(session, ActiveSilence(silence.id, silence.tenant_id, tuple(parsed)))
    return silence


def get_silence(session: Session, silence_id: int) -> Silence:
    """The silence `silence_id` (a tenant's session sees only its own)."""
    silence = session.get(Silence, silence_id)
    if silence is None:
        raise SilenceNotFoundError(f"no silence {silence_id}")
    return silence


def cancel_silence(
    session: Session, silence_id: int, actor: str, *, now: datetime | None = None
) -> Silence:
    """End a silence now, audited; the alarms it muted are re-evaluated against the others."""
    now = now or database_now(session)
    silence = get_silence(session, silence_id)
    if silence.cancelled_at is not None:
        raise SilenceStateError(f"silence {silence_id} is already cancelled")
    if silence.ends_at <= now:
        raise SilenceStateError(f"silence {silence_id} is already over")
    silence.cancelled_at = now
    session.flush()
    record(
        session, actor, f"{silence.kind}.cancel", silence.tenant_id, f"silence:{silence.id}", at=now
    )
    rows = session.execute(select(*_ALARM_COLUMNS).where(_a.silence_id == silence_id)).all()
    _reevaluate(session, rows, active_silences(session, now))
    return silence


def list_silences(
    session: Session,
    *,
    now: datetime | None = None,
    include_ended: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[Silence]:
    """Silences newest first; without `include_ended`, only those not cancelled or over."""
    stmt = select(Silence).order_by(Silence.id.desc()).limit(limit).offset(offset)
    if not include_ended:
        now = now or database_now(session)
        stmt = stmt.where(Silence.cancelled_at.is_(None), Silence.ends_at > now)
    return list(session.scalars(stmt))


def muted_count(session: Session, silence_id: int) -> int:
    """How many open alarms the silence mutes now."""
    stmt = (
        select(func.count())
        .select_from(_ALARMS)
        .where(_a.silence_id == silence_id, _a.cleared_at.is_(None))
    )
    return int(session.execute(stmt).scalar_one())


# -- the duty ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TickResult:
    """What one pass of the silence duty changed."""

    muted: int
    unmuted: int
    reminded: list[int]


def _remind(session: Session, now: datetime) -> list[int]:
    due = session.execute(
        select(_s.id, _s.tenant_id, _s.ends_at, _s.comment).where(
            _s.cancelled_at.is_(None),
            _s.reminded_at.is_(None),
            _s.starts_at <= now,
            _s.ends_at > now,
            _s.ends_at <= now + REMIND_BEFORE,
        )
    ).all()
    events = [
        Event(
            node="soc",
            alert_group=REMINDER_GROUP,
            alert_key=str(row.id),
            entity=f"silence:{row.id}",
            severity=Severity.INDETERMINATE,
            source=EventSource.INTERNAL,
            summary=f"silence {row.id} ends at {row.ends_at:%Y-%m-%d %H:%M} UTC: {row.comment}",
            tenant_id=row.tenant_id,
            occurrence_key=f"silence:{row.id}:reminder",
        )
        for row in due
    ]
    if not events:
        return []
    raise_events(session, events, now=now)
    ids = [row.id for row in due]
    session.execute(update(_SILENCES).where(_s.id.in_(ids)).values(reminded_at=now))
    return ids


def _clear_reminders(session: Session, active_ids: set[int], now: datetime) -> None:
    rows = session.execute(
        select(_a.alert_key, _a.tenant_id).where(
            _a.alert_group == REMINDER_GROUP, _a.cleared_at.is_(None)
        )
    ).all()
    ended = [r for r in rows if r.alert_key.isdigit() and int(r.alert_key) not in active_ids]
    pending = set(
        session.scalars(
            select(_s.id).where(
                _s.id.in_([int(r.alert_key) for r in ended]),
                _s.cancelled_at.is_(None),
                _s.ends_at > now,
            )
        )
    )
    events = [
        Event(
            node="soc",
            alert_group=REMINDER_GROUP,
            alert_key=r.alert_key,
            entity=f"silence:{r.alert_key}",
            type=EventType.RESOLUTION,
            severity=Severity.CLEAR,
            source=EventSource.INTERNAL,
            summary=f"silence {r.alert_key} has ended",
            tenant_id=r.tenant_id,
        )
        for r in ended
        if int(r.alert_key) not in pending
    ]
    if events:
        raise_events(session, events, now=now)


def silence_tick(session: Session, *, now: datetime | None = None) -> TickResult:
    """One pass of the silence duty: start, end, remind. Run every few seconds under a lease."""
    now = now or database_now(session)
    active = active_silences(session, now)
    active_ids = {s.id for s in active}
    stale = session.execute(
        select(*_ALARM_COLUMNS).where(
            _a.silence_id.is_not(None),
            _a.silence_id.not_in(sorted(active_ids)),
            _a.cleared_at.is_(None),
        )
    ).all()
    changes = _reevaluate(session, stale, active)
    unmuted = sum(1 for target in changes.values() if target is None)
    muted = sum(_apply_one(session, silence) for silence in active)
    reminded = _remind(session, now)
    _clear_reminders(session, active_ids, now)
    return TickResult(muted=muted + len(changes) - unmuted, unmuted=unmuted, reminded=reminded)


def silence_duties() -> list[Duty]:
    """The leased duty that starts and ends silences and windows and sends their reminders."""
    from vaultwatch.soc.duties import Duty as DutyType  # the runner imports the pipeline

    def tick(context: DutyContext) -> object:
        with context.session() as session:
            return silence_tick(session, now=context.now(session))

    return [DutyType("silences.tick", 5.0, tick)]
