"""The server's settings: one TOML file in the data directory, written by ``server init``.

Everything a server process needs to start is in the data directory, so a
standby node is the same directory (or a copy of its settings, secrets and
certificates) pointed at the same catalog and vault storage. Relative paths
in the file are relative to the data directory, so the directory can move.

The file can hold a PostgreSQL password in the catalog URL, so it is written
0600, like the token key and the private keys next to it.
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w

from vaultwatch.errors import VaultwatchError
from vaultwatch.files import write_private

SETTINGS_FILE = "vaultwatch.toml"
DATA_DIR_ENV = "VAULTWATCH_DATA_DIR"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443
DEFAULT_MAX_UPLOAD_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_JSON_BYTES = 1024 * 1024
ROLES = ("gateway", "web", "worker")
DEFAULT_SITE = "default"
MAX_NODE_NAME = 200

SECRET_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


class ServerConfigError(VaultwatchError):
    """The data directory or its settings file is missing or malformed."""

    exit_code = 2


@dataclass(frozen=True)
class ServerSettings:
    """What one server process runs with (paths absolute once loaded)."""

    data_dir: Path
    catalog_url: str
    vault_url: str
    tls_cert: Path
    tls_key: Path
    ca_cert: Path | None
    token_key_file: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    roles: tuple[str, ...] = ROLES
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    max_concurrent_puts: int = 8
    spool_dir: Path | None = None
    node_name: str = ""
    site: str = DEFAULT_SITE
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def settings_file(self) -> Path:
        """Where these settings live."""
        return self.data_dir / SETTINGS_FILE

    @property
    def node(self) -> str:
        """This node's name in the operations center (the host name unless set)."""
        return self.node_name or socket.gethostname()

    @property
    def upload_spool(self) -> Path:
        """Where uploads land while they stream in and are verified."""
        return self.spool_dir or self.data_dir / "spool"

    def token_key(self) -> bytes:
        """The server secret that keys token and credential digests."""
        try:
            key = self.token_key_file.read_bytes()
        except OSError as exc:
            raise ServerConfigError(
                f"cannot read the token key {self.token_key_file}: {exc.strerror or exc}"
            ) from None
        if not 32 <= len(key) <= 64:
            raise ServerConfigError(f"token key {self.token_key_file} must hold 32 to 64 bytes")
        return key

    def vault_location(self, tenant_id: str) -> str:
        """A tenant's own vault: a directory or key prefix named by the tenant id."""
        return f"{self.vault_url.rstrip('/')}/{tenant_id}"

    def with_overrides(self, **changes: Any) -> ServerSettings:
        """A copy with some fields changed (command-line options over the file)."""
        return replace(self, **changes)

    def to_toml(self) -> dict[str, Any]:
        """The document written to the settings file (paths relative when inside the data dir)."""
        rel = self._relative
        tls: dict[str, Any] = {"cert": rel(self.tls_cert), "key": rel(self.tls_key)}
        if self.ca_cert is not None:
            tls["ca_cert"] = rel(self.ca_cert)
        return {
            "server": {
                "host": self.host,
                "port": self.port,
                "roles": list(self.roles),
                **({"node_name": self.node_name} if self.node_name else {}),
                "site": self.site,
            },
            "catalog": {"url": self.catalog_url},
            "vault": {"url": self.vault_url},
            "tls": tls,
            "secrets": {"token_key_file": rel(self.token_key_file)},
            "gateway": {
                "max_upload_bytes": self.max_upload_bytes,
                "max_json_bytes": self.max_json_bytes,
                "max_concurrent_puts": self.max_concurrent_puts,
            },
            **self.extra,
        }

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.data_dir).as_posix()
        except ValueError:
            return str(path)


def parse_roles(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``gateway,web`` -> ("gateway", "web"); unknown or no roles are refused."""
    items = text.split(",") if isinstance(text, str) else list(text)
    roles = tuple(dict.fromkeys(r.strip().lower() for r in items if r.strip()))
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ServerConfigError(
            f"unknown role(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(ROLES)}"
        )
    return roles


def write_settings(settings: ServerSettings) -> Path:
    """Write the settings file (0600: it may hold the catalog's password)."""
    path = settings.settings_file
    data = tomli_w.dumps(settings.to_toml()).encode()
    write_private(path, data, mode=SECRET_FILE_MODE)
    return path


def load_settings(data_dir: Path | str) -> ServerSettings:
    """Read ``<data_dir>/vaultwatch.toml``; a clear error when it is missing or malformed."""
    root = Path(os.path.abspath(data_dir))
    path = root / SETTINGS_FILE
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServerConfigError(
            f"{root} is not a server data directory (no {SETTINGS_FILE}): "
            "run `vaultwatch server init --data-dir DIR` first"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ServerConfigError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ServerConfigError(f"{path} is not valid TOML: {exc}") from None

    def section(name: str) -> dict[str, Any]:
        value = doc.get(name, {})
        if not isinstance(value, dict):
            raise ServerConfigError(f"[{name}] in {path} must be a table")
        return value

    def absolute(value: Any, what: str) -> Path:
        if not isinstance(value, str) or not value:
            raise ServerConfigError(f"{what} in {path} must be a path")
        p = Path(value)
        return p if p.is_absolute() else root / p

    def integer(table: dict[str, Any], name: str, default: int, what: str) -> int:
        value = table.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ServerConfigError(f"{what} in {path} must be a positive integer")
        return value

    server, catalog, vault = section("server"), section("catalog"), section("vault")
    tls, secrets_, gateway = section("tls"), section("secrets"), section("gateway")
    catalog_url = catalog.get("url")
    vault_url = vault.get("url")
    if not isinstance(catalog_url, str) or not catalog_url:
        raise ServerConfigError(f"[catalog] url in {path} is missing")
    if not isinstance(vault_url, str) or not vault_url:
        raise ServerConfigError(f"[vault] url in {path} is missing")
    host = server.get("host", DEFAULT_HOST)
    if not isinstance(host, str) or not host:
        raise ServerConfigError(f"[server] host in {path} must be a host name or address")
    node_name, site = server.get("node_name", ""), server.get("site", DEFAULT_SITE)
    for what, value in (("node_name", node_name), ("site", site)):
        if not isinstance(value, str) or len(value) > MAX_NODE_NAME or not value.isprintable():
            raise ServerConfigError(
                f"[server] {what} in {path} must be text of at most {MAX_NODE_NAME} characters"
            )
    if not site:
        raise ServerConfigError(f"[server] site in {path} must not be empty")
    known = {"server", "catalog", "vault", "tls", "secrets", "gateway"}
    return ServerSettings(
        data_dir=root,
        catalog_url=catalog_url,
        vault_url=vault_url,
        tls_cert=absolute(tls.get("cert"), "[tls] cert"),
        tls_key=absolute(tls.get("key"), "[tls] key"),
        ca_cert=absolute(tls["ca_cert"], "[tls] ca_cert") if tls.get("ca_cert") else None,
        token_key_file=absolute(secrets_.get("token_key_file"), "[secrets] token_key_file"),
        host=host,
        port=integer(server, "port", DEFAULT_PORT, "[server] port"),
        roles=parse_roles(server.get("roles", list(ROLES))),
        max_upload_bytes=integer(
            gateway, "max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES, "[gateway] max_upload_bytes"
        ),
        max_json_bytes=integer(
            gateway, "max_json_bytes", DEFAULT_MAX_JSON_BYTES, "[gateway] max_json_bytes"
        ),
        max_concurrent_puts=integer(
            gateway, "max_concurrent_puts", 8, "[gateway] max_concurrent_puts"
        ),
        spool_dir=(
            absolute(gateway["spool_dir"], "[gateway] spool_dir")
            if "spool_dir" in gateway
            else None
        ),
        node_name=node_name,
        site=site,
        extra={k: v for k, v in doc.items() if k not in known},
    )
