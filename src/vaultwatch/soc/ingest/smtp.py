"""The support-mail receiver: customers open and answer support cases by email.

An SMTP server (aiosmtpd) accepts mail only for the configured support
addresses (no open relay) and hands each message to `open_case_from_email`
in a worker thread, in one transaction, so the event loop never waits on the
database. The reply tells the sender's mail server the outcome: 250 with the
case number, 550 with the reason when the message cannot become a case
(stranger, no text), 552 when it is larger than ``max_bytes``. STARTTLS uses
the server's own TLS certificate and is required by default, since cases carry
customer details. The socket uses SO_REUSEPORT, so several worker processes
share the port.

    [soc.support_mail]
    host = "0.0.0.0"
    port = 2525
    addresses = ["support@vaultwatch.example"]
    require_starttls = true
    max_bytes = 1048576
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.users import normalize_email
from vaultwatch.errors import VaultwatchError
from vaultwatch.server_config import ServerConfigError
from vaultwatch.soc.cases import MAX_EMAIL_BYTES, open_case_from_email

if TYPE_CHECKING:
    from vaultwatch.catalog import Catalog

log = logging.getLogger("vaultwatch.soc.support_mail")

DEFAULT_PORT = 2525
"""Unprivileged default (25 needs root or CAP_NET_BIND_SERVICE); a relay or port forward sits in front."""
SESSION_TIMEOUT = 60.0
"""Seconds a sender may stay silent before the connection is closed."""
_KNOWN = frozenset({"host", "port", "addresses", "require_starttls", "max_bytes"})


class SupportMailListenError(VaultwatchError):
    """The receiver could not open its socket (port in use, no permission)."""

    http_status = 503


@dataclass(frozen=True)
class SupportMailSettings:
    """The ``[soc.support_mail]`` table, checked."""

    addresses: frozenset[str]
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    require_starttls: bool = True
    max_bytes: int = MAX_EMAIL_BYTES

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> SupportMailSettings:
        """Read the table; unknown or bad settings are a ServerConfigError naming them."""
        where = "[soc.support_mail]"
        unknown = sorted(set(table) - _KNOWN)
        if unknown:
            raise ServerConfigError(f"{where} has unknown setting(s) {', '.join(unknown)}")
        host = table.get("host", "127.0.0.1")
        if not isinstance(host, str) or not host:
            raise ServerConfigError(f"{where} host must be a host name or address")
        port = table.get("port", DEFAULT_PORT)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ServerConfigError(f"{where} port must be a port (0-65535)")
        raw = table.get("addresses")
        if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
            raise ServerConfigError(
                f"{where} addresses must be a non-empty list of the support addresses"
            )
        try:
            addresses = frozenset(normalize_email(a) for a in raw)
        except ValidationError as exc:
            raise ServerConfigError(f"{where} addresses: {exc}") from None
        starttls = table.get("require_starttls", True)
        if not isinstance(starttls, bool):
            raise ServerConfigError(f"{where} require_starttls must be true or false")
        limit = table.get("max_bytes", MAX_EMAIL_BYTES)
        if (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 1 <= limit <= MAX_EMAIL_BYTES
        ):
            raise ServerConfigError(f"{where} max_bytes must be from 1 to {MAX_EMAIL_BYTES}")
        return cls(
            addresses=addresses,
            host=host,
            port=port,
            require_starttls=starttls,
            max_bytes=limit,
        )


def store_email(catalog: Catalog, message: bytes) -> int:
    """Open or answer a case from `message` in one transaction; its number (worker thread only)."""
    with catalog.write_turn(), catalog.session() as session:
        case = open_case_from_email(session, message)
        session.flush()
        return int(case.id)


class _SupportMailHandler:
    """aiosmtpd hooks: accept the support addresses only, store each message as a case."""

    def __init__(self, catalog: Catalog, addresses: frozenset[str]) -> None:
        self.catalog = catalog
        self.addresses = addresses

    async def handle_RCPT(  # aiosmtpd calls the hooks by these names
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        try:
            wanted = normalize_email(address)
        except ValidationError:
            wanted = ""
        if wanted not in self.addresses:
            return f"550 5.7.1 {address[:320]}: no such support address here (no relaying)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # aiosmtpd calls the hooks by these names
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        data = envelope.original_content or envelope.content or b""
        message = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
        try:
            number = await asyncio.to_thread(store_email, self.catalog, message)
        except ValidationError as exc:
            log.info("support mail from %s refused: %s", envelope.mail_from, exc)
            reason = " ".join(str(exc).split())[:400]
            return f"550 5.7.1 {reason}"
        except Exception:  # the sender's server retries a temporary failure
            log.exception("support mail from %s could not be stored", envelope.mail_from)
            return "451 4.3.0 the message could not be stored now; try again later"
        log.info("support mail from %s stored on case #%d", envelope.mail_from, number)
        return f"250 2.0.0 stored on case #{number}"


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    """The STARTTLS context: the server's own certificate, TLS 1.2 or newer."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class SupportMailReceiver:
    """Listens for support mail; a port of 0 picks a free one (see `port` after `start`)."""

    def __init__(
        self,
        catalog: Catalog,
        settings: SupportMailSettings,
        *,
        tls_cert: Path,
        tls_key: Path,
        hostname: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.hostname = hostname or socket.gethostname()
        self._tls = server_tls(tls_cert, tls_key)
        self._handler = _SupportMailHandler(catalog, settings.addresses)
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    @property
    def port(self) -> int | None:
        """The bound port (None when not started)."""
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    def _protocol(self) -> SMTP:
        protocol = SMTP(
            self._handler,
            data_size_limit=self.settings.max_bytes,
            hostname=self.hostname,
            ident="Vaultwatch support mail",
            tls_context=self._tls,
            require_starttls=self.settings.require_starttls,
            timeout=SESSION_TIMEOUT,
        )
        self._sessions.add(protocol)
        return protocol

    async def start(self) -> None:
        """Open the socket; SupportMailListenError if the port is taken."""
        loop = asyncio.get_running_loop()
        host, port = self.settings.host, self.settings.port
        try:
            self._server = await loop.create_server(
                self._protocol, host, port, reuse_address=True, reuse_port=True
            )
        except OSError as exc:
            raise SupportMailListenError(
                f"cannot listen for support mail on {host}:{port}: {exc}"
            ) from exc
        log.info("support mail listening on %s port %s", host, self.port)

    async def stop(self) -> None:
        """Stop accepting mail and hang up on senders; a message being stored finishes in its thread."""
        if self._server is not None:
            self._server.close()
            for protocol in list(self._sessions):
                if protocol.transport is not None:
                    protocol.transport.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SupportMailReceiver:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
