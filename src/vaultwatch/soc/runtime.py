"""The operations center's background work in one server process, started with the app.

Every process runs the duty runner: the duties that must run once in the
cluster wait for its lease, while the node-health report runs everywhere.
Processes with the ``worker`` role also run the syslog, SNMP and support-mail
receivers configured in the settings (``[soc.syslog]``, ``[soc.snmp]``,
``[soc.support_mail]``); their sockets use SO_REUSEPORT where they can, so
several worker processes share a port.

    [soc.syslog]
    host = "0.0.0.0"
    udp_port = 1514                      # "off" opens no UDP socket
    tcp_port = 1514
    rules_file = "syslog-rules.toml"     # relative to the data directory
    max_connections = 1000

    [soc.snmp]
    host = "0.0.0.0"
    port = 1162
    communities = ["public"]
    users = [{ name = "monitor", auth_key = "...", priv_key = "...", engine_ids = ["80001f88..."] }]

    [soc.support_mail]
    host = "0.0.0.0"
    port = 2525
    addresses = ["support@vaultwatch.example"]  # mail for any other address is refused
    require_starttls = true                      # with the server's own TLS certificate
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultwatch.catalog import Catalog
from vaultwatch.errors import VaultwatchError
from vaultwatch.server_config import ServerConfigError, ServerSettings
from vaultwatch.soc.duties import Duty, DutyRunner

log = logging.getLogger("vaultwatch.soc")


@dataclass(frozen=True)
class ReceiverSettings:
    """Which receivers this server runs, from ``[soc.syslog]``, ``[soc.snmp]``, ``[soc.support_mail]``."""

    syslog: dict[str, Any] | None = None
    snmp: dict[str, Any] | None = None
    support_mail: dict[str, Any] | None = None

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> ReceiverSettings:
        """Read the tables; a table that is not a table is a clear error."""
        soc = settings.extra.get("soc", {})
        if not isinstance(soc, dict):
            raise ServerConfigError("[soc] in the settings must be a table")
        found: dict[str, dict[str, Any] | None] = {}
        for name in ("syslog", "snmp", "support_mail"):
            table = soc.get(name)
            if table is not None and not isinstance(table, dict):
                raise ServerConfigError(f"[soc.{name}] in the settings must be a table")
            found[name] = table
        return cls(syslog=found["syslog"], snmp=found["snmp"], support_mail=found["support_mail"])


def _syslog_receiver(catalog: Catalog, settings: ServerSettings, table: dict[str, Any]) -> Any:
    from vaultwatch.soc.ingest.syslog import DEFAULT_PORT, MAX_CONNECTIONS, SyslogReceiver
    from vaultwatch.soc.ingest.syslog_rules import load_rules

    known = {"host", "udp_port", "tcp_port", "rules_file", "max_connections"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ServerConfigError(f"[soc.syslog] has unknown setting(s) {', '.join(unknown)}")
    rules = None
    if table.get("rules_file"):
        path = Path(str(table["rules_file"]))
        rules = load_rules(path if path.is_absolute() else settings.data_dir / path)
    ports: dict[str, int | None] = {}
    for name in ("udp_port", "tcp_port"):
        value = table.get(name, DEFAULT_PORT)
        if value is None or value is False or value == "off":
            ports[name] = None
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
            ports[name] = value
        else:
            raise ServerConfigError(f'[soc.syslog] {name} must be a port (0-65535) or "off"')
    connections = table.get("max_connections", MAX_CONNECTIONS)
    if not isinstance(connections, int) or isinstance(connections, bool) or connections < 1:
        raise ServerConfigError("[soc.syslog] max_connections must be a positive integer")
    return SyslogReceiver(
        catalog,
        rules=rules,
        host=str(table.get("host", "127.0.0.1")),
        udp_port=ports["udp_port"],
        tcp_port=ports["tcp_port"],
        max_connections=connections,
    )


def _snmp_receiver(catalog: Catalog, table: dict[str, Any]) -> Any:
    from vaultwatch.soc.ingest.snmp import SnmpReceiverConfig, SnmpTrapReceiver, SnmpV3User

    known = {"host", "port", "communities", "users", "engine_id"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ServerConfigError(f"[soc.snmp] has unknown setting(s) {', '.join(unknown)}")
    try:
        users = tuple(
            SnmpV3User(
                name=str(u["name"]),
                auth_key=str(u["auth_key"]),
                priv_key=str(u["priv_key"]),
                engine_ids=tuple(str(e) for e in u.get("engine_ids", ())),
            )
            for u in table.get("users", ())
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ServerConfigError(
            f"[soc.snmp] users must be tables with name, auth_key and priv_key ({exc})"
        ) from None
    config = SnmpReceiverConfig(
        host=str(table.get("host", "0.0.0.0")),
        port=int(table.get("port", 162)),
        communities=tuple(str(c) for c in table.get("communities", ())),
        users=users,
        engine_id=str(table["engine_id"]) if table.get("engine_id") else None,
    )
    return SnmpTrapReceiver(catalog, config)


def _support_mail_receiver(
    catalog: Catalog, settings: ServerSettings, table: dict[str, Any]
) -> Any:
    from vaultwatch.soc.ingest.smtp import SupportMailReceiver, SupportMailSettings

    try:
        return SupportMailReceiver(
            catalog,
            SupportMailSettings.from_table(table),
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            hostname=settings.node or None,
        )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ServerConfigError(
            f"[soc.support_mail] cannot use the TLS certificate {settings.tls_cert}: {exc}"
        ) from None


def check_settings(catalog: Catalog, settings: ServerSettings) -> None:
    """Refuse bad operations center settings before the server starts (a clear error, no trace).

    Builds everything the runtime would build from the settings, without
    binding a socket or starting a thread.
    """
    from vaultwatch.soc.incidents import incident_rules
    from vaultwatch.soc.monitors import MonitorSettings
    from vaultwatch.soc.notify.email import smtp_settings

    MonitorSettings.from_settings(settings)
    try:
        incident_rules(settings.extra)
        smtp_settings(settings.extra, settings.data_dir)
        wanted = ReceiverSettings.from_settings(settings)
        if wanted.syslog is not None:
            _syslog_receiver(catalog, settings, wanted.syslog)
        if wanted.snmp is not None:
            _snmp_receiver(catalog, wanted.snmp)
        if wanted.support_mail is not None:
            _support_mail_receiver(catalog, settings, wanted.support_mail)
    except ServerConfigError:
        raise
    except VaultwatchError as exc:
        raise ServerConfigError(f"{settings.settings_file}: {exc}") from None


@dataclass
class SocRuntime:
    """Starts and stops one process's duty runner and receivers."""

    catalog: Catalog
    settings: ServerSettings
    roles: Sequence[str]
    extra_duties: Sequence[Duty] = ()
    runner: DutyRunner | None = None
    receivers: list[Any] = field(default_factory=list)

    def duties(self) -> list[Duty]:
        """Everything the duty runner runs in this process."""
        from vaultwatch.retention.duty import retention_duty
        from vaultwatch.soc.housekeeping import housekeeping_duties
        from vaultwatch.soc.incidents import incident_duties
        from vaultwatch.soc.monitors import default_duties
        from vaultwatch.soc.ransomware import guard_duties
        from vaultwatch.soc.silences import silence_duties
        from vaultwatch.soc.topology_sync import topology_duty

        served = self.settings.with_overrides(roles=tuple(self.roles))  # what this node reports
        return [
            *default_duties(self.catalog, served, node_name=self.settings.node),
            topology_duty(self.settings),
            *incident_duties(self.catalog, self.settings),
            *silence_duties(),
            *guard_duties(),
            *housekeeping_duties(),
            retention_duty(self.settings),
            *self.extra_duties,
        ]

    async def start(self) -> None:
        """Start the duty runner, then the receivers of a worker process."""
        self.runner = DutyRunner(self.catalog, self.duties(), node_name=self.settings.node)
        self.runner.start()
        if "worker" not in self.roles:
            return
        wanted = ReceiverSettings.from_settings(self.settings)
        if wanted.syslog is not None:
            self.receivers.append(_syslog_receiver(self.catalog, self.settings, wanted.syslog))
        if wanted.snmp is not None:
            self.receivers.append(_snmp_receiver(self.catalog, wanted.snmp))
        if wanted.support_mail is not None:
            self.receivers.append(
                _support_mail_receiver(self.catalog, self.settings, wanted.support_mail)
            )
        for receiver in self.receivers:
            await receiver.start()
            log.info("started %s", type(receiver).__name__)

    async def stop(self) -> None:
        """Stop the receivers (storing what they queued), then the duty runner (releasing its lease)."""
        for receiver in reversed(self.receivers):
            try:
                await receiver.stop()
            except Exception:
                log.exception("stopping %s failed", type(receiver).__name__)
        self.receivers.clear()
        if self.runner is not None:
            self.runner.stop()
            self.runner = None
