"""The SNMP trap and inform receiver: network devices' notifications become SOC events.

It speaks SNMP v1 and v2c (configured communities only) and v3 (configured
USM users, SHA authentication and AES privacy) on one UDP port, acknowledges
informs so their senders stop retrying, and maps every notification to an
`Event`: linkDown raises a network alarm that the matching linkUp clears.

The receiver lives inside the server's asyncio loop (pysnmp 7 is asyncio
native); the database is only ever touched from a worker thread, in batches,
so a slow catalog delays alarms but never stalls the receiving of traps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.error import PyAsn1Error
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as snmp_config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto.api import v2c

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import AlarmClass, EventSource, EventType, Severity
from vaultwatch.errors import VaultwatchError
from vaultwatch.soc.events import MAX_GROUP, Event, check_event, clean_text
from vaultwatch.soc.ingest import submit_events

log = logging.getLogger("vaultwatch.soc.snmp")

DEFAULT_PORT = 162
MAX_VARBINDS = 40
"""Varbinds kept as attributes; the rest are counted in ``snmp.varbinds_dropped``."""
MAX_VALUE = 256
MAX_SUMMARY_VARBINDS = 300
"""Characters of varbind text in a summary."""
BATCH_SIZE = 500
MAX_PENDING = 10_000
"""Events waiting for the catalog; beyond it the oldest are dropped (and counted)."""
BATCH_WINDOW = 0.05
"""Seconds a first event waits for others to share its transaction."""
RECEIVE_BUFFER = 4 << 20
"""Socket receive buffer asked for: a trap storm of a few thousand waits in the kernel."""
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

_HEX = re.compile(r"^(0x)?([0-9A-Fa-f]{2}){5,32}$")

# -- OIDs ---------------------------------------------------------------------------------------

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SNMP_TRAP_ENTERPRISE = "1.3.6.1.6.3.1.1.4.3.0"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"
SNMP_TRAP_COMMUNITY = "1.3.6.1.6.3.18.1.4.0"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
_HEADER = {SYS_UPTIME, SNMP_TRAP_OID, SNMP_TRAP_ENTERPRISE, SNMP_TRAP_ADDRESS}
_SECRET = {SNMP_TRAP_COMMUNITY}
"""Never stored: a v1 trap's community is its password."""

TRAP_NAMES = {
    "1.3.6.1.6.3.1.1.5.1": "coldStart",
    "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown",
    "1.3.6.1.6.3.1.1.5.4": "linkUp",
    "1.3.6.1.6.3.1.1.5.5": "authenticationFailure",
    "1.3.6.1.6.3.1.1.5.6": "egpNeighborLoss",
}

_COLUMNS = {
    "1.3.6.1.2.1.2.2.1.1": "ifIndex",
    "1.3.6.1.2.1.2.2.1.2": "ifDescr",
    "1.3.6.1.2.1.2.2.1.7": "ifAdminStatus",
    "1.3.6.1.2.1.2.2.1.8": "ifOperStatus",
    "1.3.6.1.2.1.31.1.1.1.1": "ifName",
    "1.3.6.1.2.1.31.1.1.1.18": "ifAlias",
    "1.3.6.1.2.1.47.1.1.1.1.7": "entPhysicalName",
}
"""Readable names for the columns link traps carry (there is no MIB compiler here)."""

_INDEXED_TABLES = ("1.3.6.1.2.1.2.2.1.", "1.3.6.1.2.1.31.1.1.1.", "1.3.6.1.2.1.47.1.1.1.1.")
"""ifTable, ifXTable, entPhysicalTable: the instance suffix of their columns is the row index."""

_STATUS = {"1": "up", "2": "down", "3": "testing", "5": "dormant", "7": "lowerLayerDown"}

#: trap name -> (severity, type, alarm class); anything else is a WARNING problem.
_RULES: dict[str, tuple[Severity, EventType, AlarmClass | None]] = {
    "linkDown": (Severity.MAJOR, EventType.PROBLEM, AlarmClass.NETWORK),
    "linkUp": (Severity.CLEAR, EventType.RESOLUTION, AlarmClass.NETWORK),
    "egpNeighborLoss": (Severity.MAJOR, EventType.PROBLEM, AlarmClass.NETWORK),
    "authenticationFailure": (Severity.WARNING, EventType.PROBLEM, None),
    "coldStart": (Severity.WARNING, EventType.PROBLEM, None),
    "warmStart": (Severity.INDETERMINATE, EventType.PROBLEM, None),
}
_CLEARS = {"linkUp": "linkDown"}
"""A resolution trap and the problem trap it clears."""


class SnmpListenError(VaultwatchError):
    """The receiver could not open its UDP socket (port in use, no permission for port 162)."""

    http_status = 503


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnmpV3User:
    """A USM user allowed to send: SHA authentication, AES-128 privacy (authPriv).

    Traps are authenticated with keys localized to the *sender's* engine ID,
    so a user sending traps lists those engine IDs; informs use the
    receiver's own engine ID and need none.
    """

    name: str
    auth_key: str
    priv_key: str
    engine_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SnmpReceiverConfig:
    """Where to listen and whom to believe; no community and no user means nothing is accepted."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    communities: tuple[str, ...] = ()
    users: tuple[SnmpV3User, ...] = ()
    engine_id: str | None = None
    """The receiver's SNMP engine ID (hex); fixed, so inform senders' caches stay valid."""
    batch_size: int = BATCH_SIZE
    max_pending: int = MAX_PENDING


def _engine_id_bytes(text: str, what: str) -> bytes:
    cleaned = text.strip().replace(":", "")
    if not _HEX.match(cleaned):
        raise ValidationError(f"{what} must be 5 to 32 bytes of hex, got {text!r}")
    return bytes.fromhex(cleaned.removeprefix("0x"))


def check_config(cfg: SnmpReceiverConfig) -> SnmpReceiverConfig:
    """`cfg` if it can be run; ValidationError says what is wrong."""
    if not 0 <= cfg.port <= 65535:
        raise ValidationError(f"SNMP port must be 0 to 65535, got {cfg.port}")
    if not cfg.host.strip():
        raise ValidationError("SNMP bind host must not be empty")
    for community in cfg.communities:
        if not community or len(community) > 64:
            raise ValidationError("an SNMP community must be 1 to 64 characters")
    if len(set(cfg.communities)) != len(cfg.communities):
        raise ValidationError("SNMP communities must not repeat")
    names = [user.name for user in cfg.users]
    if len(set(names)) != len(names):
        raise ValidationError("SNMPv3 user names must not repeat")
    for user in cfg.users:
        if not 1 <= len(user.name) <= 32:
            raise ValidationError("an SNMPv3 user name must be 1 to 32 characters")
        for what, key in (("authentication", user.auth_key), ("privacy", user.priv_key)):
            if len(key) < 8:
                raise ValidationError(
                    f"SNMPv3 user {user.name!r}: the {what} key must be at least 8 characters"
                )
        for engine_id in user.engine_ids:
            _engine_id_bytes(engine_id, f"SNMPv3 user {user.name!r} engine ID")
    if cfg.engine_id is not None:
        _engine_id_bytes(cfg.engine_id, "the SNMP engine ID")
    if cfg.batch_size < 1 or cfg.max_pending < cfg.batch_size:
        raise ValidationError("SNMP batch size must be at least 1 and at most max_pending")
    return cfg


# -- mapping ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One received trap or inform, its varbinds already text (numeric OID, value)."""

    sender: str
    """The agent's IP address as the datagram came from."""
    varbinds: Sequence[tuple[str, str]]
    version: str = "v2c"
    security_name: str = ""
    inform: bool = False
    occurrence_key: str | None = None


def trap_name(trap_oid: str) -> str:
    """``linkDown`` for the well-known generic traps, the numeric OID for everything else."""
    return TRAP_NAMES.get(trap_oid, trap_oid)


def _label(oid: str) -> str:
    """``ifOperStatus.3`` for known columns, the OID itself otherwise."""
    if oid == SYS_NAME:
        return "sysName"
    for prefix, name in _COLUMNS.items():
        if oid.startswith(prefix + "."):
            return name + oid[len(prefix) :]
    return oid


def _alert_key(varbinds: Iterable[tuple[str, str]]) -> str:
    """The interface (or physical entity) the trap is about: ifIndex, else a row index."""
    body = [(oid, value) for oid, value in varbinds if oid not in _HEADER]
    for oid, value in body:
        if oid.startswith(IF_INDEX + ".") and value.isdigit():
            return value
    for oid, _value in body:
        for table in _INDEXED_TABLES:
            if oid.startswith(table):
                column_and_index = oid[len(table) :].split(".", 1)
                if len(column_and_index) == 2 and column_and_index[1]:
                    return column_and_index[1]
    return ""


def _node(note: Notification) -> str:
    """sysName if the agent sent it, else the v1 agent-addr (or proxy's address), else the sender."""
    values = dict(note.varbinds)
    name = clean_text(values.get(SYS_NAME, ""), 255)
    if name:
        return name
    address = values.get(SNMP_TRAP_ADDRESS, "").strip()
    if address and address != "0.0.0.0":
        return address
    return note.sender


def _value_text(oid: str, value: str) -> str:
    if oid.startswith(("1.3.6.1.2.1.2.2.1.7.", "1.3.6.1.2.1.2.2.1.8.")) and value in _STATUS:
        return _STATUS[value]
    return value


def _summary(name: str, node: str, key: str, varbinds: Sequence[tuple[str, str]]) -> str:
    where = f" interface {key}" if key and name in ("linkDown", "linkUp") else ""
    head = f"SNMP {name} from {node}{where}"
    parts = [
        f"{_label(oid)}={clean_text(_value_text(oid, value), 80)}"
        for oid, value in varbinds
        if oid not in _HEADER and oid not in _SECRET
    ]
    text = ", ".join(parts)
    if len(text) > MAX_SUMMARY_VARBINDS:
        text = text[: MAX_SUMMARY_VARBINDS - 1].rstrip() + "…"
    return f"{head}: {text}" if text else head


def _attributes(note: Notification, trap_oid: str) -> dict[str, str]:
    attributes = {
        "snmp.version": note.version,
        "snmp.sender": note.sender,
        "snmp.trap_oid": trap_oid,
        "snmp.pdu": "inform" if note.inform else "trap",
    }
    if note.security_name:
        attributes["snmp.security_name"] = note.security_name
    kept = [(oid, value) for oid, value in note.varbinds if oid not in _SECRET]
    for oid, value in kept[:MAX_VARBINDS]:
        attributes[oid[:100]] = clean_text(value, MAX_VALUE)
    if len(kept) > MAX_VARBINDS:
        attributes["snmp.varbinds_dropped"] = str(len(kept) - MAX_VARBINDS)
    return attributes


def _group(name: str) -> str:
    group = f"snmp.{name}"
    if len(group) > MAX_GROUP:
        group = group[:MAX_GROUP].rstrip(".")
    return group


def notification_to_event(note: Notification) -> Event:
    """The SOC event a trap or inform stands for (validated; ValidationError if it cannot be one)."""
    values = dict(note.varbinds)
    trap_oid = values.get(SNMP_TRAP_OID, "").strip()
    if not trap_oid:
        raise ValidationError("SNMP notification without snmpTrapOID.0")
    name = trap_name(trap_oid)
    node = _node(note)
    key = _alert_key(note.varbinds)
    severity, kind, alarm_class = _RULES.get(name, (Severity.WARNING, EventType.PROBLEM, None))
    event = Event(
        node=node,
        alert_group=_group(name),
        alert_key=key,
        summary=_summary(name, node, key, note.varbinds),
        severity=severity,
        type=kind,
        source=EventSource.SNMP,
        alarm_class=alarm_class,
        attributes=_attributes(note, trap_oid),
        occurrence_key=note.occurrence_key,
    )
    event = check_event(event)
    if name in _CLEARS:
        # linkUp carries the identifier linkDown derives, so it clears that alarm.
        problem = replace(event, alert_group=_group(_CLEARS[name]), identifier=None)
        event = replace(event, identifier=problem.dedup_identifier)
    return event


def _sender_request_id(model: int, pdu: Any, whole_msg: bytes) -> int:
    """The request-id the sender chose, which its retransmissions repeat.

    For v1/v2c pysnmp swaps in a request-id of its own before the application
    sees the PDU, so the original is read from the message itself.
    """
    if model == 3:
        return int(v2c.apiPDU.get_request_id(pdu))
    message, _rest = ber_decoder.decode(whole_msg, asn1Spec=v2c.Message())
    return int(v2c.apiPDU.get_request_id(v2c.apiMessage.get_pdu(message)))


def _brief(exc: BaseException) -> str:
    """The first line of an error: database errors carry their whole statement."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


# -- the receiver -------------------------------------------------------------------------------


@dataclass
class SnmpReceiverStats:
    """What the receiver has seen since it started."""

    received: int = 0
    """UDP datagrams."""
    notifications: int = 0
    """Traps and informs accepted (right community or USM user)."""
    malformed: int = 0
    """Datagrams that are not SNMP, and notifications that make no event."""
    rejected: int = 0
    """Unknown communities, unknown users, wrong keys."""
    submitted: int = 0
    """Events stored in the catalog."""
    batches: int = 0
    """Transactions those events were stored in."""
    dropped: int = 0
    """Events lost: the queue overflowed, or the catalog refused them."""
    submit_errors: int = 0
    """Failed attempts to store a batch (retried)."""


class _CountingUdpTransport(udp.UdpAsyncioTransport):  # type: ignore[misc]
    """pysnmp's UDP transport, counting datagrams and surviving any one of them."""

    def __init__(self, receiver: SnmpTrapReceiver, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._receiver = receiver

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        self._receiver.count_received()
        self.loop.call_soon(self._dispatch, address, datagram)

    def _dispatch(self, address: Any, datagram: bytes) -> None:
        callback = self._callback_function
        if callback is None:
            return
        try:
            callback(self, address, datagram)
        except Exception as exc:
            self._receiver.count_malformed()
            log.warning("SNMP datagram from %s not understood: %r", address[0], exc)
            log.debug("SNMP datagram from %s", address[0], exc_info=True)


_VERSIONS = {0: "v1", 1: "v2c", 3: "v3"}
_MALFORMED_COUNTERS = (
    ("__SNMPv2-MIB", "snmpInASNParseErrs"),
    ("__SNMPv2-MIB", "snmpInBadVersions"),
)
_REJECTED_COUNTERS = (
    ("__SNMPv2-MIB", "snmpInBadCommunityNames"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels"),
)


class SnmpTrapReceiver:
    """Receives SNMP notifications on UDP and submits them as events in batches.

    ``await start()`` binds the socket (``port`` 0 picks a free one, see
    `port`); ``await stop()`` closes it and stores what is still queued.
    """

    def __init__(self, catalog: Catalog, cfg: SnmpReceiverConfig) -> None:
        self._catalog = catalog
        self._cfg = check_config(cfg)
        self._stats = SnmpReceiverStats()
        self._engine: Any = None
        self._receiver: Any = None
        self._port: int | None = None
        self._pending: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._own_malformed = 0
        self._final_counts: tuple[int, int] | None = None

    @property
    def port(self) -> int:
        """The UDP port bound (the real one when configured as 0)."""
        if self._port is None:
            raise RuntimeError("the SNMP receiver is not started")
        return self._port

    @property
    def engine_id(self) -> str:
        """This receiver's SNMP engine ID in hex (what v3 inform senders discover)."""
        if self._engine is None:
            raise RuntimeError("the SNMP receiver is not started")
        return str(self._mib("__SNMP-FRAMEWORK-MIB", "snmpEngineID").asOctets().hex())

    @property
    def stats(self) -> SnmpReceiverStats:
        """The counters, with the protocol engine's error counts folded in."""
        malformed, rejected = self._final_counts or self._engine_counts()
        self._stats.malformed = self._own_malformed + malformed
        self._stats.rejected = rejected
        return self._stats

    def _mib(self, module: str, name: str) -> Any:
        (symbol,) = self._engine.get_mib_builder().import_symbols(module, name)
        return symbol.syntax

    def _engine_counts(self) -> tuple[int, int]:
        """(malformed, rejected) as the protocol engine counted them (RFC 3418/3414 counters)."""
        if self._engine is None:
            return 0, 0
        malformed = sum(int(self._mib(m, n)) for m, n in _MALFORMED_COUNTERS)
        rejected = sum(int(self._mib(m, n)) for m, n in _REJECTED_COUNTERS)
        return malformed, rejected

    async def start(self) -> None:
        """Bind the UDP socket and begin receiving."""
        if self._engine is not None:
            raise RuntimeError("the SNMP receiver is already started")
        cfg = self._cfg
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((cfg.host, cfg.port))
        except OSError as exc:
            sock.close()
            raise SnmpListenError(
                f"cannot listen for SNMP on {cfg.host}:{cfg.port}: {exc}"
            ) from exc
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # the kernel caps it at net.core.rmem_max
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            engine = self._new_engine()
            transport = _CountingUdpTransport(self, loop)
            await loop.create_datagram_endpoint(lambda: transport, sock=sock)
            snmp_config.add_transport(engine, udp.DOMAIN_NAME, transport)
            self._receiver = ntfrcv.NotificationReceiver(engine, self._on_notification)
        except BaseException:
            sock.close()
            raise
        self._engine = engine
        self._port = int(sock.getsockname()[1])
        self._stopping = False
        self._stop_requested.clear()
        self._final_counts = None
        self._worker = asyncio.create_task(self._submit_loop(), name="snmp-submit")
        log.info(
            "SNMP receiver listening on %s:%d (engine %s)", cfg.host, self._port, self.engine_id
        )

    def _new_engine(self) -> Any:
        """An SNMP engine that knows the configured communities and users."""
        if self._cfg.engine_id is not None:
            own_id = _engine_id_bytes(self._cfg.engine_id, "engine ID")
            engine = snmp_engine.SnmpEngine(snmpEngineID=v2c.OctetString(own_id))
        else:
            engine = snmp_engine.SnmpEngine()
        for index, community in enumerate(self._cfg.communities):
            snmp_config.add_v1_system(engine, f"community-{index}", community)
        for user in self._cfg.users:
            engine_ids: list[bytes | None] = [None]
            engine_ids += [_engine_id_bytes(e, "engine ID") for e in user.engine_ids]
            for engine_id in engine_ids:
                snmp_config.add_v3_user(
                    engine,
                    user.name,
                    snmp_config.USM_AUTH_HMAC96_SHA,
                    user.auth_key,
                    snmp_config.USM_PRIV_CFB128_AES,
                    user.priv_key,
                    securityEngineId=None if engine_id is None else v2c.OctetString(engine_id),
                )
        return engine

    async def stop(self) -> None:
        """Stop receiving, then store what is queued (one attempt) and return."""
        engine = self._engine
        if engine is None:
            return
        self._final_counts = self._engine_counts()
        self._engine = None
        if self._receiver is not None:
            self._receiver.close(engine)
            self._receiver = None
        engine.close_dispatcher()
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        if self._worker is not None:
            await self._worker
            self._worker = None
        self._port = None

    def count_received(self) -> None:
        """Count a datagram arriving."""
        self._stats.received += 1

    def count_malformed(self) -> None:
        """Count a datagram the protocol engine choked on."""
        self._own_malformed += 1

    async def drain(self) -> None:
        """Wait until every event received so far has been handed to the catalog."""
        while self._pending or not self._idle.is_set():
            self._wake.set()
            await asyncio.sleep(0.01)

    # pysnmp calls this for every accepted trap or inform (after acknowledging an inform).
    def _on_notification(
        self,
        engine: Any,
        state_reference: Any,
        context_engine_id: Any,
        context_name: Any,
        varbinds: Any,
        cb_ctx: Any,
    ) -> None:
        self._stats.notifications += 1
        context = engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        address = context.get("transportAddress") or ("0.0.0.0", 0)
        pdu = context.get("pdu")
        inform = pdu is not None and pdu.tagSet == v2c.InformRequestPDU.tagSet
        model = int(context.get("messageProcessingModel", 1))
        occurrence = None
        try:
            if inform:
                request_id = _sender_request_id(model, pdu, context.get("wholeMsg", b""))
                occurrence = f"snmp-inform:{address[0]}:{address[1]}:{request_id}"
            note = Notification(
                sender=str(address[0]),
                varbinds=[
                    (str(oid.prettyPrint()), str(val.prettyPrint())) for oid, val in varbinds
                ],
                version=_VERSIONS.get(model, "v?"),
                security_name=str(context.get("securityName", "")),
                inform=inform,
                occurrence_key=occurrence,
            )
            event = notification_to_event(note)
        except (ValidationError, PyAsn1Error, ValueError, TypeError) as exc:
            self._own_malformed += 1
            log.warning("SNMP notification from %s dropped: %s", address[0], exc)
            return
        self._enqueue(event)

    def _enqueue(self, event: Event) -> None:
        if len(self._pending) >= self._cfg.max_pending:
            self._pending.popleft()
            self._stats.dropped += 1
        self._pending.append(event)
        self._wake.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep before a retry, cut short by stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), seconds)

    async def _submit_loop(self) -> None:
        """Hand queued events to the catalog in batches, in order, from a worker thread."""
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._stopping and len(self._pending) < self._cfg.batch_size:
                await self._pause(BATCH_WINDOW)  # let a burst gather into one transaction
            while self._pending:
                self._idle.clear()
                size = min(self._cfg.batch_size, len(self._pending))
                batch = [self._pending.popleft() for _ in range(size)]
                try:
                    await asyncio.to_thread(submit_events, self._catalog, batch)
                except ValidationError as exc:
                    self._stats.dropped += len(batch)
                    log.error("SNMP events refused by the catalog: %s", _brief(exc))
                except Exception as exc:
                    self._stats.submit_errors += 1
                    if self._stopping:
                        self._stats.dropped += len(batch) + len(self._pending)
                        self._pending.clear()
                        log.error("SNMP events lost at shutdown: %s", _brief(exc))
                        break
                    self._pending.extendleft(reversed(batch))
                    while len(self._pending) > self._cfg.max_pending:
                        self._pending.popleft()
                        self._stats.dropped += 1
                    delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                    failures += 1
                    log.warning(
                        "storing SNMP events failed (%s); retrying in %.1fs", _brief(exc), delay
                    )
                    await self._pause(delay)
                else:
                    failures = 0
                    self._stats.submitted += len(batch)
                    self._stats.batches += 1
            self._idle.set()
            if self._stopping:
                return


__all__ = [
    "DEFAULT_PORT",
    "Notification",
    "SnmpListenError",
    "SnmpReceiverConfig",
    "SnmpReceiverStats",
    "SnmpTrapReceiver",
    "SnmpV3User",
    "check_config",
    "notification_to_event",
    "trap_name",
]
