"""The alarm change feed behind the console's live list: which alarms changed since a mark.

An alarm changes when its state changes (raised, re-opened, cleared), when
it occurs again, and when someone acts on it (every action writes its
journal). The feed polls for those with a time high-water mark. A
transaction that started before a poll may commit after it with earlier
timestamps, so each poll looks back `OVERLAP` before the mark and drops what
it already sent (by id and version): nothing is missed and little is sent
twice. A client that reconnects with its last mark gets every change since
(repeats are harmless: a row is replaced by its newer self). When more
changed than one poll sends (a storm, or the overlap after one), a client
showing one page of alarms is better sent that page afresh than thousands
of changes it will never show: `behind` says so, and `skip_to` starts the
feed again from the moment of that page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, tuple_, union
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import Alarm, AlarmJournalEntry
from vaultwatch.soc.alarm_list import AlarmFilter, apply_filter

#: How far each poll looks back before the mark, for transactions still committing.
OVERLAP = timedelta(seconds=5)
#: Changes returned by one poll at most (the rest come with the next).
MAX_CHANGES = 500


@dataclass(frozen=True)
class AlarmChange:
    """One changed alarm, whether it matches the client's filter, and when it changed."""

    alarm: Alarm
    changed_at: datetime
    matches: bool

    @property
    def version(self) -> tuple[Any, ...]:
        """What identifies this state of the alarm (a repeat of it is not sent again)."""
        a = self.alarm
        return (self.changed_at, a.tally, a.severity, a.acknowledged, a.owner, a.cleared_at)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def alarm_changes(
    session: Session,
    since: datetime,
    flt: AlarmFilter | None = None,
    *,
    after: tuple[datetime, int] | None = None,
    limit: int = MAX_CHANGES,
) -> list[AlarmChange]:
    """Alarms changed after `since`, oldest change first, each marked as matching `flt` or not.

    `after` (a change time and an alarm id) continues a poll that hit `limit`:
    one batch of events stamps thousands of alarms with the same time, so
    the time alone cannot say where the last page ended. Rows that do not
    match `flt` are returned too: the client removes them from its list (an
    alarm acknowledged under an "unacknowledged" filter leaves it).
    Tenant-scoped sessions see only their tenant's alarms.
    """
    if not 1 <= limit <= MAX_CHANGES:
        raise ValidationError(f"limit must be 1 to {MAX_CHANGES}")
    journal = (
        select(AlarmJournalEntry.alarm_id, func.max(AlarmJournalEntry.at).label("at"))
        .where(AlarmJournalEntry.at > since)
        .group_by(AlarmJournalEntry.alarm_id)
        .subquery()
    )
    occurred = case(
        (Alarm.state_change > Alarm.last_occurrence, Alarm.state_change),
        else_=Alarm.last_occurrence,
    )
    changed = case((func.coalesce(journal.c.at, occurred) > occurred, journal.c.at), else_=occurred)
    # One indexed range scan per way of changing, rather than one OR over every alarm.
    candidates = union(
        select(Alarm.id).where(Alarm.state_change > since),
        select(Alarm.id).where(Alarm.last_occurrence > since),
        select(AlarmJournalEntry.alarm_id).where(AlarmJournalEntry.at > since),
    ).subquery()
    statement = (
        select(Alarm, changed.label("changed"))
        .outerjoin(journal, journal.c.alarm_id == Alarm.id)
        .where(Alarm.id.in_(select(candidates.c[0])))
    )
    if after is not None:
        statement = statement.where(tuple_(changed, Alarm.id) > tuple_(*after))
    rows = session.execute(statement.order_by(changed, Alarm.id).limit(limit)).all()
    if not rows:
        return []
    ids = [row[0].id for row in rows]
    chosen = apply_filter(select(Alarm.id), flt or AlarmFilter()).where(Alarm.id.in_(ids))
    matching = set(session.scalars(chosen))
    return [AlarmChange(alarm, _aware(at), alarm.id in matching) for alarm, at in rows]


@dataclass
class AlarmFeed:
    """One client's position in the feed: the mark, and what was sent in the overlap window."""

    mark: datetime
    flt: AlarmFilter = field(default_factory=AlarmFilter)
    limit: int = MAX_CHANGES
    sent: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    _after: tuple[datetime, int] | None = None
    _backlog: bool = False

    @property
    def behind(self) -> bool:
        """Whether the last poll stopped at its limit with nothing the client had seen.

        A backlog, not a storm the client keeps up with: during a storm most of
        each poll is the overlap window again (already sent, so not fresh).
        """
        return self._backlog

    def skip_to(self, mark: datetime) -> None:
        """Start again from `mark`: the client was sent the whole current state instead."""
        self.mark = _aware(mark)
        self._after = None
        self._backlog = False
        self.sent = {}

    def poll(self, session: Session) -> Sequence[AlarmChange]:
        """The changes since the last poll that were not sent yet; advances the mark."""
        now = _aware(database_now(session))
        since = self.mark - OVERLAP
        changes = alarm_changes(session, since, self.flt, after=self._after, limit=self.limit)
        fresh = [c for c in changes if self.sent.get(c.alarm.id) != c.version]
        self._backlog = len(changes) == self.limit and len(fresh) == len(changes)
        for change in fresh:
            self.sent[change.alarm.id] = change.version
        if changes:
            last = changes[-1]
            # A sender's clock ahead of ours must not push the mark past changes still to come.
            self.mark = max(self.mark, min(last.changed_at, now))
            full = len(changes) == self.limit
            self._after = (last.changed_at, last.alarm.id) if full else None
        else:
            self._after = None
        horizon = self.mark - OVERLAP
        self.sent = {i: v for i, v in self.sent.items() if v[0] >= horizon}
        return fresh


def parse_mark(text: str | None, default: datetime) -> datetime:
    """A mark sent back by a client (``Last-Event-ID``); `default` when absent or unreadable."""
    if not text:
        return default
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return default
    return _aware(value)
