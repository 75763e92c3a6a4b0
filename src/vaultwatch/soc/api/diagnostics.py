"""``POST /diagnostics``: run the checks for a node, gateway, agent or tenant; attach to an alarm."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, StringConstraints

from vaultwatch.soc.api.auth import CatalogDep, Staff
from vaultwatch.soc.diagnostics import diagnose

router = APIRouter(tags=["diagnostics"])


class DiagnoseIn(BaseModel):
    """What to diagnose, and optionally the alarm whose journal keeps the report."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["node", "gateway", "agent", "tenant"]
    name: Annotated[StrictStr, StringConstraints(min_length=1, max_length=255)]
    alarm_id: StrictInt | None = None


@router.post("/diagnostics", summary="Run diagnostics")
def post_diagnostics(
    body: DiagnoseIn, request: Request, principal: Staff, catalog: CatalogDep
) -> dict[str, Any]:
    """The structured report: each check with its status, detail and latency."""
    report = diagnose(
        catalog,
        request.app.state.settings,
        body.kind,
        body.name,
        alarm_id=body.alarm_id,
        actor=principal.actor,
    )
    return report.to_dict()
