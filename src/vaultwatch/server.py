"""The server: setting up a data directory, building the ASGI app for the chosen roles, running it.

Roles let one code base run as separate processes (or nodes) sharing one
catalog and one vault storage: ``gateway`` serves the agent API, ``web`` the
portal and console, ``worker`` the background duties. Every role answers
``/healthz``; what else a role serves is added here as it is built.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from vaultwatch import __version__
from vaultwatch.catalog import Catalog, Role, audit
from vaultwatch.catalog.security import new_token_key
from vaultwatch.catalog.users import count_users, create_user
from vaultwatch.engine.memory import short_gil_slices
from vaultwatch.files import write_private
from vaultwatch.gateway import schemas
from vaultwatch.gateway.asgi import ASGIApp, Message, Receive, Scope, Send
from vaultwatch.gateway.priority import ControlFirstMiddleware, ControlGate
from vaultwatch.gateway.problems import install_problem_handlers, problem_response
from vaultwatch.gateway.routes import OBJECTS, router
from vaultwatch.gateway.service import GatewayService
from vaultwatch.gateway.tls import check_key_pair, create_ca_and_server_cert, fingerprint
from vaultwatch.gateway.vault import VaultAccess
from vaultwatch.protocol import API_PREFIX
from vaultwatch.server_config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SITE,
    PRIVATE_DIR_MODE,
    ROLES,
    SECRET_FILE_MODE,
    SETTINGS_FILE,
    ServerConfigError,
    ServerSettings,
    parse_roles,
    write_settings,
)
from vaultwatch.store.url import open_store

log = logging.getLogger("vaultwatch.server")

_OBJECT_PATH = f"{API_PREFIX}{OBJECTS}/"
"""Where vault objects live: their bodies are pack data, limited and paced on their own."""
STREAM_SUFFIX = "/stream"
"""How the paths of long-lived event streams end (the console's live views)."""


# -- init --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InitResult:
    """What ``server init`` made; the password is shown once and kept nowhere in clear."""

    settings: ServerSettings
    admin_email: str | None
    admin_password: str | None
    ca_fingerprint: str | None


def _write_secret(path: Path, data: bytes) -> None:
    write_private(path, data, mode=SECRET_FILE_MODE, exclusive=True)


def init_server(
    data_dir: Path,
    *,
    catalog_url: str | None = None,
    vault_url: str | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    admin_email: str = "admin@localhost",
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    server_names: list[str] | None = None,
    node_name: str = "",
    site: str = DEFAULT_SITE,
) -> InitResult:
    """Create a data directory: settings, token key, TLS identity, catalog and first administrator.

    With a catalog that already has an administrator (another node of the
    same service initialised it), no second one is made.
    """
    root = Path(os.path.abspath(data_dir))
    if (root / SETTINGS_FILE).exists():
        raise ServerConfigError(f"{root} is already a server data directory")
    if (tls_cert is None) != (tls_key is None):
        raise ServerConfigError("give both --tls-cert and --tls-key, or neither")
    root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    os.chmod(root, PRIVATE_DIR_MODE)

    ca_cert: Path | None
    if tls_cert is not None and tls_key is not None:
        cert_path, key_path = Path(os.path.abspath(tls_cert)), Path(os.path.abspath(tls_key))
        check_key_pair(cert_path, key_path)
        ca_cert = None
    else:
        names = [n for n in ([host] + (server_names or [])) if n not in ("0.0.0.0", "::", "")]
        files = create_ca_and_server_cert(root / "tls", names=names)
        cert_path, key_path, ca_cert = files.cert, files.key, files.ca_cert

    token_key_file = root / "secrets" / "token.key"
    if not token_key_file.exists():
        _write_secret(token_key_file, new_token_key())

    settings = ServerSettings(
        data_dir=root,
        catalog_url=catalog_url or f"sqlite:///{root / 'catalog.db'}",
        vault_url=vault_url or str(root / "vaults"),
        tls_cert=cert_path,
        tls_key=key_path,
        ca_cert=ca_cert,
        token_key_file=token_key_file,
        host=host,
        port=port,
        node_name=node_name,
        site=site,
    )
    store = open_store(settings.vault_url, create=True)
    store.close()

    catalog = Catalog(settings.catalog_url)
    try:
        catalog.upgrade()
        _make_private(settings.catalog_url)
        password: str | None = None
        email: str | None = None
        actor = audit.system_actor("server-init")
        with catalog.session() as session:
            if count_users(session, Role.ADMINISTRATOR) == 0:
                password = secrets.token_urlsafe(18)
                user = create_user(
                    session,
                    email=admin_email,
                    display_name="Administrator",
                    role=Role.ADMINISTRATOR,
                    password=password,
                    actor=actor,
                )
                email = user.email
            audit.record(
                session,
                actor,
                "server.init",
                None,
                target=f"node:{socket.gethostname()}",
                details={"data_dir": str(root), "own_ca": ca_cert is not None},
            )
    finally:
        catalog.dispose()
    write_settings(settings)
    return InitResult(
        settings=settings,
        admin_email=email,
        admin_password=password,
        ca_fingerprint=fingerprint(ca_cert) if ca_cert is not None else None,
    )


def _make_private(catalog_url: str) -> None:
    """A SQLite catalog holds password hashes and credential digests: owner only."""
    from sqlalchemy.engine import make_url

    url = make_url(catalog_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(str(url.database))
        if path.exists():
            os.chmod(path, SECRET_FILE_MODE)


# -- app -------------------------------------------------------------------------------------


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413, except vault uploads.

    Vault uploads have their own (larger) limit, enforced as they stream in;
    everything else is JSON that must never fill the server's memory.
    """

    def __init__(self, app: ASGIApp, limit: int, exempt_prefix: str) -> None:
        self.app = app
        self.limit = limit
        self.exempt_prefix = exempt_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.exempt_prefix):
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.limit:
                    await self._refuse(scope, receive, send)
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, f"the request body is larger than {self.limit} bytes")
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, f"the request body is larger than {self.limit} bytes")
        await response(scope, receive, send)


def build_app(
    settings: ServerSettings,
    roles: tuple[str, ...] | list[str] | str | None = None,
    *,
    catalog: Catalog | None = None,
    background: bool = False,
) -> FastAPI:
    """The ASGI app serving ``roles`` (default: the settings' roles).

    With `background`, the app also runs the operations center's duties and
    receivers while it serves (`vaultwatch.soc.runtime`); ``server run`` asks
    for that, an app built for a test does not.
    """
    chosen = parse_roles(roles if roles is not None else settings.roles)
    own_catalog = catalog is None
    cat = catalog or Catalog(settings.catalog_url)
    vaults: VaultAccess | None = None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime = None
        try:
            if background:
                from vaultwatch.soc.runtime import SocRuntime

                runtime = SocRuntime(cat, settings, chosen)
                await runtime.start()
            with short_gil_slices():
                yield
        finally:
            if runtime is not None:
                await runtime.stop()
            if vaults is not None:
                vaults.close()
            if own_catalog:
                cat.dispose()

    app = FastAPI(
        title="Vaultwatch API",
        version=__version__,
        summary="Agent enrollment, vault access, heartbeats and job reports; the operations"
        " center's status, events, alarms and incidents.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.roles = chosen
    app.state.catalog = cat
    install_problem_handlers(app)

    @app.get("/healthz", response_model=schemas.Health, tags=["health"])
    def healthz() -> schemas.Health:
        """Liveness: the process is up and serving these roles."""
        return schemas.Health(status="ok", roles=list(chosen), version=__version__)

    if "gateway" in chosen:
        cat.check_schema()
        vaults = VaultAccess(settings, cat)
        app.state.gateway = GatewayService(cat, settings.token_key(), vaults, settings.node)
        app.include_router(router)
    if "web" in chosen:
        from vaultwatch.soc.api import router as soc_router
        from vaultwatch.web.app import install_web

        cat.check_schema()
        app.include_router(soc_router)
        install_web(app, cat, settings)
    if "gateway" in chosen or "web" in chosen:
        schema = app.openapi()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
            schemas.Problem.model_json_schema()
        )
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_json_bytes,
        exempt_prefix=_OBJECT_PATH,
    )
    app.state.control_gate = ControlGate()
    app.add_middleware(
        ControlFirstMiddleware,
        gate=app.state.control_gate,
        is_bulk=is_bulk_transfer,
        is_control=is_control_request,
    )
    return app


def is_bulk_transfer(scope: Scope) -> bool:
    """A vault object upload or download: its body is pack data, megabytes long."""
    return scope.get("method") in ("PUT", "GET") and str(scope.get("path", "")).startswith(
        _OBJECT_PATH
    )


def is_control_request(scope: Scope) -> bool:
    """A short agent API request (heartbeat, job report, listing ...) or a health probe.

    Streams (``.../stream``: Server-Sent Events) last minutes; counted as
    control they would hold uploads back for as long as a console is open.
    """
    path = str(scope.get("path", ""))
    if path.endswith(STREAM_SUFFIX):
        return False
    return path == "/healthz" or path.startswith(API_PREFIX + "/")


# -- run ---------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging, as JSON lines on stderr (access lines carry no headers, so no credentials)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "vaultwatch": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        },
    }


_DATA_DIR_ENV = "VAULTWATCH_SERVER_DATA_DIR"
_ROLES_ENV = "VAULTWATCH_SERVER_ROLES"
_OVERRIDES_ENV = "VAULTWATCH_SERVER_OVERRIDES"
_SUPERVISOR_ENV = "VAULTWATCH_SERVER_SUPERVISOR"
#: Settings the command line may override for one run (they reach every worker process).
_OVERRIDABLE = ("host", "port", "node_name")
_PR_SET_PDEATHSIG = 1
WORKER_HEALTHCHECK_SECONDS = 60
SUPERVISOR_CHECK_SECONDS = 1.0
"""How often a worker checks that its supervisor still lives (where the kernel cannot tell it)."""


def follow_supervisor(supervisor: int) -> None:
    """Stop this worker (SIGTERM: a graceful shutdown) when its supervisor process dies.

    A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its
    workers, and they would keep the shared port: a restarted server could
    not bind. On Linux the kernel signals the worker at once
    (``PR_SET_PDEATHSIG``); a thread watching the parent pid covers other
    systems and a supervisor that died before this call.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning(
                "cannot ask for the parent-death signal: %s", os.strerror(ctypes.get_errno())
            )

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(SUPERVISOR_CHECK_SECONDS)
        log.warning("the server's supervisor process %d is gone; this worker stops", supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def app_from_environment() -> FastAPI:
    """The app of one worker process when ``run_server`` starts several (uvicorn imports this)."""
    from vaultwatch.server_config import load_settings

    supervisor = os.environ.get(_SUPERVISOR_ENV)
    if supervisor:
        follow_supervisor(int(supervisor))
    settings = load_settings(os.environ[_DATA_DIR_ENV])
    overrides = json.loads(os.environ.get(_OVERRIDES_ENV) or "{}")
    settings = settings.with_overrides(**{k: v for k, v in overrides.items() if k in _OVERRIDABLE})
    return build_app(settings, os.environ.get(_ROLES_ENV) or None, background=True)


def _check_operations_settings(settings: ServerSettings) -> None:
    """Bad [monitors] or [soc.*] settings are refused here, before any process starts."""
    from vaultwatch.soc.runtime import check_settings

    catalog = Catalog(settings.catalog_url)
    try:
        check_settings(catalog, settings)
    finally:
        catalog.dispose()


def port_in_use(host: str, port: int) -> bool:
    """Whether another process listens on ``host:port`` (ServerConfigError if it cannot be bound).

    Bound the way uvicorn binds (SO_REUSEADDR, so connections still closing
    from a previous run do not count), then released at once.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ServerConfigError(f"cannot listen on {host}: {exc.strerror}") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise ServerConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
    return False


def ensure_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on, before anything says it is served."""
    if port_in_use(host, port):
        raise ServerConfigError(
            f"port {port} is in use on {host}: stop what listens there "
            "or choose another port with --port"
        )


def run_server(
    settings: ServerSettings,
    *,
    host: str | None = None,
    port: int | None = None,
    roles: tuple[str, ...] | None = None,
    log_level: str = "info",
    workers: int = 1,
    node_name: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve over TLS until interrupted, in ``workers`` processes sharing the port.

    ``announce`` is called with the URL once the settings, TLS files and the
    port have been checked, so nothing says "serving" for a server that cannot.

    One process runs one event loop: streaming pack uploads through it keeps
    a core busy, and heartbeats would queue behind them. Several workers put
    every core to work; they share the catalog and the vaults, which are
    safe for concurrent writers (SQLite in WAL mode, atomic object writes).
    """
    import uvicorn

    chosen = roles or settings.roles
    overrides = {
        name: value
        for name, value in (("host", host), ("port", port), ("node_name", node_name))
        if value
    }
    settings = settings.with_overrides(**overrides)
    _check_operations_settings(settings)
    os.umask(0o077)  # the catalog's WAL files, spooled uploads and vault files stay private
    for path in (settings.tls_cert, settings.tls_key):
        if not path.is_file():
            raise ServerConfigError(f"TLS file {path} is missing")
    if workers < 1:
        raise ServerConfigError("--workers must be at least 1")
    ensure_port_free(host or settings.host, port or settings.port)
    if announce is not None:
        announce(f"https://{host or settings.host}:{port or settings.port}")
    common: dict[str, Any] = {
        "host": host or settings.host,
        "port": port or settings.port,
        "ssl_certfile": str(settings.tls_cert),
        "ssl_keyfile": str(settings.tls_key),
        "log_config": log_config(log_level),
        "log_level": log_level,
        "server_header": False,
        "timeout_keep_alive": 30,
        "timeout_graceful_shutdown": 30,  # a stalled upload must not hold a restart forever
        "proxy_headers": False,
        # uvicorn kills a worker that does not answer its supervisor's ping within this
        # time; the default 5 s killed workers still starting on a busy 2-core machine,
        # so the server restarted them for ever and never answered.
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
    }
    if workers == 1:
        uvicorn.run(build_app(settings, chosen, background=True), **common)
        return
    os.environ[_DATA_DIR_ENV] = str(settings.data_dir)
    os.environ[_ROLES_ENV] = ",".join(chosen)
    os.environ[_OVERRIDES_ENV] = json.dumps(overrides)
    os.environ[_SUPERVISOR_ENV] = str(os.getpid())
    uvicorn.run("vaultwatch.server:app_from_environment", factory=True, workers=workers, **common)


__all__ = [
    "ROLES",
    "BodyLimitMiddleware",
    "InitResult",
    "app_from_environment",
    "build_app",
    "init_server",
    "run_server",
]
