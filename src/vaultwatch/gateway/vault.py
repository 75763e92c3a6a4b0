"""Agents' access to their tenant's vault: what they may do, and doing it on the Store.

The rules protect backups from a compromised customer server (ransomware
holding the agent's credential):

- Append-only: an agent may add objects but never replace or delete them,
  except repository locks (``locks/``), which the engine refreshes and removes.
- Content-addressed objects (``data/xx/<id>``, ``index/<id>``,
  ``snapshots/<id>``) must hash to their name, so nothing can be stored under
  the name of data it is not; the upload is hashed as it streams in.
- Only the repository layout's names exist: ``config``, ``keys/``, ``locks/``,
  ``data/``, ``index/``, ``snapshots/``, ``manifests/`` (reference manifests,
  checked and stamped: see ``gateway.manifests``). ``retention/`` and
  ``trash/`` belong to the service's retention: agents may read, never write.

Uploads stream to a spool file (bounded memory however slow the client);
only a verified upload is read back and handed to the Store, and at most
``max_concurrent_puts`` at a time, which bounds the memory that costs.
Each process spools into its own directory, named by its pid and host, so
that a server starting after a crash can remove what dead processes left
there without touching the uploads of its live sibling workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import socket
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread
import blake3

from vaultwatch.catalog import Catalog, audit
from vaultwatch.catalog.errors import TenantSuspendedError
from vaultwatch.catalog.vaults import get_tenant_vault, record_vault_id, register_tenant_vault
from vaultwatch.errors import VaultwatchError
from vaultwatch.gateway import manifests
from vaultwatch.server_config import ServerSettings
from vaultwatch.store.base import NAME_REGEX, Store, StoredObject, check_name, check_prefix
from vaultwatch.store.errors import (
    ObjectExistsError,
    RepositoryNotFoundError,
    StorePermissionError,
)
from vaultwatch.store.url import open_store

DEFAULT_PAGE = 1000
MAX_PAGE = 10000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
DIGEST_REGEX = "[0-9a-fA-F]{64}"
"""An ``X-Content-Blake3`` value: the body's BLAKE3, 64 hex digits of either case."""
_DIGEST = re.compile(DIGEST_REGEX)
_HEX_ID = re.compile(r"^[0-9a-f]{8,64}$")
_DATA = re.compile(r"^data/([0-9a-f]{2})/([0-9a-f]{64})$")
_TOP_LEVEL = ("keys/", "locks/", "data/", "index/", "snapshots/", "manifests/")
_LISTING_TTL = 300.0
_LISTING_CACHE = 32
_SPOOL_CHUNK = 1 << 20
_PROCESS_STARTED = time.time()
"""When this process started (near enough: it imported this module); older spool files are not its own."""

log = logging.getLogger("vaultwatch.gateway.vault")


class UploadTooLargeError(VaultwatchError):
    """The upload is larger than this gateway accepts for one object."""


class ContentMismatchError(VaultwatchError):
    """The upload does not hash to what the client declared, or to the object's name."""


class ObjectNamingError(VaultwatchError):
    """The name does not fit the repository layout (unknown kind, or not named by its id)."""


class InvalidCursorError(VaultwatchError):
    """The listing cursor is not of the form this API makes (its schema publishes it)."""


@dataclass(frozen=True)
class AgentIdentity:
    """Who is calling, as established from the credential (never from the request)."""

    agent_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    hostname: str
    suspended: bool = False
    """The tenant is suspended: reads are allowed, new objects are refused."""

    @property
    def actor(self) -> str:
        """The audit actor."""
        return audit.agent_actor(self.agent_id)


@dataclass(frozen=True)
class ListingPage:
    """One page of a sorted listing."""

    objects: list[StoredObject]
    next_cursor: str | None


def is_lock(name: str) -> bool:
    """Whether agents may overwrite and delete this object."""
    return name.startswith("locks/")


UPLOAD_NAME_REGEX = (
    rf"config|(?:keys|locks)/{NAME_REGEX}|data/([0-9a-f]{{2}})/\1[0-9a-f]{{62}}"
    r"|(?:index|snapshots|manifests)/[0-9a-f]{64}"
)
"""The names an agent may upload (``check_layout`` and ``expected_content_id``), as a regex."""


def check_layout(name: str) -> str:
    """Refuse names outside the repository layout (after the Store's own name check)."""
    check_name(name)
    if name == "config" or (name.startswith(_TOP_LEVEL) and name.count("/") >= 1):
        return name
    raise ObjectNamingError(
        f"{name!r} is not a repository object: expected config, keys/, locks/, data/, index/, "
        "snapshots/ or manifests/"
    )


def expected_content_id(name: str) -> str | None:
    """The BLAKE3 hex a content-addressed object must hash to; None for other objects."""
    if name.startswith("data/"):
        m = _DATA.match(name)
        if not m or not m.group(2).startswith(m.group(1)):
            raise ObjectNamingError(f"{name!r}: packs are named data/<first 2 hex of id>/<id>")
        return m.group(2)
    for kind in ("index/", "snapshots/"):
        if name.startswith(kind):
            tail = name[len(kind) :]
            if not _HEX64.match(tail):
                raise ObjectNamingError(f"{name!r}: {kind[:-1]} files are named by their BLAKE3 id")
            return tail
    snapshot = manifests.snapshot_of(name)
    if snapshot is not None and not _HEX64.match(snapshot):
        raise ObjectNamingError(f"{name!r}: manifests are named by their snapshot's id")
    return None


def parse_digest(value: str | None) -> str:
    """The declared X-Content-Blake3 as lower-case hex (64 digits), or an error."""
    if value is None:
        raise ContentMismatchError("the X-Content-Blake3 header is required on uploads")
    if not _DIGEST.fullmatch(value):
        raise ContentMismatchError(
            "X-Content-Blake3 must be 64 hex digits (the BLAKE3 of the body)"
        )
    return value.lower()


CURSOR_REGEX = r"(?:[0-9a-f]{16}:[\s\S]*)?"
"""A listing cursor as the schema publishes it (empty is the first page).

Opaque to clients, but of a form a schema can state: any listing id (an
unknown or expired one is listed again) and any last name resume a listing.
"""
_CURSOR = re.compile(r"([0-9a-f]{16}):(.*)", re.DOTALL)


def encode_cursor(listing_id: str, after: str) -> str:
    """An opaque cursor: which cached listing (16 hex digits), and the last name returned."""
    return f"{listing_id}:{after}"


def decode_cursor(cursor: str) -> tuple[str, str]:
    """(listing id, last name) of a cursor; InvalidCursorError when it is not of our form."""
    m = _CURSOR.fullmatch(cursor)
    if m is None:
        raise InvalidCursorError("invalid listing cursor")
    return m.group(1), m.group(2)


def process_spool(root: Path) -> Path:
    """This process's own spool directory under `root`: ``<pid>@<host>``."""
    return root / f"{os.getpid()}@{socket.gethostname()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _unlink(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError):  # a sibling worker cleaning at the same time
        path.unlink()
        return 1
    return 0


def clean_spool(root: Path, *, started: float = _PROCESS_STARTED) -> int:
    """Remove the spool files that killed server processes left in `root`; returns how many.

    A directory of this host whose process is gone goes whole; in this
    process's own directory (a dead process had the same pid) and among
    loose files (spooled by older releases), only files last written before
    `started`. Live processes' directories and other hosts' (a spool shared
    by several nodes) stay.
    """
    host = socket.gethostname()
    removed = 0
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if not entry.is_dir():
                if entry.name.startswith("upload-") and entry.stat().st_mtime < started:
                    removed += _unlink(entry)
                continue
            pid_text, at, entry_host = entry.name.partition("@")
            if not at or entry_host != host or not pid_text.isdigit():
                continue
            pid = int(pid_text)
            if pid == os.getpid():
                removed += sum(
                    _unlink(file) for file in entry.iterdir() if file.stat().st_mtime < started
                )
            elif not _pid_alive(pid):
                removed += sum(_unlink(file) for file in entry.iterdir())
                with contextlib.suppress(FileNotFoundError):
                    entry.rmdir()
        except OSError as exc:
            log.warning("cannot clean the upload spool %s: %s", entry, exc.strerror or exc)
    if removed:
        log.info("removed %d upload spool files left by stopped server processes", removed)
    return removed


class VaultAccess:
    """Opens tenants' vault Stores (kept open and shared) and applies the agent rules."""

    def __init__(self, settings: ServerSettings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self._stores: dict[uuid.UUID, tuple[Store, uuid.UUID]] = {}
        self._stores_lock = threading.Lock()
        self._listings: OrderedDict[tuple[uuid.UUID, str], tuple[float, list[StoredObject]]] = (
            OrderedDict()
        )
        self._listings_lock = threading.Lock()
        self._put_slots = threading.BoundedSemaphore(settings.max_concurrent_puts)
        settings.upload_spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        clean_spool(settings.upload_spool)
        self.spool = process_spool(settings.upload_spool)
        self.spool.mkdir(exist_ok=True, mode=0o700)

    # -- stores ----------------------------------------------------------------------------

    def provision(self, tenant_id: uuid.UUID, actor: str) -> str:
        """Create the tenant's vault storage and record it (idempotent); returns its location."""
        with self.catalog.session(tenant_id=tenant_id) as session:
            vault = get_tenant_vault(session, tenant_id)
            if vault is not None:
                return vault.primary_location
        location = self.settings.vault_location(str(tenant_id))
        store = open_store(location, create=True)
        store.close()
        with self.catalog.session(tenant_id=tenant_id) as session:
            return register_tenant_vault(session, tenant_id, location, actor=actor).primary_location

    def store_for(self, identity: AgentIdentity) -> Store:
        """The tenant's vault Store, provisioned on first use.

        A vault that the catalog knows but whose storage is gone is never
        silently recreated empty: that is data loss for the SOC to handle,
        and the agent gets RepositoryNotFoundError.
        """
        return self._open_vault(identity)[0]

    def repository_id(self, identity: AgentIdentity) -> uuid.UUID:
        """The catalog id of the tenant's vault (provisioned on first use, then remembered)."""
        return self._open_vault(identity)[1]

    def _open_vault(self, identity: AgentIdentity) -> tuple[Store, uuid.UUID]:
        """The tenant's open Store and vault row id; the catalog is asked once per process.

        A vault's row and location never change once provisioned, so keeping
        them saves a catalog round trip on every request.
        """
        with self._stores_lock:
            opened = self._stores.get(identity.tenant_id)
        if opened is not None:
            return opened
        with self.catalog.session(tenant_id=identity.tenant_id) as session:
            vault = get_tenant_vault(session, identity.tenant_id)
        if vault is None:
            self.provision(identity.tenant_id, identity.actor)
            with self.catalog.session(tenant_id=identity.tenant_id) as session:
                vault = get_tenant_vault(session, identity.tenant_id)
            if vault is None:
                raise RepositoryNotFoundError("the tenant's vault could not be provisioned")
        store = open_store(vault.primary_location)
        with self._stores_lock:
            existing = self._stores.setdefault(identity.tenant_id, (store, vault.id))
        if existing[0] is not store:
            store.close()
        return existing

    def close(self) -> None:
        """Close every open Store."""
        with self._stores_lock:
            opened, self._stores = list(self._stores.values()), {}
        for store, _ in opened:
            store.close()

    # -- reads -----------------------------------------------------------------------------

    def list_page(
        self, identity: AgentIdentity, prefix: str, cursor: str | None, limit: int
    ) -> ListingPage:
        """One page of the objects under ``prefix``, sorted by name.

        The first page lists the store once and keeps the sorted result for a
        few minutes, so paging through a large vault costs one listing, not
        one per page. A cursor whose listing is gone (expired, or another
        server node) still works: the store is listed again and the page
        resumes after the cursor's last name.
        """
        check_prefix(prefix)
        limit = max(1, min(limit, MAX_PAGE))
        store = self.store_for(identity)
        listing_id: str
        after: str | None = None
        objects: list[StoredObject] | None = None
        if cursor:
            listing_id, after = decode_cursor(cursor)
            objects = self._cached_listing(identity.tenant_id, listing_id, prefix)
        else:
            listing_id = secrets.token_hex(8)
        if objects is None:
            objects = sorted(store.list(prefix), key=lambda o: o.name)
            if after is not None:
                listing_id = secrets.token_hex(8)
            self._remember_listing(identity.tenant_id, listing_id, prefix, objects)
        start = 0
        if after is not None:
            start = _bisect_after(objects, after)
        page = objects[start : start + limit]
        more = start + limit < len(objects)
        next_cursor = encode_cursor(listing_id, page[-1].name) if more and page else None
        return ListingPage(page, next_cursor)

    def _cached_listing(
        self, tenant_id: uuid.UUID, listing_id: str, prefix: str
    ) -> list[StoredObject] | None:
        key = (tenant_id, f"{listing_id}\0{prefix}")
        with self._listings_lock:
            entry = self._listings.get(key)
            if entry is None or time.monotonic() - entry[0] > _LISTING_TTL:
                return None
            self._listings.move_to_end(key)
            return entry[1]

    def _remember_listing(
        self, tenant_id: uuid.UUID, listing_id: str, prefix: str, objects: list[StoredObject]
    ) -> None:
        key = (tenant_id, f"{listing_id}\0{prefix}")
        now = time.monotonic()
        with self._listings_lock:
            self._listings[key] = (now, objects)
            while len(self._listings) > _LISTING_CACHE:
                self._listings.popitem(last=False)
            for stale in [k for k, (t, _) in self._listings.items() if now - t > _LISTING_TTL]:
                del self._listings[stale]

    def size(self, identity: AgentIdentity, name: str) -> int:
        """The object's size."""
        return self.store_for(identity).size(check_name(name))

    def read(self, identity: AgentIdentity, name: str) -> bytes:
        """The whole object."""
        return self.store_for(identity).get(check_name(name))

    def read_range(self, identity: AgentIdentity, name: str, offset: int, length: int) -> bytes:
        """Part of the object."""
        return self.store_for(identity).get_range(check_name(name), offset, length)

    # -- writes ----------------------------------------------------------------------------

    def check_put(self, identity: AgentIdentity, name: str, overwrite: bool) -> str | None:
        """Validate a PUT before its body is read; returns the id the content must hash to."""
        if identity.suspended:
            raise TenantSuspendedError(
                f"tenant {identity.tenant_name} is suspended: the service accepts no new "
                "backups until it is resumed (restores still work); contact the service"
            )
        check_layout(name)
        if overwrite and not is_lock(name):
            self._refuse(identity, "vault.overwrite_refused", name)
        content_id = expected_content_id(name)
        snapshot = manifests.snapshot_of(name)
        if snapshot is not None and self.store_for(identity).exists(f"snapshots/{snapshot}"):
            raise manifests.ManifestRefusedError(
                f"snapshot {snapshot[:8]} already exists: a manifest is written before its snapshot"
            )
        if not overwrite and self.store_for(identity).exists(name):
            # Before the body is read: a retried upload of a large pack costs nothing.
            raise ObjectExistsError(
                f"object {name!r} already exists; agents cannot replace objects"
            )
        return content_id

    def check_delete(self, identity: AgentIdentity, name: str) -> None:
        """Agents may delete locks only."""
        check_name(name)
        if not is_lock(name):
            self._refuse(identity, "vault.delete_refused", name)

    def _refuse(self, identity: AgentIdentity, action: str, name: str) -> None:
        """Record the attempt (ransomware tries exactly this) and refuse it."""
        with self.catalog.session(tenant_id=identity.tenant_id) as session:
            audit.record(
                session,
                identity.actor,
                action,
                identity.tenant_id,
                target=f"object:{name}",
                details={"hostname": identity.hostname},
            )
        what = "replace" if "overwrite" in action else "delete"
        raise StorePermissionError(
            f"agents may not {what} {name!r}: the vault is append-only for agents (only locks/ "
            "may change)"
        )

    async def receive(
        self,
        body: AsyncIterator[bytes],
        declared_length: int | None,
        declared_digest: str,
        content_id: str | None,
    ) -> Path:
        """Stream an upload to a spool file, hashing it; returns the verified file's path.

        The caller removes the file. Refuses a body over the size limit (as
        soon as it is known: from Content-Length, or while streaming), a body
        that does not hash to the declared digest, and a content-addressed
        object whose name is not its hash.
        """
        limit = self.settings.max_upload_bytes
        if declared_length is not None and declared_length > limit:
            raise UploadTooLargeError(
                f"the object is {declared_length} bytes; this gateway accepts at most {limit}"
            )
        if content_id is not None and content_id != declared_digest:
            raise ContentMismatchError(
                f"the declared BLAKE3 {declared_digest[:16]}… is not the object's name"
            )
        fd, tmp = tempfile.mkstemp(prefix="upload-", dir=self.spool)
        path = Path(tmp)
        try:
            hasher = blake3.blake3()
            received = pending_bytes = 0
            pending: list[bytes] = []
            with os.fdopen(fd, "wb", buffering=0) as out:

                def flush(chunks: list[bytes]) -> None:
                    # Hashing and writing in a worker thread; the event loop only
                    # collects the chunks (joining them there cost a copy under the GIL).
                    for chunk in chunks:
                        hasher.update(chunk)
                    out.writelines(chunks)

                async for chunk in body:
                    received += len(chunk)
                    if received > limit:
                        raise UploadTooLargeError(
                            f"the object is larger than this gateway accepts ({limit} bytes)"
                        )
                    pending.append(chunk)
                    pending_bytes += len(chunk)
                    if pending_bytes >= _SPOOL_CHUNK:
                        await anyio.to_thread.run_sync(flush, pending)
                        pending, pending_bytes = [], 0
                if pending:
                    await anyio.to_thread.run_sync(flush, pending)
            if declared_length is not None and received != declared_length:
                raise ContentMismatchError(
                    f"the body has {received} bytes, Content-Length said {declared_length}"
                )
            if hasher.hexdigest() != declared_digest:
                raise ContentMismatchError(
                    "the body does not match X-Content-Blake3 (corrupted in transit?)"
                )
            return path
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def store_upload(
        self, identity: AgentIdentity, name: str, spooled: Path, overwrite: bool
    ) -> int:
        """Put a verified upload into the vault; returns its size.

        ObjectExistsError for an existing object unless overwriting a lock.
        """
        store = self.store_for(identity)
        replace = overwrite and is_lock(name)
        if manifests.snapshot_of(name) is not None:
            return self._store_manifest(identity, store, name, spooled)
        manifests.require_manifest(store, name)
        with self._put_slots:
            try:
                if replace:
                    store.put(name, spooled.read_bytes(), overwrite=True)
                else:
                    store.put_file(name, spooled)  # a local vault links it: written once
            except ObjectExistsError:
                raise ObjectExistsError(
                    f"object {name!r} already exists; agents cannot replace objects"
                ) from None
        if name == "config":
            self._note_vault_id(identity, spooled.read_bytes())
        return spooled.stat().st_size

    def _store_manifest(
        self, identity: AgentIdentity, store: Store, name: str, spooled: Path
    ) -> int:
        """Validate and stamp a reference manifest, then store it (create-only)."""
        data = manifests.stamp(
            spooled.read_bytes(),
            name,
            agent_id=str(identity.agent_id),
            hostname=identity.hostname,
            now=datetime.now(UTC),
        )
        try:
            store.put(name, data)
        except ObjectExistsError:
            raise ObjectExistsError(
                f"object {name!r} already exists; agents cannot replace objects"
            ) from None
        return len(data)

    def _note_vault_id(self, identity: AgentIdentity, config: bytes) -> None:
        """Record the repository's own id in the catalog (the config is plaintext JSON)."""
        try:
            doc = json.loads(config)
            vault_id = doc.get("id") if isinstance(doc, dict) else None
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(vault_id, str) and _HEX_ID.match(vault_id):
            with self.catalog.session(tenant_id=identity.tenant_id) as session:
                record_vault_id(session, identity.tenant_id, vault_id)

    def delete(self, identity: AgentIdentity, name: str) -> None:
        """Remove a lock (check_delete first)."""
        self.store_for(identity).delete(name)


def _bisect_after(objects: list[StoredObject], after: str) -> int:
    lo, hi = 0, len(objects)
    while lo < hi:
        mid = (lo + hi) // 2
        if objects[mid].name <= after:
            lo = mid + 1
        else:
            hi = mid
    return lo
