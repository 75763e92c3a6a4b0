"""Everything the console's drill-down shows of one alarm: the alarm, its journal, its root and symptoms."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vaultwatch.catalog.models import User
from vaultwatch.catalog.soc_models import Alarm, AlarmJournalEntry
from vaultwatch.soc.alarms import get_alarm, journal_of
from vaultwatch.soc.correlation import symptoms_of

#: Symptoms listed on the page at most (the count says how many there are).
MAX_SYMPTOMS = 100


@dataclass(frozen=True)
class AlarmDetail:
    """One live alarm with what explains it."""

    alarm: Alarm
    journal: list[AlarmJournalEntry]
    root: Alarm | None
    symptoms: list[Alarm]
    symptom_total: int
    actors: dict[str, str]
    """Journal actors (``user:<id>``) -> the person's email, for people to read."""


def alarm_detail(session: Session, alarm_id: int) -> AlarmDetail:
    """The drill-down of `alarm_id` (AlarmNotFoundError when it is not live)."""
    alarm = get_alarm(session, alarm_id)
    root = session.get(Alarm, alarm.suppressed_by) if alarm.suppressed_by is not None else None
    symptom_ids = symptoms_of(session, alarm_id)
    symptoms = (
        list(
            session.scalars(
                select(Alarm)
                .where(Alarm.id.in_(symptom_ids[:MAX_SYMPTOMS]))
                .order_by(Alarm.severity.desc(), Alarm.id)
            )
        )
        if symptom_ids
        else []
    )
    journal = journal_of(session, alarm_id)
    actors = actor_names(session, [e.actor for e in journal] + [alarm.acknowledged_by or ""])
    return AlarmDetail(alarm, journal, root, symptoms, len(symptom_ids), actors)


def actor_names(session: Session, actors: list[str]) -> dict[str, str]:
    """The email of each ``user:<id>`` actor that is a known user (others are left out)."""
    ids: dict[uuid.UUID, str] = {}
    for actor in actors:
        kind, _, ref = actor.partition(":")
        if kind == "user":
            try:
                ids[uuid.UUID(ref)] = actor
            except ValueError:
                continue
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(list(ids))))
    return {ids[user_id]: email for user_id, email in rows}
