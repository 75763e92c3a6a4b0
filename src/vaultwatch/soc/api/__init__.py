"""The SOC and portal HTTP API under ``/api/v1``: one router per area, gathered here."""

from __future__ import annotations

from fastapi import APIRouter

from vaultwatch.protocol import API_PREFIX
from vaultwatch.soc.api import (
    alarms,
    cases,
    diagnostics,
    events,
    incidents,
    ingest_alertmanager,
    lifecycle,
    metrics,
    retention,
    session,
    silences,
    status,
)

router = APIRouter(prefix=API_PREFIX)
router.include_router(session.router)
router.include_router(events.router)
router.include_router(alarms.router)
router.include_router(metrics.router)
router.include_router(diagnostics.router)
router.include_router(ingest_alertmanager.router)
router.include_router(status.router)
router.include_router(silences.router)
router.include_router(incidents.router)
router.include_router(cases.router)
router.include_router(lifecycle.router)
router.include_router(retention.router)
