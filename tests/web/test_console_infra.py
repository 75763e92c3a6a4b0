"""Console: the infrastructure page (nodes, health, history charts, probes)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete

from tests.soc.api.harness import SocApi
from tests.web.harness import CUSTOMER, login
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.soc_models import NodeHealthSample, Probe, ServerNode

HOSTILE = 'bk"<img src=x onerror=alert(1)>'


def _health(free: float, db: float, store: float) -> dict[str, Any]:
    return {
        "cpu": {"count": 2, "load1": 0.42, "load5": 0.3, "load15": 0.2, "load_per_cpu": 0.21},
        "memory": {
            "total_bytes": 8 * 1024**3,
            "available_bytes": 6 * 1024**3,
            "available_percent": 75.0,
        },
        "disks": [
            {
                "role": "data",
                "path": "/srv",
                "total_bytes": 1000,
                "free_bytes": int(free * 10),
                "free_percent": free,
            },
            {
                "role": "spool",
                "path": "/spool",
                "total_bytes": 1000,
                "free_bytes": 900,
                "free_percent": 90.0,
            },
        ],
        "database": {"ok": True, "latency_ms": db},
        "store": {"ok": True, "latency_ms": store},
        "cert": {"path": "/tls/cert.pem", "days_left": 41.6},
        "smart": [{"device": "sda", "status": "passed"}, {"device": "sdb", "status": "failing"}],
        "raid": [{"name": "md0", "level": "raid1", "members": "U_", "degraded": True}],
    }


@pytest.fixture(scope="module")
def nodes(web_api: SocApi) -> dict[str, str]:
    """A gateway reporting now with two hours of samples, a silent node, and three probes."""
    with web_api.catalog.session() as session:
        session.execute(delete(ServerNode))
        session.execute(delete(Probe))
        now = database_now(session)
        gw = ServerNode(
            name="gw-fra-1",
            site="fra",
            roles=["gateway", "web"],
            version="1.4.0",
            last_seen_at=now,
            health=_health(42.0, 3.5, 18.0),
        )
        silent = ServerNode(
            name=HOSTILE,
            site="ams",
            roles=["backup"],
            last_seen_at=now - timedelta(hours=1),
            health={},
        )
        session.add_all([gw, silent])
        session.flush()
        for minutes in range(120, -1, -10):
            free = 60.0 - (120 - minutes) / 10
            session.add(
                NodeHealthSample(
                    node_id=gw.id,
                    at=now - timedelta(minutes=minutes),
                    metrics=_health(free, 2.0 + minutes / 60, 15.0 + minutes / 30),
                )
            )
        session.add_all(
            [
                Probe(
                    name="gw-fra-1 https",
                    kind="http",
                    target="https://gw-fra-1:8443/healthz",
                    entity="gateway:gw-fra-1",
                    last_run_at=now,
                    last_ok=True,
                    last_latency_ms=4.2,
                ),
                Probe(
                    name="gw-ams tcp",
                    kind="tcp",
                    target="gw-ams:8443",
                    entity="gateway:gw-ams",
                    last_run_at=now,
                    last_ok=False,
                    last_error="connection refused <x>",
                ),
            ]
        )
    return {"gw": "gw-fra-1", "silent": HOSTILE}


def _card(html: str, name: str) -> str:
    match = re.search(
        rf'<section class="card node-card[^"]*" id="node-{re.escape(name)}".*?</section>',
        html,
        re.S,
    )
    assert match, name
    return match.group(0)


def test_customers_may_not_see_the_infrastructure(api: SocApi, nodes: dict[str, str]) -> None:
    login(api.client, CUSTOMER)
    page = api.client.get("/console/infrastructure")
    assert page.status_code == 403 and "gw-fra-1" not in page.text


def test_nodes_show_roles_health_and_history_charts(api: SocApi, nodes: dict[str, str]) -> None:
    login(api.client)
    page = api.client.get("/console/infrastructure")
    assert page.status_code == 200
    card = _card(page.text, "gw-fra-1")
    assert '<span class="pill up">up</span>' in card
    assert '<span class="tag">gateway</span>' in card and "site fra" in card and "1.4.0" in card
    assert "0.42" in card and "75 %" in card  # CPU load and memory
    assert "Free disk (data)" in card and "42.0 %" in card and "90.0 %" in card
    assert "18.0 ms" in card and "3.5 ms" in card and "42 days left" in card
    assert "sda: passed" in card and "sdb: failing" in card and "md0 raid1 U_ degraded" in card
    charts = re.findall(r"<svg class=\"chart (\w+)\".*?</svg>", card, re.S)
    assert charts == ["disk", "db", "store"]
    lines = re.findall(r'<polyline class="line" points="([^"]+)"', card)
    assert len(lines) == 3 and all(len(points.split()) == 13 for points in lines)
    assert "Free disk (fullest volume): last 48.0 % free" in card  # the newest sample
    assert "Database round trip (ms)</figcaption>" in card and "1 down" in page.text


def test_a_silent_node_is_down_and_its_name_is_text(api: SocApi, nodes: dict[str, str]) -> None:
    login(api.client)
    page = api.client.get("/console/infrastructure").text
    assert "<img src=x" not in page
    assert "bk&#34;&lt;img src=x onerror=alert(1)&gt;" in page
    card = re.search(r'<section class="card node-card node-down".*?</section>', page, re.S)
    assert card and '<span class="pill down">down</span>' in card.group(0)
    assert "no measurements in this window" in card.group(0)
    assert page.index("node-card node-down") < page.index('id="node-gw-fra-1"')  # down first


def test_probes_show_last_result_latency_and_error(api: SocApi, nodes: dict[str, str]) -> None:
    login(api.client)
    page = api.client.get("/console/infrastructure").text
    failing = re.search(r"<tr id=\"probe-\d+\"><th scope=\"row\">gw-ams tcp.*?</tr>", page, re.S)
    assert (
        failing
        and "failing" in failing.group(0)
        and "connection refused &lt;x&gt;" in failing.group(0)
    )
    ok = re.search(r"<tr id=\"probe-\d+\"><th scope=\"row\">gw-fra-1 https.*?</tr>", page, re.S)
    assert ok and '<span class="pill up">ok</span>' in ok.group(0) and "4.2 ms" in ok.group(0)
    assert page.index("gw-ams tcp") < page.index("gw-fra-1 https")  # failing first


def test_the_chart_window_is_chosen_in_the_url(api: SocApi, nodes: dict[str, str]) -> None:
    login(api.client)
    one_hour = api.client.get("/console/infrastructure?hours=1").text
    lines = re.findall(r'<polyline class="line" points="([^"]+)"', _card(one_hour, "gw-fra-1"))
    # Samples from the last hour only (the one an hour old may just have left the window).
    assert lines and all(len(points.split()) in (6, 7) for points in lines)
    assert 'href="/console/infrastructure?hours=1" aria-current="true"' in one_hour
    bad = api.client.get("/console/infrastructure?hours=9999")
    assert bad.status_code == 400 and "hours" in bad.text
