"""Console page of the service's own machines: server nodes, their health with history, and probes.

Every node (gateway, backup server, web server) shows its roles, site,
version and whether it reported recently, the latest health it measured
(CPU, memory, free disk of data and spool, store and database round trip,
certificate, SMART and RAID where present) and inline SVG charts of the
last hours from its health samples (`vaultwatch.soc.infrastructure`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from vaultwatch.soc import status
from vaultwatch.soc.api.auth import catalog_of, scoped_session
from vaultwatch.soc.infrastructure import NodeHistory, list_probes, node_history
from vaultwatch.soc.monitors import MonitorSettings
from vaultwatch.web.charts import line_chart
from vaultwatch.web.render import render
from vaultwatch.web.sessions import Staff

router = APIRouter(prefix="/console", include_in_schema=False)

WINDOWS = (1, 6, 24, 72)
CAPTIONS = ("Free disk, fullest volume (%)", "Database round trip (ms)", "Store round trip (ms)")
#: A certificate closer to expiry than the node monitor's warning is marked on the page.
CERT_WARN_DAYS = MonitorSettings().node_cert_warn_days


def node_charts(history: NodeHistory) -> list[tuple[str, Markup]]:
    """The three charts of a node with their captions: free disk, database and store latency."""
    since, until = history.since, history.until
    charts = [
        line_chart(
            history.free_disk_percent,
            title="Free disk (fullest volume)",
            unit="% free",
            ceiling=100.0,
            css_class="disk",
            since=since,
            until=until,
        ),
        line_chart(
            history.db_latency_ms,
            title="Database round trip",
            unit="ms",
            css_class="db",
            since=since,
            until=until,
        ),
        line_chart(
            history.store_latency_ms,
            title="Store round trip",
            unit="ms",
            css_class="store",
            since=since,
            until=until,
        ),
    ]
    return list(zip(CAPTIONS, charts, strict=True))


@router.get("/infrastructure")
def infrastructure_page(
    request: Request,
    principal: Staff,
    hours: Annotated[int, Query(ge=1, le=168)] = 6,
) -> Response:
    """Gateways, backup servers and web servers with their health and history; endpoint probes."""
    window = timedelta(hours=hours)
    nodes: list[dict[str, Any]] = []
    with scoped_session(catalog_of(request), principal) as session:
        # Down nodes first: they are what an operator opens this page for.
        for node in sorted(status.list_nodes(session), key=lambda n: n.up):
            history = node_history(session, node.id, window=window)
            nodes.append({"node": node, "charts": node_charts(history), "history": history})
        probes = list_probes(session)
    return render(
        request,
        "console_infra.html",
        {
            "nodes": nodes,
            "probes": probes,
            "hours": hours,
            "windows": WINDOWS,
            "cert_warn_days": CERT_WARN_DAYS,
            "down": sum(1 for n in nodes if not n["node"].up),
        },
    )
