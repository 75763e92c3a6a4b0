"""Refused writes: an agent that tries to delete or replace vault objects raises a major alarm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.gateway.harness import GatewayServer, running_gateway
from tests.gateway.test_vault_api import OBJ, upload
from vaultwatch.catalog.soc_models import Alarm, Severity
from vaultwatch.soc.monitors.security import refused_write_events
from vaultwatch.soc.pipeline import process_events


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path / "data", None, "sqlite") as gw:
        yield gw


def test_refused_deletes_and_overwrites_become_one_alarm_counting_each(
    gateway: GatewayServer,
) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    assert upload(client, "config", b"original").status_code == 201
    assert client.delete(f"{OBJ}/config").status_code == 403
    assert upload(client, "config", b"evil", overwrite="true").status_code == 403
    with gateway.catalog.session() as session:
        events, mark = refused_write_events(session, None)
        process_events(session, events)
    assert len(events) == 2 and mark is not None
    with gateway.catalog.session() as session:
        again, same_mark = refused_write_events(session, mark)
        assert again == [] and same_mark == mark
        process_events(session, events)  # the same entries delivered twice count once
        alarm = session.scalars(
            select(Alarm).where(Alarm.alert_group == "vault.write_refused")
        ).one()
    assert alarm.severity == Severity.MAJOR and alarm.tally == 2
    assert alarm.tenant_id == agent.tenant_id and alarm.entity == f"agent:{agent.agent_id}"
    assert "overwrite object:config" in alarm.summary
