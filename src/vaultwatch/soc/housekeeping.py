"""Housekeeping: cleared alarms move to the kept history, old history is bounded.

Cleared alarms stay in the live list for a while (operators see what just
recovered), then move to `alarm_history` with their journal still attached.
Agents' heartbeats are kept for `HEARTBEATS_KEPT`.
"""

from __future__ import annotations

from datetime import timedelta

from vaultwatch.catalog.agents import HEARTBEATS_KEPT, prune_heartbeats
from vaultwatch.soc import alarms
from vaultwatch.soc.duties import Duty, DutyContext

#: How long a cleared alarm stays in the live list.
CLEARED_KEPT_LIVE = timedelta(hours=1)


def housekeeping_duties(
    cleared_for: timedelta = CLEARED_KEPT_LIVE, heartbeats_kept: timedelta = HEARTBEATS_KEPT
) -> list[Duty]:
    """The leased duties that archive cleared alarms and bound the heartbeat history."""

    def archive(context: DutyContext) -> object:
        with context.session() as session:
            return alarms.housekeep(session, cleared_for=cleared_for, now=context.now(session))

    def prune(context: DutyContext) -> object:
        with context.session() as session:
            return prune_heartbeats(session, context.now(session) - heartbeats_kept)

    return [
        Duty("alarms.housekeeping", 60.0, archive),
        Duty("heartbeats.housekeeping", 300.0, prune),
    ]
