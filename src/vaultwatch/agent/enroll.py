"""Enrolling this server: redeem a token, keep the credential, set up its key, write the config.

The vault passphrase is never sent anywhere. The tenant's first server
creates the tenant's vault with a new random passphrase; every later one
joins that vault with its own passphrase in its own key slot, which needs a
passphrase that already opens the vault (:mod:`vaultwatch.agent.membership`).
Bad local input is refused before the token is spent; when the vault
refuses after the token was redeemed (only the vault can tell whether a
passphrase opens it), the credential is kept in the config and
``vaultwatch agent join`` finishes the job.
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
)
from vaultwatch.agent.daemon import platform_name
from vaultwatch.agent.membership import JoinRefusedError, KeySetup, set_up_key, slot_label
from vaultwatch.agent.vault import command_store
from vaultwatch.errors import VaultwatchError
from vaultwatch.files import write_private
from vaultwatch.passphrases import read_passphrase_file

EXAMPLE_SETS = """
# What to protect: one [[backup_set]] table per set (see docs/agent.md), e.g.
#
# [[backup_set]]
# name = "www"
# paths = ["/srv/www", "/etc/nginx"]
# mode = "continuous"          # change events, debounced; plus a full rescan
# excludes = ["*.tmp", "/srv/www/cache"]
# quiet = "2s"                 # wait for this much calm after a change ...
# max_delay = "4s"             # ... but never longer than this
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
    key_slot: str = ""
    vault_created: bool = False
    joined_with: Path | None = None


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
        read_passphrase_file(passphrase_file)  # fail now, not at the first backup
    kept_sets = _existing_sets(config_path) if force else []
    if force and passphrase_file is None:
        passphrase_file = _existing_passphrase_file(config_path)

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
    tenant = answer.get("tenant")
    tenant_name = tenant.get("name", "") if isinstance(tenant, dict) else str(tenant or "")
    agent_id = str(answer["agent_id"])
    credential = str(answer["credential"])
    own_file = config_dir / "passphrase"

    def write(setup: KeySetup | None) -> None:
        doc = config_document(
            agent_id=agent_id,
            tenant=str(tenant_name),
            urls=[server],
            credential=credential,
            ca_cert=kept_ca,
            state_dir=state_dir,
            passphrase_file=setup.passphrase_file if setup else own_file,
            backup_sets=kept_sets,
            hostname=hostname,
            key_slot=setup.slot_id if setup else None,
        )
        text = dump_config(doc)
        if not kept_sets:
            text += EXAMPLE_SETS.encode()
        write_private(config_path, text)

    store = command_store([server], credential, kept_ca)
    try:
        setup = set_up_key(
            store,
            own_file=own_file,
            given_file=passphrase_file,
            label=slot_label(agent_id, hostname or socket.gethostname()),
            tenant=str(tenant_name),
        )
    except VaultwatchError as exc:
        write(None)  # the token is spent: keep the credential, so joining can finish later
        raise JoinRefusedError(
            f"enrolled as agent {agent_id} (configuration written to {config_path}), but this "
            f"agent cannot open the tenant's vault yet: {exc}. Finish with `vaultwatch agent "
            f"join --passphrase-file FILE --config {config_path}`; the agent backs nothing up "
            "until then"
        ) from None
    finally:
        store.close()
    write(setup)
    return Enrollment(
        agent_id=agent_id,
        tenant=str(tenant_name),
        config_path=config_path,
        passphrase_file=setup.passphrase_file,
        passphrase_created=setup.passphrase_created,
        ca_cert=kept_ca,
        server_time=str(answer.get("server_time", "")),
        key_slot=setup.slot_id,
        vault_created=setup.vault_created,
        joined_with=setup.joined_with,
    )


def _old_config(config_path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _existing_passphrase_file(config_path: Path) -> Path | None:
    """The passphrase file of a config being replaced, when it still exists (it opens the vault)."""
    agent = _old_config(config_path).get("agent")
    name = agent.get("passphrase_file") if isinstance(agent, dict) else None
    if not isinstance(name, str) or not name:
        return None
    path = config_path.parent / name
    return path if path.is_file() else None


def _existing_sets(config_path: Path) -> list[dict[str, object]]:
    """The backup sets of a config being replaced by a new enrollment."""
    sets = _old_config(config_path).get("backup_set", [])
    return [s for s in sets if isinstance(s, dict)] if isinstance(sets, list) else []
