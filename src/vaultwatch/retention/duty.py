"""Retention as a leased duty: one node of the cluster applies it on a schedule.

Settings (``settings.toml``)::

    [retention]
    interval = 3600      # seconds between runs (default: hourly)
    grace_days = 7       # how long removed objects stay in the vault's trash
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from vaultwatch.retention.run import DEFAULT_GRACE, RunOptions, run_retention
from vaultwatch.server_config import ServerConfigError, ServerSettings
from vaultwatch.soc.duties import Duty, DutyContext

log = logging.getLogger("vaultwatch.retention")

DEFAULT_INTERVAL = 3600.0


@dataclass(frozen=True)
class RetentionSettings:
    """How often retention runs and how long the trash keeps what it removed."""

    interval: float = DEFAULT_INTERVAL
    grace: timedelta = DEFAULT_GRACE

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> RetentionSettings:
        """Read ``[retention]``; a bad value is a clear error at start."""
        table: Any = settings.extra.get("retention", {})
        if not isinstance(table, dict):
            raise ServerConfigError("[retention] in the settings must be a table")
        unknown = sorted(set(table) - {"interval", "grace_days"})
        if unknown:
            raise ServerConfigError(f"[retention] has unknown setting(s) {', '.join(unknown)}")
        interval = table.get("interval", DEFAULT_INTERVAL)
        grace = table.get("grace_days", DEFAULT_GRACE.days)
        for name, value in (("interval", interval), ("grace_days", grace)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ServerConfigError(f"[retention] {name} must be a positive number")
        return cls(float(interval), timedelta(days=float(grace)))


def retention_duty(settings: ServerSettings) -> Duty:
    """The leased duty that applies every vault's retention every ``interval`` seconds.

    A run reads and moves vault objects for minutes on a large fleet, so it
    works in a thread of its own: the duty thread's timers (escalations every
    few seconds) never wait for it. Its catalog writes stay fenced by the
    lease it was started under, and a run still going is not started twice.
    """
    config = RetentionSettings.from_settings(settings)
    running: list[threading.Thread] = []

    def apply(context: DutyContext) -> None:
        try:
            report = run_retention(context.session, RunOptions(grace=config.grace))
        except Exception:
            log.exception("retention run failed")
            return
        removed = sum(v.snapshots_removed for v in report.vaults)
        trashed = sum(v.packs_trashed for v in report.vaults)
        if removed or trashed:
            log.info("retention removed %d snapshots and %d unused packs", removed, trashed)

    def run(context: DutyContext) -> object:
        if running and running[0].is_alive():
            return "still running"
        worker = threading.Thread(target=apply, args=(context,), name="retention", daemon=True)
        running[:] = [worker]
        worker.start()
        return "started"

    return Duty("retention.apply", config.interval, run)
