"""Opening the tenant's vault from the agent: the passphrase stays on this server.

The first agent of a tenant initialises the vault through the gateway (it
has no ``config`` object yet); every later start, and every other agent of
the tenant, opens it with the same passphrase.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from vaultwatch.engine.errors import RepositoryExistsError, WrongPassphraseError
from vaultwatch.engine.repository import BlobWriter, Repository
from vaultwatch.errors import VaultwatchError
from vaultwatch.store.base import Store
from vaultwatch.store.errors import RepositoryNotFoundError


class PassphraseError(VaultwatchError):
    """The passphrase file is missing, unreadable or empty."""

    exit_code = 2


class AgentRepository(Repository):
    """A repository whose writer uses the agent's upload concurrency and reports each pack.

    One upload at a time by default: an agent shares the customer's uplink,
    and after a cut at most one pack was in flight and must be sent again.
    """

    upload_workers: int = 1
    on_pack_uploaded: Callable[[bytes, int], None] | None = None

    def writer(self, *, upload_workers: int | None = None) -> BlobWriter:
        """The engine's writer, with the agent's settings."""
        writer = super().writer(upload_workers=upload_workers or self.upload_workers)
        writer.on_pack_uploaded = self.on_pack_uploaded
        return writer


def read_passphrase(path: Path) -> str:
    """The first line of the passphrase file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PassphraseError(f"passphrase file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PassphraseError(f"cannot read the passphrase file {path}: {exc}") from None
    lines = text.splitlines()
    passphrase = lines[0] if lines else ""
    if not passphrase:
        raise PassphraseError(f"passphrase file {path} is empty")
    return passphrase


def create_passphrase_file(path: Path) -> None:
    """Write a new random passphrase (0600); refuses to replace an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def open_vault(store: Store, passphrase: str, *, upload_workers: int = 1) -> AgentRepository:
    """Open the tenant vault, creating it when it does not exist yet."""
    repo: Repository
    try:
        repo = AgentRepository.open(store, passphrase)
    except RepositoryNotFoundError:
        try:
            repo = AgentRepository.init(store, passphrase)
        except RepositoryExistsError:  # another agent of the tenant was faster
            repo = AgentRepository.open(store, passphrase)
    except WrongPassphraseError:
        raise WrongPassphraseError(
            "the tenant's vault does not open with this agent's passphrase file: every agent "
            "of a tenant needs the same passphrase (copy it from the first agent)"
        ) from None
    assert isinstance(repo, AgentRepository)
    repo.upload_workers = upload_workers
    return repo
