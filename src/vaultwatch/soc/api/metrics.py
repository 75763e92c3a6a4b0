"""``GET /metrics``: Prometheus metrics, for an operations center key (Prometheus sends it)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from vaultwatch.soc.api.auth import CatalogDep, Staff
from vaultwatch.soc.metrics import render_metrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(principal: Staff, catalog: CatalogDep) -> Response:
    """Alarms by severity, incidents, jobs, heartbeat ages, ingestion and duty leases."""
    return Response(render_metrics(catalog), media_type=CONTENT_TYPE_LATEST)
