"""Enrolling this server: redeem a token, keep the credential, write the agent's config.

The vault passphrase is never sent anywhere: enrollment only points the
config at a local passphrase file (a new random one unless the tenant
already has a passphrase, which every agent of the tenant must share).
"""

from __future__ import annotations

import shutil
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path

from vaultwatch.agent import client
from vaultwatch.agent.config import (
    DEFAULT_STATE_DIR,
    ConfigError,
    config_document,
    dump_config,
    write_private,
)
from vaultwatch.agent.daemon import platform_name
from vaultwatch.agent.vault import create_passphrase_file, read_passphrase

EXAMPLE_SETS = """
# What to protect: one [[backup_set]] table per set (see docs/agent.md), e.g.
#
# [[backup_set]]
# name = "www"
# paths = ["/srv/www", "/etc/nginx"]
# mode = "continuous"          # change events, debounced; plus a full rescan
# excludes = ["*.tmp", "/srv/www/cache"]
# quiet = "2s"                 # wait for this much calm after a change ...
# max_delay = "10s"            # ... but never longer than this
# rescan = "1h"
#
# [[backup_set]]
# name = "db-dumps"
# paths = ["/var/backups/db"]
# mode = "scheduled"
# at = ["02:30"]               # or: interval = "6h"
"""


@dataclass(frozen=True)
class Enrollment:
    """What enrollment did (no secret in here)."""

    agent_id: str
    tenant: str
    config_path: Path
    passphrase_file: Path
    passphrase_created: bool
    ca_cert: Path | None
    server_time: str


def enroll_agent(
    server: str,
    token: str,
    *,
    config_path: Path,
    ca_cert: Path | None = None,
    state_dir: Path = DEFAULT_STATE_DIR,
    passphrase_file: Path | None = None,
    hostname: str | None = None,
    force: bool = False,
) -> Enrollment:
    """Redeem ``token`` at ``server`` and write the config (0600)."""
    server = server.rstrip("/")
    config_path = config_path.absolute()
    state_dir = state_dir.absolute()
    if passphrase_file is not None:
        passphrase_file = passphrase_file.absolute()
    if ca_cert is not None:
        ca_cert = ca_cert.absolute()
    if not server.startswith(("https://", "http://")):
        raise ConfigError(f"--server must be an https:// URL, got {server!r}")
    if config_path.exists() and not force:
        raise ConfigError(
            f"{config_path} exists: this server is already enrolled (use --force to enroll "
            "again with a new token; its backup sets are kept)"
        )
    if ca_cert is not None and not ca_cert.is_file():
        raise ConfigError(f"--ca-cert {ca_cert}: no such file")
    if passphrase_file is not None:
        read_passphrase(passphrase_file)  # fail now, not at the first backup
    kept_sets = _existing_sets(config_path) if force else []

    answer = client.enroll(
        server,
        token,
        hostname=hostname or socket.gethostname(),
        platform=platform_name(),
        ca_cert=ca_cert,
    )

    config_dir = config_path.parent
    config_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    kept_ca: Path | None = None
    if ca_cert is not None:
        kept_ca = config_dir / "ca.pem"
        if kept_ca.resolve() != ca_cert.resolve():
            shutil.copyfile(ca_cert, kept_ca)
            kept_ca.chmod(0o644)
    created = False
    if passphrase_file is None:
        passphrase_file = config_dir / "passphrase"
        if not passphrase_file.exists():
            create_passphrase_file(passphrase_file)
            created = True
        else:
            read_passphrase(passphrase_file)
    tenant = answer.get("tenant")
    tenant_name = tenant.get("name", "") if isinstance(tenant, dict) else str(tenant or "")
    doc = config_document(
        agent_id=str(answer["agent_id"]),
        tenant=str(tenant_name),
        urls=[server],
        credential=str(answer["credential"]),
        ca_cert=kept_ca,
        state_dir=state_dir,
        passphrase_file=passphrase_file,
        backup_sets=kept_sets,
        hostname=hostname,
    )
    text = dump_config(doc)
    if not kept_sets:
        text += EXAMPLE_SETS.encode()
    write_private(config_path, text)
    return Enrollment(
        agent_id=str(answer["agent_id"]),
        tenant=str(tenant_name),
        config_path=config_path,
        passphrase_file=passphrase_file,
        passphrase_created=created,
        ca_cert=kept_ca,
        server_time=str(answer.get("server_time", "")),
    )


def _existing_sets(config_path: Path) -> list[dict[str, object]]:
    """The backup sets of a config being replaced by a new enrollment."""
    try:
        doc = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    sets = doc.get("backup_set", [])
    return [s for s in sets if isinstance(s, dict)] if isinstance(sets, list) else []
