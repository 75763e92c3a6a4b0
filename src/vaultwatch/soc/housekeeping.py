"""Housekeeping: cleared alarms move to the kept history, old history is bounded.

Cleared alarms stay in the live list for a while (operators see what just
recovered), then move to `alarm_history` with their journal still attached.
Agents' heartbeats are kept for `HEARTBEATS_KEPT`. Deleted tenants' data is
purged once their grace period is over (`vaultwatch.soc.tenant_purge`). On PostgreSQL the alarm
table's statistics are refreshed when it has grown or shrunk a lot since the
last time: after a storm the planner must know most alarms are open, or it
sorts them all instead of reading the first page from the open-alarms index
(autovacuum would catch up, but only within minutes).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from vaultwatch.catalog.agents import HEARTBEATS_KEPT, prune_heartbeats
from vaultwatch.catalog.soc_models import Alarm
from vaultwatch.soc import alarms
from vaultwatch.soc.duties import Duty, DutyContext
from vaultwatch.soc.tenant_purge import purge_due_tenants

#: How long a cleared alarm stays in the live list.
CLEARED_KEPT_LIVE = timedelta(hours=1)
#: The alarm table's statistics are refreshed when its size moved by more than this share.
RESTAT_CHANGE = 0.2


def refresh_alarm_statistics(session: Session, last_count: int | None) -> int | None:
    """ANALYZE the alarms on PostgreSQL when their number moved a lot; returns the new count.

    Returns `last_count` unchanged when nothing was done (SQLite plans from
    its indexes alone and needs no statistics for these queries).
    """
    if session.get_bind().dialect.name != "postgresql":
        return last_count
    count = int(session.scalar(select(func.count()).select_from(Alarm)) or 0)
    if last_count is not None and abs(count - last_count) <= RESTAT_CHANGE * max(last_count, 1000):
        return last_count
    session.execute(text("ANALYZE alarms"))
    return count


def housekeeping_duties(
    cleared_for: timedelta = CLEARED_KEPT_LIVE, heartbeats_kept: timedelta = HEARTBEATS_KEPT
) -> list[Duty]:
    """The leased duties: archive alarms, bound heartbeats, keep statistics, purge tenants."""

    def archive(context: DutyContext) -> object:
        with context.session() as session:
            return alarms.housekeep(session, cleared_for=cleared_for, now=context.now(session))

    analyzed: dict[str, int | None] = {"count": None}

    def restat(context: DutyContext) -> object:
        with context.session() as session:
            analyzed["count"] = refresh_alarm_statistics(session, analyzed["count"])
        return analyzed["count"]

    def prune(context: DutyContext) -> object:
        with context.session() as session:
            return prune_heartbeats(session, context.now(session) - heartbeats_kept)

    def purge_tenants(context: DutyContext) -> object:
        return len(purge_due_tenants(context))

    return [
        Duty("alarms.housekeeping", 60.0, archive),
        Duty("tenants.purge", 3600.0, purge_tenants),
        Duty("heartbeats.housekeeping", 300.0, prune),
        Duty("alarms.statistics", 15.0, restat),
    ]
