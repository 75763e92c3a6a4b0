"""Prometheus metrics of the agent, served on a loopback port when enabled.

Own registry (not the global one) so several agents in one test process, or
a library user, never collide on metric names.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Info, start_http_server

from vaultwatch import __version__
from vaultwatch.job_states import JobState

#: What the agent is doing: nothing, the running job's state, or blocked by a permanent failure.
STATES = ["idle", JobState.RUNNING.value, JobState.WAITING_FOR_NETWORK.value, "blocked"]


class AgentMetrics:
    """The agent's metrics; update methods are thread-safe (prometheus_client locks)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Info("vaultwatch_agent", "Agent version", registry=r).info({"version": __version__})
        self.state = Enum(
            "vaultwatch_agent_state", "What the agent is doing", states=STATES, registry=r
        )
        self.state.state("idle")
        self.last_backup = Gauge(
            "vaultwatch_agent_last_backup_timestamp_seconds",
            "When the set's last backup job ended (any outcome)",
            ["backup_set"],
            registry=r,
        )
        self.last_success = Gauge(
            "vaultwatch_agent_last_success_timestamp_seconds",
            "When the set's last snapshot was committed",
            ["backup_set"],
            registry=r,
        )
        self.last_ok = Gauge(
            "vaultwatch_agent_last_backup_success",
            "1 when the set's last job committed a snapshot, else 0",
            ["backup_set"],
            registry=r,
        )
        self.jobs = Counter(
            "vaultwatch_agent_jobs", "Jobs ended, by outcome", ["backup_set", "result"], registry=r
        )
        self.uploaded_bytes = Counter(
            "vaultwatch_agent_uploaded_bytes", "Pack bytes sent to the vault", registry=r
        )
        self.uploaded_packs = Counter(
            "vaultwatch_agent_uploaded_packs", "Packs sent to the vault", registry=r
        )
        self.job_bytes_done = Gauge(
            "vaultwatch_agent_job_bytes_done", "Bytes processed by the running job", registry=r
        )
        self.job_bytes_total = Gauge(
            "vaultwatch_agent_job_bytes_total", "Bytes the running job has to process", registry=r
        )
        self.gateway_up = Gauge(
            "vaultwatch_agent_gateway_up", "1 when the gateway answered", ["url"], registry=r
        )
        self.last_heartbeat = Gauge(
            "vaultwatch_agent_last_heartbeat_timestamp_seconds",
            "When the server last acknowledged a heartbeat",
            registry=r,
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def serve(self, address: str, port: int) -> None:
        """Start the /metrics HTTP endpoint in a daemon thread."""
        server, thread = start_http_server(port, addr=address, registry=self.registry)
        self._server, self._thread = server, thread

    def close(self) -> None:
        """Stop the endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
