"""Keeping the topology and the endpoint probes in step with what the catalog knows.

Agents sit behind the gateway node that received their latest heartbeat
(`agents.gateway_node`), nodes at their site, and every gateway and web node
is probed at its health endpoint, so an outage becomes a root alarm
(``gateway.down``) that explains its agents' silence. Run as a leased duty.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from vaultwatch.catalog import Agent
from vaultwatch.catalog.soc_models import Probe, ServerNode, TopologyEdge
from vaultwatch.server_config import ServerSettings
from vaultwatch.soc.duties import Duty, DutyContext
from vaultwatch.soc.monitors import MonitorSettings
from vaultwatch.soc.topology import link_agent, sync_nodes

#: Probe timeouts: short, so a dead endpoint is noticed within one probe interval.
PROBE_TIMEOUT_SECONDS = 3.0


def sync_agents(session: Session) -> int:
    """Link every active agent to the gateway that last heard from it; returns edges changed."""
    current: dict[str, set[str]] = {}
    for child, parent in session.execute(
        select(TopologyEdge.child, TopologyEdge.parent).where(TopologyEdge.child.like("agent:%"))
    ):
        current.setdefault(child, set()).add(parent)
    changed = 0
    rows = session.execute(
        select(Agent.id, Agent.gateway_node).where(
            Agent.retired_at.is_(None), Agent.gateway_node.is_not(None)
        )
    )
    for agent_id, gateway in rows:
        if f"gateway:{gateway}" not in current.get(f"agent:{agent_id}", set()):
            changed += link_agent(session, agent_id, str(gateway))
    return changed


def endpoint_probes(session: Session, interval: float) -> int:
    """One HTTP probe of ``/healthz`` per gateway and web node with a URL; returns probes added."""
    existing = {p.name: p for p in session.scalars(select(Probe))}
    added = 0
    for node in session.scalars(select(ServerNode).where(ServerNode.url.is_not(None))):
        assert node.url is not None
        # A web endpoint that stops answering means its node is down (node.down, the root
        # above the node's gateway); a gateway endpoint alone means the gateway is down.
        for role, entity in (("gateway", f"gateway:{node.name}"), ("web", f"node:{node.name}")):
            if role not in (node.roles or []):
                continue
            name = f"{role}:{node.name}"
            target = node.url.rstrip("/") + "/healthz"
            probe = existing.get(name)
            if probe is None:
                session.add(
                    Probe(
                        name=name,
                        kind="http",
                        target=target,
                        entity=entity,
                        interval_seconds=max(1, int(interval)),
                        timeout_seconds=PROBE_TIMEOUT_SECONDS,
                    )
                )
                added += 1
            elif probe.target != target:
                probe.target = target
    return added


def sync_topology(session: Session, *, interval: float) -> int:
    """Nodes at their sites, agents behind their gateways, endpoints probed; changes made."""
    return sync_nodes(session) + sync_agents(session) + endpoint_probes(session, interval)


def topology_duty(settings: ServerSettings) -> Duty:
    """The leased duty that keeps the topology and the endpoint probes current."""
    config = MonitorSettings.from_settings(settings)

    def run(context: DutyContext) -> object:
        with context.session() as session:
            return sync_topology(session, interval=config.probe_interval)

    return Duty("topology.sync", min(30.0, config.probe_interval), run)
