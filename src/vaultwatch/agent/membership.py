"""An agent's own key slot in its tenant's shared vault: creating the vault, or joining it.

Every server of a tenant backs up into one vault, so content common to the
servers is stored once, and each agent unlocks it with its own random
passphrase in its own key slot (labelled with the agent's id and host name),
so a lost server's slot can be told apart and removed without touching the
others. The passphrase never leaves the server.

- No vault yet (the tenant's first server): the vault is created now, with
  this agent's passphrase in its first slot.
- The vault exists: only someone who can already open it can add a slot, so
  joining needs a passphrase that opens it (the tenant's recovery
  passphrase, or another enrolled server's file). This agent then adds a
  slot for a new passphrase of its own and keeps only that one. An agent
  cannot delete objects, so no slot is ever removed by joining.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from vaultwatch.agent.config import AgentConfig, ConfigError, dump_config
from vaultwatch.agent.vault import (
    AgentRepository,
    beside_config,
    command_store,
    create_passphrase_file,
)
from vaultwatch.engine.errors import RepositoryExistsError, WrongPassphraseError
from vaultwatch.engine.repository import Repository
from vaultwatch.errors import VaultwatchError
from vaultwatch.files import write_private
from vaultwatch.passphrases import read_passphrase_file
from vaultwatch.store.base import Store


class JoinRefusedError(VaultwatchError):
    """This server cannot get a key slot in the tenant's vault with what it was given."""

    exit_code = 2


JOIN_HINT = (
    "give --passphrase-file FILE with a passphrase that opens the vault: the tenant's "
    "recovery passphrase (`vaultwatch agent key add --out FILE` on an enrolled server makes "
    "one) or a copy of an enrolled server's passphrase file"
)


@dataclass(frozen=True)
class KeySetup:
    """How this agent unlocks the vault now (no secret in here)."""

    passphrase_file: Path
    passphrase_created: bool
    slot_id: str
    vault_created: bool
    joined_with: Path | None = None


def slot_label(agent_id: str, hostname: str) -> str:
    """The label of an agent's own key slot: which agent on which server."""
    return f"agent {agent_id} ({hostname})"


def _opens(store: Store, passphrase: str) -> Repository | None:
    try:
        return Repository.open(store, passphrase)
    except WrongPassphraseError:
        return None


def set_up_key(
    store: Store, *, own_file: Path, given_file: Path | None, label: str, tenant: str
) -> KeySetup:
    """Create the tenant's vault with this agent's passphrase, or give the agent a slot in it.

    ``own_file`` is where the agent's own passphrase lives (created here when
    needed); ``given_file`` is what the administrator passed with
    ``--passphrase-file``: the new vault's passphrase when there is no vault
    yet, else a passphrase that opens it.
    """
    who = f"tenant {tenant!r}" if tenant else "this tenant"
    if not store.exists("config"):
        passphrase_file = given_file or own_file
        created = False
        if given_file is None and not own_file.exists():
            create_passphrase_file(own_file)
            created = True
        try:
            repo = AgentRepository.init(store, read_passphrase_file(passphrase_file), label=label)
            return KeySetup(passphrase_file, created, repo.slot.slot_id, vault_created=True)
        except RepositoryExistsError:  # another server of the tenant made it meanwhile
            if created:
                own_file.unlink()
    if own_file.exists() and (given_file is None or given_file.resolve() != own_file.resolve()):
        repo_own = _opens(store, read_passphrase_file(own_file))
        if repo_own is not None:  # enrolled again (--force): its slot is still there
            return KeySetup(own_file, False, repo_own.slot.slot_id, vault_created=False)
        if given_file is None:
            raise JoinRefusedError(
                f"{who} already has a vault and {own_file} does not open it: {JOIN_HINT}"
            )
        raise JoinRefusedError(
            f"{own_file} holds a passphrase that does not open the vault of {who}: move it "
            "away so this agent can make its own, then try again"
        )
    if given_file is None:
        raise JoinRefusedError(
            f"{who} already has a vault, shared by all its servers, and this server has no "
            f"passphrase that opens it: {JOIN_HINT}"
        )
    joined = _opens(store, read_passphrase_file(given_file))
    if joined is None:
        raise JoinRefusedError(
            f"{given_file} does not open the vault of {who} (no key slot holds that "
            f"passphrase): {JOIN_HINT}"
        )
    if given_file.resolve() == own_file.resolve():  # a copy put in place: the slot is shared
        return KeySetup(own_file, False, joined.slot.slot_id, vault_created=False)
    create_passphrase_file(own_file)
    try:
        slot = joined.add_passphrase(read_passphrase_file(own_file), label=label)
    except BaseException:
        own_file.unlink(missing_ok=True)
        raise
    return KeySetup(own_file, True, slot.slot_id, vault_created=False, joined_with=given_file)


def config_store(config: AgentConfig) -> Store:
    """The vault as this agent's configuration reaches it, for commands (not the daemon)."""
    ca = config.server.ca_cert
    return command_store(
        config.server.urls,
        config.server.credential,
        beside_config(ca, config.path) if ca is not None else None,
        timeout=config.server.timeout,
    )


def open_with_config(config: AgentConfig, passphrase_file: Path | None = None) -> Repository:
    """The tenant's vault, opened with the agent's credential and passphrase (or the one given).

    Close it when done (``repository.close()``).
    """
    key_file = passphrase_file or beside_config(config.passphrase_file, config.path)
    passphrase = read_passphrase_file(key_file)
    store = config_store(config)
    try:
        return Repository.open(store, passphrase, slot_id=config.key_slot)
    except WrongPassphraseError:
        store.close()
        raise WrongPassphraseError(
            f"the tenant's vault does not open with {key_file}: no key slot holds its passphrase"
        ) from None
    except BaseException:
        store.close()
        raise


def join(config: AgentConfig, given_file: Path) -> KeySetup:
    """Give an enrolled agent its own key slot and record it in its configuration."""
    own_file = config.passphrase_file
    store = config_store(config)
    try:
        setup = set_up_key(
            store,
            own_file=own_file,
            given_file=given_file.absolute(),
            label=slot_label(config.agent_id, config.hostname or os.uname().nodename),
            tenant=config.tenant,
        )
    finally:
        store.close()
    record_key(config.path, setup)
    return setup


def record_key(config_path: Path, setup: KeySetup) -> None:
    """Point the configuration at the agent's passphrase file and key slot (0600 rewrite)."""
    try:
        doc = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{config_path}: cannot update: {exc}") from None
    agent = doc.setdefault("agent", {})
    agent["passphrase_file"] = str(setup.passphrase_file)
    agent["key_slot"] = setup.slot_id
    write_private(config_path, dump_config(doc))


def add_recovery_key(config: AgentConfig, out_file: Path, label: str) -> str:
    """Add a key slot for a new random passphrase written to ``out_file``; returns the slot id.

    The tenant's recovery passphrase: kept off the servers, it joins new
    servers to the vault and restores from any machine after a loss.
    """
    out_file = out_file.absolute()
    if out_file.exists():
        raise JoinRefusedError(f"{out_file} exists: give a new file name")
    repo = open_with_config(config)
    try:
        create_passphrase_file(out_file)
        try:
            slot = repo.add_passphrase(read_passphrase_file(out_file), label=label)
        except BaseException:
            with contextlib.suppress(OSError):
                out_file.unlink()
            raise
        return slot.slot_id
    finally:
        repo.close()


def default_recovery_label() -> str:
    """``recovery passphrase (made by root on web-01)``: what the slot is for, and who made it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"recovery passphrase (made by {user} on {os.uname().nodename})"
