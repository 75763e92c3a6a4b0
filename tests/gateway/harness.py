"""A real gateway for tests: uvicorn with TLS on loopback, in a thread, on a real catalog.

Tests talk to it over HTTPS exactly as agents do, and look at the catalog and
the vault directories behind it directly.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3
import httpx
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from vaultwatch.catalog import Catalog, Tenant
from vaultwatch.catalog.enrollment import create_enrollment_token
from vaultwatch.catalog.tenants import create_tenant
from vaultwatch.engine.manifest import Manifest
from vaultwatch.server import build_app, init_server
from vaultwatch.server_config import ServerSettings
from vaultwatch.store.http import GatewayStore, RetryPolicy
from vaultwatch.store.local import LocalStore

ACTOR = "user:00000000-0000-0000-0000-000000000001"
TEST_MAX_UPLOAD = 12 * 1024 * 1024


@dataclass(frozen=True)
class EnrolledAgent:
    """An agent enrolled over the API."""

    agent_id: uuid.UUID
    credential: str
    tenant_id: uuid.UUID


@dataclass
class GatewayServer:
    """A running gateway and handles on what is behind it."""

    url: str
    port: int
    settings: ServerSettings
    catalog: Catalog
    engine: str
    ca_context: ssl.SSLContext
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def ca_cert(self) -> Path:
        """The CA agents trust."""
        assert self.settings.ca_cert is not None
        return self.settings.ca_cert

    @property
    def key(self) -> bytes:
        """The server's token key."""
        return self.settings.token_key()

    def tenant(self, name: str | None = None) -> Tenant:
        """A new tenant with a unique name."""
        with self.catalog.session() as session:
            return create_tenant(session, name or f"tenant-{uuid.uuid4().hex[:10]}", actor=ACTOR)

    def token(self, tenant: Tenant, ttl: timedelta = timedelta(hours=1), **kw: Any) -> str:
        """A fresh enrollment token for ``tenant``."""
        with self.catalog.session() as session:
            issued = create_enrollment_token(
                session, tenant.id, key=self.key, created_by=ACTOR, ttl=ttl, **kw
            )
        return issued.plaintext

    def client(self, credential: str | None = None, **kw: Any) -> httpx.Client:
        """An HTTPS client trusting the server's CA (closed at teardown)."""
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        c = httpx.Client(
            base_url=self.url, verify=self.ca_context, headers=headers, timeout=30.0, **kw
        )
        self._clients.append(c)
        return c

    def enroll(self, tenant: Tenant | None = None, hostname: str = "srv1") -> EnrolledAgent:
        """Enroll a new agent over the API (in a new tenant unless one is given)."""
        tenant = tenant or self.tenant()
        r = self.client().post(
            "/api/v1/enroll",
            json={
                "token": self.token(tenant),
                "hostname": hostname,
                "agent_version": "0.1.0",
                "platform": "linux-x86_64",
            },
        )
        assert r.status_code == 201, r.text
        doc = r.json()
        return EnrolledAgent(uuid.UUID(doc["agent_id"]), doc["credential"], tenant.id)

    def store(self, credential: str, **kw: Any) -> GatewayStore:
        """A GatewayStore for ``credential`` that fails fast instead of retrying for long."""
        kw.setdefault("retry", RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05))
        return GatewayStore(self.url, credential, self.ca_cert, timeout=30.0, **kw)

    def vault_dir(self, tenant_id: uuid.UUID) -> Path:
        """The tenant's vault directory on the server."""
        return Path(self.settings.vault_location(str(tenant_id)))

    def vault(self, tenant_id: uuid.UUID) -> LocalStore:
        """The tenant's vault as the server sees it."""
        return LocalStore(self.vault_dir(tenant_id))

    def close_clients(self) -> None:
        """Close every client made by ``client``."""
        for c in self._clients:
            c.close()
        self._clients.clear()


def upload(
    client: httpx.Client, name: str, data: bytes, digest: str | None = None, **params: Any
) -> httpx.Response:
    """PUT an object with its BLAKE3 header (or the given one)."""
    return client.put(
        f"/api/v1/vault/objects/{name}",
        content=data,
        headers={"X-Content-Blake3": digest or blake3.blake3(data).hexdigest()},
        params=params,
    )


def upload_snapshot(client: httpx.Client, data: bytes, packs: list[str] | None = None) -> str:
    """Store a snapshot object as an agent does: its reference manifest first; returns its name."""
    name = content_name(data, "snapshots")
    manifest = Manifest(
        snapshot=name.split("/", 1)[1],
        time=datetime.now(UTC),
        hostname="srv1",
        paths=["/srv"],
        tags=[],
        packs=packs or [],
    )
    answer = upload(client, manifest.name, manifest.to_json())
    assert answer.status_code == 201, answer.text
    answer = upload(client, name, data)
    assert answer.status_code == 201, answer.text
    return name


def heartbeat_body(**changes: Any) -> dict[str, Any]:
    """A valid heartbeat request body (two backup sets), with `changes` applied."""
    body: dict[str, Any] = {
        "agent_version": "1.2.3",
        "hostname": "web-01",
        "platform": "linux-x86_64",
        "free_disk_bytes": 123456789,
        "gateways": {"https://gw1:8443": True, "https://gw2:8443": False},
        "backup_sets": [
            {"name": "etc", "paths": ["/etc"], "mode": "continuous", "rpo_seconds": 900},
            {
                "name": "db",
                "paths": ["/var/lib/db"],
                "mode": "scheduled",
                "rpo_seconds": 86400,
                "schedule": "daily 02:00",
                "excludes": ["*.tmp"],
            },
        ],
    }
    body.update(changes)
    return body


def content_name(data: bytes, kind: str = "data") -> str:
    """The name a content-addressed object must have."""
    h = blake3.blake3(data).hexdigest()
    return f"data/{h[:2]}/{h}" if kind == "data" else f"{kind}/{h}"


@contextmanager
def postgres_database(server_url: URL) -> Iterator[URL]:
    """A fresh PostgreSQL database for one server, dropped afterwards."""
    name = f"vwgw_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield server_url.set(database=name)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


class _ThreadServer(uvicorn.Server):
    """uvicorn without signal handling (it runs in a thread)."""

    def install_signal_handlers(self) -> None:  # for older uvicorn versions
        pass


@contextmanager
def serve(settings: ServerSettings, roles: tuple[str, ...] = ("gateway",)) -> Iterator[int]:
    """Run the app for ``settings`` on a free loopback port over TLS; yields the port."""
    app = build_app(settings, roles)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        ssl_certfile=str(settings.tls_cert),
        ssl_keyfile=str(settings.tls_key),
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=3,
    )
    server = _ThreadServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="gateway", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test gateway did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=10)
        sock.close()


@contextmanager
def running_gateway(
    data_dir: Path, catalog_url: str | None, engine: str, **overrides: Any
) -> Iterator[GatewayServer]:
    """Initialise a data directory and serve its gateway."""
    result = init_server(data_dir, catalog_url=catalog_url)
    settings = result.settings.with_overrides(
        max_upload_bytes=overrides.pop("max_upload_bytes", TEST_MAX_UPLOAD), **overrides
    )
    assert settings.ca_cert is not None
    ca_context = ssl.create_default_context(cafile=str(settings.ca_cert))
    catalog = Catalog(settings.catalog_url)
    try:
        with serve(settings) as port:
            gw = GatewayServer(
                url=f"https://127.0.0.1:{port}",
                port=port,
                settings=settings,
                catalog=catalog,
                engine=engine,
                ca_context=ca_context,
            )
            try:
                yield gw
            finally:
                gw.close_clients()
    finally:
        catalog.dispose()
