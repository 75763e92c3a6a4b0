"""Housekeeping: cleared alarms move to the kept history, old history is bounded.

Cleared alarms stay in the live list for a while (operators see what just
recovered), then move to `alarm_history` with their journal still attached.
"""

from __future__ import annotations

from datetime import timedelta

from vaultwatch.soc import alarms
from vaultwatch.soc.duties import Duty, DutyContext

#: How long a cleared alarm stays in the live list.
CLEARED_KEPT_LIVE = timedelta(hours=1)


def housekeeping_duties(cleared_for: timedelta = CLEARED_KEPT_LIVE) -> list[Duty]:
    """The leased duty that archives cleared alarms."""

    def archive(context: DutyContext) -> object:
        with context.session() as session:
            return alarms.housekeep(session, cleared_for=cleared_for, now=context.now(session))

    return [Duty("alarms.housekeeping", 60.0, archive)]
