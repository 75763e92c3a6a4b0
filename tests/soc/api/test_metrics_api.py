"""``/api/v1/metrics``: what Prometheus scrapes, read from the catalog."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.soc.api.harness import SocApi


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_count_alarms_by_severity_and_ingested_events(api: SocApi) -> None:
    h = api.as_(api.operator_key)
    before = _samples(api.client.get("/api/v1/metrics", headers=h).text)
    ingested_key = ("vaultwatch_events_ingested_total", (("source", "api"),))
    events = [
        {"node": f"n{i}", "alert_group": "node.disk", "summary": "disk", "severity": s}
        for i, s in enumerate(["critical", "critical", "major", "warning"])
    ]
    api.client.post("/api/v1/events/batch", json={"events": events}, headers=h)
    answer = api.client.get("/api/v1/metrics", headers=h)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = _samples(answer.text)
    assert samples[("vaultwatch_alarms_open", (("severity", "critical"),))] == 2
    assert samples[("vaultwatch_alarms_open", (("severity", "major"),))] == 1
    assert samples[("vaultwatch_alarms_open", (("severity", "minor"),))] == 0
    assert samples[("vaultwatch_alarms_unacknowledged", ())] == 4
    assert samples[ingested_key] - before.get(ingested_key, 0) == 4
    assert ("vaultwatch_incidents", (("state", "triggered"),)) in samples
    assert ("vaultwatch_jobs_active", (("state", "running"),)) in samples
    assert samples[("vaultwatch_agents", ())] == 0


def test_metrics_need_an_operations_center_key(api: SocApi) -> None:
    assert api.client.get("/api/v1/metrics").status_code == 401
    assert api.client.get("/api/v1/metrics", headers=api.as_(api.customer_key)).status_code == 403
