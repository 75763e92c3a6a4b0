"""The syslog receiver: RFC 5424 and RFC 3164 messages over UDP and TCP, turned into SOC events.

Three layers, each usable alone:

- `parse_message` turns one message (bytes) into a `SyslogMessage`; anything it
  cannot read raises `SyslogParseError`, never something else.
- `StreamFramer` splits a TCP byte stream into messages. Each frame is either
  octet-counted (RFC 6587 ``LEN SP MSG``) or newline-delimited, decided by its
  first byte, because relays mix them. A newline inside a counted frame
  (rsyslog puts one there) is stripped, and a frame longer than
  `MAX_MESSAGE` is cut to that size and the rest discarded.
- `SyslogReceiver` listens on UDP and TCP, maps messages to events with the
  rules (`vaultwatch.soc.ingest.syslog_rules`), and hands batches to
  `submit_events` in a worker thread, one batch at a time so a problem and its
  resolution are stored in the order they arrived. The event loop never
  waits on the database; when the database is slow, TCP senders are slowed
  down (the queue is bounded) and UDP datagrams beyond the queue are counted
  as dropped.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.errors import VaultwatchError
from vaultwatch.soc.alarms import MAX_BATCH
from vaultwatch.soc.events import Event, check_event
from vaultwatch.soc.ingest import submit_events

if TYPE_CHECKING:
    from vaultwatch.catalog import Catalog
    from vaultwatch.soc.ingest.syslog_rules import SyslogRules

log = logging.getLogger("vaultwatch.soc.syslog")

MAX_MESSAGE = 64 * 1024
"""Longest message accepted; longer frames are cut to this many bytes."""
DEFAULT_PORT = 1514
"""Unprivileged default for both UDP and TCP (514 needs root or CAP_NET_BIND_SERVICE)."""
BATCH_SIZE = 500
BATCH_INTERVAL = 0.2
QUEUE_LIMIT = 20_000
MAX_CONNECTIONS = 1000
"""Concurrent TCP senders; more are refused (each may hold a frame's worth of memory)."""
SUBMIT_RETRIES = (0.5, 1.0, 2.0)
"""Pauses before the retries of a batch the database refused; then it is given up."""

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
    "uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "clock",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
"""Facility names by code (RFC 5424 table 1, with the names rsyslog uses)."""
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
"""Syslog severity names by code: 0 is the worst."""
SEVERITY_ALIASES = {
    "emergency": 0, "panic": 0, "critical": 2, "error": 3, "warn": 4, "informational": 6,
}  # fmt: skip

_PRI = re.compile(r"<([0-9]{1,3})>")
_VERSION = re.compile(r"([1-9][0-9]{0,2})(?: |$)")
_HEADER_5424 = re.compile(r"(\S+) (\S+) (\S+) (\S+) (\S+) ")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_BSD_TIME = re.compile(
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ 0-3]?[0-9]) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,6})? "
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TAG = re.compile(r"([^\s\[\]:]{1,48})(?:\[([^\]\s]{0,128})\]:?|:)(?: |$)")
"""An RFC 3164 TAG: ``name:``, ``name[pid]:`` or ``name[pid]``, then a space."""
_SD_NAME = re.compile(r'[^ =\]"]{1,32}')
_OCTET_COUNT = re.compile(rb"([0-9]{1,10}) ")
_ONLY_DIGITS = re.compile(rb"[0-9]{0,10}")
_BOM = "\ufeff"
_NIL = "-"
_FRAME_END = b"\r\n\x00"
_BETWEEN_FRAMES = b" \t\r\n\x00"


class SyslogParseError(ValidationError):
    """A syslog message that could not be read; the reason says where it went wrong."""


class SyslogListenError(VaultwatchError):
    """The receiver could not open its sockets (port in use, no permission)."""

    http_status = 503


@dataclass(frozen=True)
class SyslogMessage:
    """One syslog message as its sender wrote it; absent (nil) fields are None."""

    facility: int
    severity: int
    """Syslog severity code: 0 (emerg) to 7 (debug)."""
    message: str
    format: Literal["rfc5424", "rfc3164"]
    timestamp: datetime | None = None
    """Aware UTC; an RFC 3164 time is taken as UTC in the receiving year."""
    hostname: str | None = None
    app_name: str | None = None
    procid: str | None = None
    msgid: str | None = None
    structured_data: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def facility_name(self) -> str:
        return FACILITIES[self.facility]

    @property
    def severity_name(self) -> str:
        return SEVERITIES[self.severity]


def parse_message(data: bytes, *, now: datetime | None = None) -> SyslogMessage:
    """Parse one RFC 5424 or RFC 3164 message; `now` dates RFC 3164 timestamps (no year)."""
    text = data.decode("utf-8", errors="replace").rstrip("\r\n\x00")
    match = _PRI.match(text)
    if match is None:
        raise SyslogParseError("no PRI: a syslog message starts with <0> to <191>")
    pri = int(match.group(1))
    if pri > 191:
        raise SyslogParseError(f"PRI <{pri}> is out of range (0 to 191)")
    facility, severity = divmod(pri, 8)
    rest = text[match.end() :]
    version = _VERSION.match(rest)
    if version is not None:
        if version.group(1) != "1":
            raise SyslogParseError(f"unsupported syslog protocol version {version.group(1)}")
        return _parse_5424(facility, severity, rest[version.end() :])
    return _parse_3164(facility, severity, rest, now or datetime.now(UTC))


def _nil(value: str) -> str | None:
    return None if value == _NIL else value


def _parse_5424(facility: int, severity: int, rest: str) -> SyslogMessage:
    header = _HEADER_5424.match(rest)
    if header is None:
        raise SyslogParseError("truncated RFC 5424 header (timestamp, host, app, procid, msgid)")
    stamp, hostname, app_name, procid, msgid = header.groups()
    timestamp = None if stamp == _NIL else _rfc3339(stamp)
    structured, pos = _parse_structured_data(rest, header.end())
    if pos < len(rest):
        if rest[pos] != " ":
            raise SyslogParseError(f"unexpected {rest[pos]!r} after structured data")
        pos += 1
    message = rest[pos:]
    if message.startswith(_BOM):
        message = message[len(_BOM) :]
    return SyslogMessage(
        facility=facility,
        severity=severity,
        message=message,
        format="rfc5424",
        timestamp=timestamp,
        hostname=_nil(hostname),
        app_name=_nil(app_name),
        procid=_nil(procid),
        msgid=_nil(msgid),
        structured_data=structured,
    )


def _rfc3339(stamp: str) -> datetime:
    match = _RFC3339.fullmatch(stamp)
    if match is None:
        raise SyslogParseError(f"timestamp {stamp[:40]!r} is not RFC 3339")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        if zone in ("Z", "z"):
            offset = timedelta()
        else:
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError("offset out of range")
            offset = timedelta(hours=hours, minutes=minutes) * (1 if zone[0] == "+" else -1)
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), min(int(second), 59),
            micro, tzinfo=timezone(offset),
        )  # fmt: skip
    except ValueError as exc:
        raise SyslogParseError(f"timestamp {stamp[:40]!r} is not a valid time: {exc}") from None
    return moment.astimezone(UTC)


def _parse_structured_data(text: str, pos: int) -> tuple[dict[str, dict[str, str]], int]:
    """RFC 5424 STRUCTURED-DATA at `pos`: the elements and the position after them."""
    if text.startswith(_NIL, pos):
        return {}, pos + 1
    if not text.startswith("[", pos):
        raise SyslogParseError("structured data must be '-' or start with '['")
    elements: dict[str, dict[str, str]] = {}
    while text.startswith("[", pos):
        name = _SD_NAME.match(text, pos + 1)
        if name is None:
            raise SyslogParseError("structured data element without an SD-ID")
        params = elements.setdefault(name.group(), {})
        pos = name.end()
        while text.startswith(" ", pos):
            param = _SD_NAME.match(text, pos + 1)
            if param is None or not text.startswith('="', param.end()):
                raise SyslogParseError(f"bad parameter in structured data element {name.group()!r}")
            value, pos = _sd_value(text, param.end() + 2)
            params.setdefault(param.group(), value)
        if not text.startswith("]", pos):
            raise SyslogParseError(f"structured data element {name.group()!r} is not closed")
        pos += 1
    return elements, pos


def _sd_value(text: str, pos: int) -> tuple[str, int]:
    """A PARAM-VALUE from `pos` to its closing quote, with \\" \\\\ \\] unescaped."""
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text) and text[pos + 1] in '"\\]':
            out.append(text[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    raise SyslogParseError("structured data parameter value is not closed")


def _parse_3164(facility: int, severity: int, rest: str, now: datetime) -> SyslogMessage:
    timestamp: datetime | None = None
    stamp = _BSD_TIME.match(rest)
    if stamp is not None:
        timestamp = _bsd_time(stamp, now)
        rest = rest[stamp.end() :]
    else:
        first, _, after = rest.partition(" ")
        if _RFC3339.fullmatch(first):
            timestamp = _rfc3339(first)
            rest = after
    hostname: str | None = None
    if timestamp is not None:
        # A relay always writes HOSTNAME after the time; a local sender may leave it out,
        # in which case the next word is already the tag ("cron[12]:" or "su:").
        first, _, after = rest.partition(" ")
        if first and not _TAG.fullmatch(first + " "):
            hostname, rest = first, after
    app_name = procid = None
    tag = _TAG.match(rest)
    if tag is not None:
        app_name, procid = tag.group(1), tag.group(2)
        rest = rest[tag.end() :]
    if not rest and app_name is None and hostname is None:
        raise SyslogParseError("empty message")
    return SyslogMessage(
        facility=facility,
        severity=severity,
        message=rest,
        format="rfc3164",
        timestamp=timestamp,
        hostname=hostname,
        app_name=app_name,
        procid=procid or None,
    )


def _bsd_time(match: re.Match[str], now: datetime) -> datetime | None:
    """An RFC 3164 time (no year, no zone) in UTC, in the year that puts it nearest `now`."""
    month = _MONTHS.index(match.group(1)) + 1
    day, hour, minute, second = (int(match.group(i)) for i in range(2, 6))
    now = now.astimezone(UTC)
    for year in (now.year, now.year - 1):
        try:
            moment = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
        except ValueError:  # 29 Feb in a year without it, 31 Apr ...
            continue
        if moment <= now + timedelta(days=1):  # a December message read in January
            return moment
    return None


class StreamFramer:
    """Splits a TCP stream into syslog messages; memory stays within one frame plus one read.

    Each frame is octet-counted when it starts with a digit followed by a
    space, otherwise it runs to the next newline. Counts `oversized` (cut)
    and `broken` (an octet-counted frame cut off by the end of the stream).
    """

    def __init__(self, max_size: int = MAX_MESSAGE) -> None:
        self.max_size = max_size
        self.oversized = 0
        self.broken = 0
        self._buffer = bytearray()
        self._skip = 0
        self._skip_line = False

    def feed(self, data: bytes) -> list[bytes]:
        """The messages completed by `data`, without their framing."""
        self._buffer += data
        frames: list[bytes] = []
        while self._discard() and self._next(frames):
            pass
        return frames

    def finish(self) -> list[bytes]:
        """At the end of the stream: the last newline-less message, if any."""
        frames: list[bytes] = []
        self._discard()
        buffer = self._buffer.lstrip(_BETWEEN_FRAMES)
        counted = _OCTET_COUNT.match(buffer)
        if counted is not None or (buffer and _ONLY_DIGITS.fullmatch(buffer)):
            self.broken += 1
        elif buffer:
            frames.append(bytes(buffer[: self.max_size]).rstrip(_FRAME_END))
        self._buffer.clear()
        return frames

    def _discard(self) -> bool:
        """Drop what is left of a cut frame; False while more of it is still to come."""
        buffer = self._buffer
        if self._skip:
            gone = min(self._skip, len(buffer))
            del buffer[:gone]
            self._skip -= gone
            if self._skip:
                return False
        if self._skip_line:
            end = buffer.find(b"\n")
            if end < 0:
                buffer.clear()
                return False
            del buffer[: end + 1]
            self._skip_line = False
        return True

    def _next(self, frames: list[bytes]) -> bool:
        """Take one frame off the buffer into `frames`; False when the buffer needs more data."""
        buffer = self._buffer
        start = 0
        while start < len(buffer) and buffer[start] in _BETWEEN_FRAMES:
            start += 1
        del buffer[:start]
        if not buffer:
            return False
        if buffer[0] in b"0123456789":
            counted = _OCTET_COUNT.match(buffer)
            if counted is not None:
                return self._counted(frames, int(counted.group(1)), counted.end())
            if _ONLY_DIGITS.fullmatch(buffer):
                return False  # the length field itself is split across reads
        end = buffer.find(b"\n", 0, self.max_size + 1)
        if end < 0:
            if len(buffer) <= self.max_size:
                return False
            self.oversized += 1
            frames.append(bytes(buffer[: self.max_size]).rstrip(_FRAME_END))
            del buffer[: self.max_size]
            self._skip_line = True
            return True
        frames.append(bytes(buffer[:end]).rstrip(_FRAME_END))
        del buffer[: end + 1]
        return True

    def _counted(self, frames: list[bytes], length: int, start: int) -> bool:
        buffer = self._buffer
        keep = min(length, self.max_size)
        if len(buffer) - start < keep:
            return False
        frame = bytes(buffer[start : start + keep]).rstrip(_FRAME_END)
        if frame:
            frames.append(frame)
        if length > keep:
            self.oversized += 1
            self._skip = length - keep
        del buffer[: start + keep]
        return True


@dataclass
class SyslogCounters:
    """What the receiver has seen, for metrics; only the event loop writes them."""

    received: int = 0
    """Messages (datagrams and TCP frames) taken in."""
    parsed: int = 0
    malformed: int = 0
    """Unreadable messages, and events the rules built that failed validation."""
    oversized: int = 0
    """Messages cut to `MAX_MESSAGE`."""
    dropped: int = 0
    """Messages the rules dropped (debug by default, or a rule with drop = true)."""
    overflow: int = 0
    """UDP messages lost because the queue to the database was full."""
    refused: int = 0
    """TCP connections refused because `max_connections` were open."""
    submitted: int = 0
    """Events stored by `submit_events`."""
    batches: int = 0
    """Batches (transactions) those events were stored in."""
    retried: int = 0
    """Batches the database refused and that were tried again."""
    failed: int = 0
    """Events given up after the database refused their batch."""

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receiver: SyslogReceiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.receiver.take_datagram(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        log.debug("syslog UDP socket error: %s", exc)


class SyslogReceiver:
    """Listens for syslog on UDP and TCP and stores what the rules make of it as alarms.

    Ports of 0 pick free ones (see `udp_port`, `tcp_port` after `start`); None
    disables that transport. Sockets are bound with SO_REUSEPORT, so several
    server processes can share a port and the kernel spreads the senders.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        rules: SyslogRules | None = None,
        host: str = "127.0.0.1",
        udp_port: int | None = DEFAULT_PORT,
        tcp_port: int | None = DEFAULT_PORT,
        batch_size: int = BATCH_SIZE,
        batch_interval: float = BATCH_INTERVAL,
        queue_limit: int = QUEUE_LIMIT,
        max_connections: int = MAX_CONNECTIONS,
        retry_pauses: tuple[float, ...] = SUBMIT_RETRIES,
    ) -> None:
        from vaultwatch.soc.ingest.syslog_rules import default_rules  # it imports this module

        if not 1 <= batch_size <= MAX_BATCH:
            raise ValidationError(f"syslog batch size must be between 1 and {MAX_BATCH}")
        self.catalog = catalog
        self.rules = rules if rules is not None else default_rules()
        self.host = host
        self.counters = SyslogCounters()
        self._ports = {"udp": udp_port, "tcp": tcp_port}
        self._batch_size = batch_size
        self._max_connections = max_connections
        self._retry_pauses = retry_pauses
        self._batch_interval = batch_interval
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(queue_limit)
        self._transport: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()

    @property
    def udp_port(self) -> int | None:
        """The bound UDP port (None when UDP is off or not started)."""
        if self._transport is None:
            return None
        return int(self._transport.get_extra_info("sockname")[1])

    @property
    def tcp_port(self) -> int | None:
        """The bound TCP port (None when TCP is off or not started)."""
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Open the sockets and start the batch writer; SyslogListenError if a port is taken."""
        loop = asyncio.get_running_loop()
        try:
            if self._ports["udp"] is not None:
                self._transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self),
                    local_addr=(self.host, self._ports["udp"]),
                    reuse_port=True,
                )
            if self._ports["tcp"] is not None:
                self._server = await asyncio.start_server(
                    self._serve_connection,
                    self.host,
                    self._ports["tcp"],
                    reuse_address=True,
                    reuse_port=True,
                    limit=MAX_MESSAGE,
                )
        except OSError as exc:
            await self.stop()
            raise SyslogListenError(f"cannot listen for syslog on {self.host}: {exc}") from exc
        self._flusher = asyncio.create_task(self._flush_forever(), name="syslog-batches")
        log.info("syslog listening on %s udp=%s tcp=%s", self.host, self.udp_port, self.tcp_port)

    async def stop(self) -> None:
        """Close the sockets and connections, then store what is still queued."""
        if self._transport is not None:
            self._transport.close()
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._flusher is not None:
            await self._queue.put(None)  # the writer stores what is queued, then ends
            await self._flusher
            self._flusher = None
        self._transport = None
        self._server = None

    async def __aenter__(self) -> SyslogReceiver:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def drain(self) -> None:
        """Wait until everything received so far has been handed to the database."""
        while not (self._queue.empty() and self._idle.is_set()):
            await asyncio.sleep(0.01)

    def take_datagram(self, data: bytes, peer: str) -> None:
        """One UDP datagram (one message); dropped and counted when the queue is full."""
        if len(data) > MAX_MESSAGE:
            self.counters.oversized += 1
            data = data[:MAX_MESSAGE]
        event = self._event(data.rstrip(_FRAME_END), peer)
        if event is None:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.counters.overflow += 1

    def _event(self, frame: bytes, peer: str) -> Event | None:
        """The event for one message, or None (unreadable, dropped by the rules, invalid)."""
        counters = self.counters
        counters.received += 1
        try:
            message = parse_message(frame)
        except SyslogParseError as exc:
            counters.malformed += 1
            log.debug("malformed syslog message from %s: %s", peer, exc)
            return None
        except Exception:  # a defect must cost one message, never the listener
            counters.malformed += 1
            log.warning("syslog message from %s could not be parsed", peer, exc_info=True)
            return None
        counters.parsed += 1
        try:
            event = self.rules.apply(message, peer=peer)
            if event is None:
                counters.dropped += 1
                return None
            return check_event(event)
        except ValidationError as exc:
            counters.malformed += 1
            log.debug("syslog message from %s gave no valid event: %s", peer, exc)
            return None
        except Exception:  # a defect must cost one message, never the listener
            counters.malformed += 1
            log.warning("syslog message from %s could not be handled", peer, exc_info=True)
            return None

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = str((writer.get_extra_info("peername") or ("?",))[0])
        if len(self._connections) >= self._max_connections:
            self.counters.refused += 1
            log.debug("syslog connection from %s refused: %d open", peer, len(self._connections))
            writer.close()
            return
        self._connections.add(task)
        framer = StreamFramer()
        try:
            while data := await reader.read(MAX_MESSAGE):
                for frame in framer.feed(data):
                    await self._put(frame, peer)
                self._count_cuts(framer)
            for frame in framer.finish():
                await self._put(frame, peer)
        except (ConnectionError, OSError) as exc:
            log.debug("syslog connection from %s ended: %s", peer, exc)
        finally:
            self._count_cuts(framer)
            self._connections.discard(task)
            writer.close()

    def _count_cuts(self, framer: StreamFramer) -> None:
        self.counters.oversized += framer.oversized
        self.counters.malformed += framer.broken
        framer.oversized = framer.broken = 0

    async def _put(self, frame: bytes, peer: str) -> None:
        event = self._event(frame, peer)
        if event is not None:
            await self._queue.put(event)  # waits when full: TCP senders slow down

    async def _flush_forever(self) -> None:
        """Hand the queue to the database in batches of `batch_size` or `batch_interval`."""
        loop = asyncio.get_running_loop()
        while True:
            self._idle.set()
            first = await self._queue.get()
            self._idle.clear()
            if first is None:
                return
            batch = [first]
            deadline = loop.time() + self._batch_interval
            while len(batch) < self._batch_size:
                if self._queue.empty():
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), left)
                    except TimeoutError:
                        break
                else:
                    item = self._queue.get_nowait()
                if item is None:
                    await self._submit(batch, retries=self._retry_pauses)
                    return
                batch.append(item)
            await self._submit(batch, retries=self._retry_pauses)

    async def _submit(self, batch: list[Event], *, retries: tuple[float, ...]) -> None:
        for pause in (*retries, None):
            try:
                await asyncio.to_thread(submit_events, self.catalog, batch)
            except ValidationError as exc:
                log.error("syslog batch of %d events refused: %s", len(batch), exc)
                break
            except Exception as exc:
                if pause is None:
                    log.error("syslog batch of %d events lost: %s", len(batch), exc)
                    break
                log.warning("storing syslog events failed, retrying in %ss: %s", pause, exc)
                self.counters.retried += 1
                await asyncio.sleep(pause)
            else:
                self.counters.submitted += len(batch)
                self.counters.batches += 1
                return
        self.counters.failed += len(batch)
