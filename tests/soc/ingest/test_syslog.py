"""The syslog receiver: parser, TCP framing, and real senders (util-linux logger, rsyslog).

Receiver tests run a SyslogReceiver on its own event loop in a thread, as the
server does, with a real catalog (SQLite and PostgreSQL), and assert the
alarm rows that the messages produced.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import Alarm, AlarmClass, EventSource, Severity
from vaultwatch.soc.ingest.syslog import (
    MAX_MESSAGE,
    StreamFramer,
    SyslogCounters,
    SyslogListenError,
    SyslogParseError,
    SyslogReceiver,
    parse_message,
)
from vaultwatch.soc.ingest.syslog_rules import parse_rules

REPO_ROOT = Path(__file__).resolve().parents[3]
LOGGER = "/usr/bin/logger"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)

# -- parser --------------------------------------------------------------------------------------


def test_parse_rfc5424_with_structured_data() -> None:
    raw = (
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 8710 ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="App\\"lic\\]ation"]'
        b'[examplePriority@32473 class="high"] An application event'
    )
    message = parse_message(raw)
    assert (message.facility, message.severity) == (20, 5)
    assert (message.facility_name, message.severity_name) == ("local4", "notice")
    assert message.format == "rfc5424"
    assert message.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert message.hostname == "mymachine.example.com"
    assert (message.app_name, message.procid, message.msgid) == ("evntslog", "8710", "ID47")
    assert message.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": 'App"lic]ation'},
        "examplePriority@32473": {"class": "high"},
    }
    assert message.message == "An application event"


def test_parse_rfc5424_bom_nil_values_and_offset() -> None:
    raw = "<34>1 2026-03-01T01:30:00.5+02:00 - - - - - \ufeffsu failed on /dev/pts/8 ✓".encode()
    message = parse_message(raw)
    assert message.timestamp == datetime(2026, 2, 28, 23, 30, 0, 500000, tzinfo=UTC)
    assert message.hostname is None
    assert message.app_name is None and message.procid is None and message.msgid is None
    assert message.structured_data == {}
    assert message.message == "su failed on /dev/pts/8 ✓"


def test_parse_rfc5424_nil_timestamp_and_no_message() -> None:
    message = parse_message(b'<14>1 - host app - - [a@1 b=""]\n')
    assert message.timestamp is None
    assert message.structured_data == {"a@1": {"b": ""}}
    assert message.message == ""


def test_parse_rfc3164_with_pid() -> None:
    message = parse_message(b"<86>Jun  5 07:08:09 web-1 sshd[4242]: Accepted publickey", now=NOW)
    assert (message.facility_name, message.severity_name) == ("authpriv", "info")
    assert message.format == "rfc3164"
    assert message.timestamp == datetime(2026, 6, 5, 7, 8, 9, tzinfo=UTC)
    assert (message.hostname, message.app_name, message.procid) == ("web-1", "sshd", "4242")
    assert message.message == "Accepted publickey"


def test_parse_rfc3164_without_hostname() -> None:
    """A local sender (or /dev/log) leaves HOSTNAME out: the word after the time is the tag."""
    message = parse_message(b"<13>Jun 15 11:00:00 cron[12]: job done", now=NOW)
    assert message.hostname is None
    assert (message.app_name, message.procid, message.message) == ("cron", "12", "job done")


def test_parse_rfc3164_december_message_read_in_january_is_last_year() -> None:
    january = datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC)
    message = parse_message(b"<13>Dec 31 23:59:58 host app: late", now=january)
    assert message.timestamp == datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)


def test_parse_rfc3164_with_rfc3339_time_as_rsyslog_writes_it() -> None:
    message = parse_message(b"<11>2026-12-02T02:46:23.5-01:00 vm kernel: eth0 NIC Link is Down")
    assert message.timestamp == datetime(2026, 12, 2, 3, 46, 23, 500000, tzinfo=UTC)
    assert (message.hostname, message.app_name) == ("vm", "kernel")
    assert message.message == "eth0 NIC Link is Down"


def test_parse_rfc3164_without_timestamp_keeps_everything_as_message() -> None:
    """RFC 3164 4.3.3: what has no valid header is content (a truncated time too)."""
    message = parse_message(b"<13>Jun 15 11:0", now=NOW)
    assert message.timestamp is None and message.hostname is None
    assert message.message == "Jun 15 11:0"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "no PRI"),
        (b"hello world", "no PRI"),
        (b"<abc>1 - - - - - -", "no PRI"),
        (b"<1234>Jun 15 11:00:00 h a: x", "no PRI"),
        (b"<192>Jun 15 11:00:00 h a: x", "out of range"),
        (b"<13>", "empty message"),
    ],
)
def test_bad_pri_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(SyslogParseError, match=reason):
        parse_message(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"<13>1", "truncated"),
        (b"<13>1 2026-01-01T00:00:00Z host app", "truncated"),
        (b"<13>1 2026-01-01T00:00:00Z host app - ID", "truncated"),
        (b'<13>1 2026-01-01T00:00:00Z host app - ID [a@1 k="v', "not closed"),
        (b'<13>1 2026-01-01T00:00:00Z host app - ID [a@1 k="v"', "not closed"),
        (b"<13>1 2026-01-01T00:00:00Z host app - ID [a@1 k=v]", "bad parameter"),
        (b"<13>1 2026-01-01T00:00:00Z host app - ID x", "'-' or start with '['"),
        (b"<13>1 2026-01-01T00:00:00Z host app - ID [a@1]x", "unexpected"),
        (b"<13>1 2026-13-01T00:00:00Z host app - - -", "not a valid time"),
        (b"<13>1 yesterday host app - - -", "not RFC 3339"),
        (b"<13>2 2026-01-01T00:00:00Z host app - - -", "version 2"),
    ],
)
def test_truncated_or_broken_rfc5424_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(SyslogParseError, match=re.escape(reason)):
        parse_message(raw)


def test_parse_errors_are_validation_errors() -> None:
    assert issubclass(SyslogParseError, ValidationError)


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    message = parse_message(b"<13>1 - host app - - - caf\xe9 \xff\xfe")
    assert message.message == "caf\ufffd \ufffd\ufffd"


def test_random_and_mutated_bytes_only_ever_raise_parse_errors() -> None:
    rng = random.Random(5424)
    seeds = [
        b'<165>1 2003-10-11T22:14:15.003Z host app 1 ID [x@1 a="b"] msg',
        b"<86>Jun  5 07:08:09 web-1 sshd[4242]: Accepted",
    ]
    samples = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80))) for _ in range(500)]
    for seed in seeds:
        for _ in range(1500):
            mutated = bytearray(seed)
            for _ in range(rng.randrange(1, 6)):
                mutated[rng.randrange(len(mutated))] = rng.choice(b'<>[]"\\ =-:0129\x00\n\xff')
            samples.append(bytes(mutated[: rng.randrange(1, len(mutated) + 1)]))
    parsed = 0
    for sample in samples:
        try:
            parse_message(sample, now=NOW)
            parsed += 1
        except SyslogParseError:
            pass
    assert 0 < parsed < len(samples)


# -- TCP framing ---------------------------------------------------------------------------------

M1 = b"<13>1 - h1 app - - - first"
M2 = b"<13>Jun 15 11:00:00 h2 app: second"
M3 = b"<13>1 - h3 app - - - third with a\nnewline"


def counted(message: bytes, trailer: bytes = b"") -> bytes:
    body = message + trailer
    return str(len(body)).encode() + b" " + body


def test_octet_counted_with_newline_inside_the_count() -> None:
    """rsyslog counts the newline its template ends with; it is not part of the message."""
    framer = StreamFramer()
    assert framer.feed(counted(M1, b"\n") + counted(M2, b"\r\n")) == [M1, M2]


def test_octet_counted_keeps_newlines_inside_the_message() -> None:
    assert StreamFramer().feed(counted(M3)) == [M3]


def test_mixed_framing_in_one_stream() -> None:
    stream = counted(M1) + M2 + b"\n" + counted(M3, b"\n") + b"\n\n" + M1 + b"\r\n" + counted(M2)
    assert StreamFramer().feed(stream) == [M1, M2, M3, M1, M2]


def test_frames_split_across_reads_at_every_byte() -> None:
    stream = counted(M1) + M2 + b"\n" + counted(M3, b"\n") + b"12" + b"34 " + b"x" * 1234 + M1
    expected = StreamFramer().feed(stream)
    assert expected[:3] == [M1, M2, M3] and len(expected) == 4
    framer = StreamFramer()
    pieces: list[bytes] = []
    for i in range(len(stream)):
        pieces += framer.feed(stream[i : i + 1])
    assert pieces == expected
    assert framer.finish() == [M1]


def test_a_digit_line_that_is_no_octet_count_is_newline_framed() -> None:
    framer = StreamFramer()
    assert framer.feed(b"2026-01-01 not syslog\n" + M1 + b"\n") == [b"2026-01-01 not syslog", M1]


def test_oversized_counted_frame_is_cut_and_the_stream_stays_in_step() -> None:
    big = b"<13>1 - h app - - - " + b"A" * (MAX_MESSAGE * 2)
    framer = StreamFramer()
    frames: list[bytes] = []
    stream = counted(big) + counted(M1) + M2 + b"\n"
    for i in range(0, len(stream), 4096):
        frames += framer.feed(stream[i : i + 4096])
    assert [len(f) for f in frames] == [MAX_MESSAGE, len(M1), len(M2)]
    assert frames[0] == big[:MAX_MESSAGE] and frames[1:] == [M1, M2]
    assert framer.oversized == 1


def test_oversized_line_is_cut_and_the_rest_of_it_discarded() -> None:
    big = b"<13>1 - h app - - - " + b"B" * (MAX_MESSAGE * 3)
    framer = StreamFramer()
    frames: list[bytes] = []
    stream = big + b"\n" + M1 + b"\n"
    for i in range(0, len(stream), 10_000):
        frames += framer.feed(stream[i : i + 10_000])
    assert frames == [big[:MAX_MESSAGE], M1]
    assert framer.oversized == 1
    at_once = StreamFramer()
    assert at_once.feed(stream + M2 + b"\n") == [big[:MAX_MESSAGE], M1, M2]


def test_end_of_stream_inside_a_counted_frame_is_broken() -> None:
    framer = StreamFramer()
    assert framer.feed(b"100 <13>1 - h a - - - cut") == []
    assert framer.finish() == []
    assert framer.broken == 1


# -- a receiver on its own event loop ------------------------------------------------------------


class Running:
    """A started SyslogReceiver whose asyncio loop runs in a thread, as in the server."""

    def __init__(self, receiver: SyslogReceiver, loop: asyncio.AbstractEventLoop) -> None:
        self.receiver = receiver
        self.loop = loop

    @property
    def udp_port(self) -> int:
        assert self.receiver.udp_port is not None
        return self.receiver.udp_port

    @property
    def tcp_port(self) -> int:
        assert self.receiver.tcp_port is not None
        return self.receiver.tcp_port

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def wait(self, done: Callable[[SyslogCounters], bool], timeout: float = 10) -> SyslogCounters:
        """Wait until `done(counters)` and everything taken in is stored."""
        deadline = time.monotonic() + timeout
        while not done(self.receiver.counters):
            if time.monotonic() > deadline:
                pytest.fail(f"syslog receiver never got there: {self.receiver.counters}")
            time.sleep(0.02)
        self.run(asyncio.wait_for(self.receiver.drain(), timeout))
        return self.receiver.counters


@contextmanager
def running(catalog: Catalog, **options: Any) -> Iterator[Running]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="syslog-test-loop", daemon=True)
    thread.start()
    options = {"udp_port": 0, "tcp_port": 0, "batch_interval": 0.05, **options}
    try:

        async def make() -> SyslogReceiver:
            receiver = SyslogReceiver(catalog, host="127.0.0.1", **options)
            await receiver.start()
            return receiver

        receiver = asyncio.run_coroutine_threadsafe(make(), loop).result(timeout=30)
        harness = Running(receiver, loop)
        try:
            yield harness
        finally:
            harness.run(receiver.stop())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Iterator[Catalog]:
    """A migrated SQLite catalog, for receiver behaviour that does not depend on the engine."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.upgrade()
    try:
        yield catalog
    finally:
        catalog.dispose()


def alarms(catalog: Catalog) -> list[Alarm]:
    with catalog.session() as session:
        rows = list(session.scalars(select(Alarm).order_by(Alarm.id)))
        session.expunge_all()
        return rows


def the_alarm(catalog: Catalog, **where: Any) -> Alarm:
    found = [a for a in alarms(catalog) if all(getattr(a, k) == v for k, v in where.items())]
    assert len(found) == 1, [(a.node, a.alert_group, a.alert_key) for a in alarms(catalog)]
    return found[0]


def submitted(count: int) -> Callable[[SyslogCounters], bool]:
    """A `Running.wait` condition: at least `count` events stored."""
    return lambda counters: counters.submitted >= count


def logger(*args: str) -> None:
    done = subprocess.run([LOGGER, *args], capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr


def send_tcp(port: int, *chunks: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        for chunk in chunks:
            conn.sendall(chunk)
            time.sleep(0.005)  # separate reads on the server's side


def send_udp(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, ("127.0.0.1", port))


LOGGER_MODES = [
    pytest.param(["--udp", "--rfc5424"], id="udp-5424"),
    pytest.param(["--udp", "--rfc3164"], id="udp-3164"),
    pytest.param(["--tcp", "--rfc5424"], id="tcp-5424"),
    pytest.param(["--tcp", "--rfc3164", "--octet-count"], id="tcp-3164-octet"),
    pytest.param(["--tcp", "--rfc5424", "--octet-count"], id="tcp-5424-octet"),
]


@pytest.mark.parametrize("mode", LOGGER_MODES)
def test_logger_link_down_repeats_then_link_up_clears(catalog: Catalog, mode: list[str]) -> None:
    with running(catalog) as rx:
        port = rx.tcp_port if "--tcp" in mode else rx.udp_port
        send = ["--server", "127.0.0.1", "--port", str(port), *mode, "-t", "kernel"]
        for sent in range(1, 4):
            logger(*send, "-p", "user.err", "--", "e1000e: eth7 NIC Link is Down")
            rx.wait(submitted(sent))
        alarm = the_alarm(catalog, alert_group="syslog.link")
        hostname = socket.gethostname()
        assert alarm.node in (hostname, hostname.split(".")[0])
        assert (alarm.alert_key, alarm.tally) == ("eth7", 3)
        assert alarm.severity == Severity.MAJOR
        assert alarm.alarm_class == AlarmClass.NETWORK
        assert alarm.source == EventSource.SYSLOG
        assert alarm.summary == "Link down on eth7"
        assert alarm.cleared_at is None
        assert alarm.attributes["syslog_rule"] == "nic-link-down"
        logger(*send, "-p", "user.notice", "--", "e1000e: eth7 NIC Link is Up")
        counters = rx.wait(lambda c: c.submitted >= 4)
    cleared = the_alarm(catalog, alert_group="syslog.link")
    assert cleared.id == alarm.id
    assert cleared.severity == Severity.CLEAR and cleared.cleared_at is not None
    assert (counters.received, counters.parsed, counters.malformed) == (4, 4, 0)


def test_logger_structured_data_and_default_rule(sqlite_catalog: Catalog) -> None:
    with running(sqlite_catalog) as rx:
        logger(
            "--server", "127.0.0.1", "--port", str(rx.udp_port), "--udp", "--rfc5424",
            "-t", "backupd", "-p", "daemon.crit", "--msgid", "QUOTA",
            "--sd-id", "vault@32473", "--sd-param", 'tenant="acme"', "--", "vault nearly full",
        )  # fmt: skip
        rx.wait(lambda c: c.submitted >= 1)
    alarm = the_alarm(sqlite_catalog, alert_group="syslog.daemon")
    assert alarm.alert_key == "backupd"
    assert alarm.severity == Severity.CRITICAL
    assert alarm.summary == "vault nearly full"
    assert alarm.attributes["msgid"] == "QUOTA"
    assert alarm.attributes["sd.vault@32473.tenant"] == "acme"
    assert alarm.attributes["syslog_rule"] == "default"


def test_debug_is_dropped_by_default(sqlite_catalog: Catalog) -> None:
    with running(sqlite_catalog) as rx:
        base = ["--server", "127.0.0.1", "--port", str(rx.udp_port), "--udp", "-t", "chatty"]
        logger(*base, "-p", "user.debug", "noise")
        logger(*base, "-p", "user.warning", "signal")
        counters = rx.wait(lambda c: c.submitted >= 1 and c.dropped >= 1)
    assert (counters.received, counters.dropped, counters.submitted) == (2, 1, 1)
    assert [a.summary for a in alarms(sqlite_catalog)] == ["signal"]
    assert alarms(sqlite_catalog)[0].severity == Severity.WARNING


def test_tcp_stream_with_mixed_framing_garbage_and_hostile_text(catalog: Catalog) -> None:
    hostile = b"<11>1 - evil\x1b[2Jhost app - - - \x1b[31mred\x1b[0m alert\x07\x00 \xe2\x80\xaeRTL"
    good = [
        b"<11>1 - db1 kernel - - - blk_update_request: I/O error, dev sdb, sector 9",
        b"<11>Jun 15 11:00:00 db2 kernel: Buffer I/O error on dev sdc1, logical block 0",
    ]
    stream = (
        counted(good[0], b"\n")
        + b"this is not syslog\n"
        + good[1]
        + b"\n"
        + b"\xff\xfe\x00garbage\n"
        + counted(hostile)
    )
    with running(catalog) as rx:
        cut = len(stream) // 3
        send_tcp(rx.tcp_port, stream[:7], stream[7:cut], stream[cut:-5], stream[-5:])
        counters = rx.wait(lambda c: c.received >= 5 and c.submitted >= 3)
    assert (counters.received, counters.parsed, counters.malformed) == (5, 3, 2)
    sdb = the_alarm(catalog, node="db1")
    assert (sdb.alert_group, sdb.alert_key, sdb.alarm_class) == (
        "syslog.kernel.io",
        "sdb",
        "hardware",
    )
    assert the_alarm(catalog, node="db2").alert_key == "sdc1"
    evil = the_alarm(catalog, alert_key="app")
    for text in (evil.node, evil.summary):
        assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch == "\u202e" for ch in text)
    assert evil.summary == "[31mred[0m alert RTL"


def test_malformed_datagrams_are_counted_and_the_server_keeps_going(
    sqlite_catalog: Catalog,
) -> None:
    rng = random.Random(3164)
    junk = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 300))) for _ in range(50)]
    junk = [j for j in junk if not j.startswith(b"<")] + [b"<999>x", b"<13>", b"<13>1 - h"]
    with running(sqlite_catalog) as rx:
        send_udp(rx.udp_port, *junk, b"<11>1 - after-junk app - - - still alive")
        counters = rx.wait(lambda c: c.submitted >= 1 and c.received >= len(junk) + 1)
    assert counters.malformed == len(junk)
    assert the_alarm(sqlite_catalog, node="after-junk").summary == "still alive"


def test_oversized_tcp_message_is_cut_and_the_next_one_arrives(sqlite_catalog: Catalog) -> None:
    big = b"<11>1 - big app - - - " + b"x" * (MAX_MESSAGE + 5000)
    with running(sqlite_catalog) as rx:
        send_tcp(rx.tcp_port, counted(big), big + b"\n", b"<11>1 - small app - - - fine\n")
        counters = rx.wait(lambda c: c.submitted >= 3)
    assert counters.oversized == 2
    assert the_alarm(sqlite_catalog, node="big").tally == 2
    assert len(the_alarm(sqlite_catalog, node="big").summary) <= 1000
    assert the_alarm(sqlite_catalog, node="small").summary == "fine"


def test_events_are_batched_and_a_flood_is_one_alarm(catalog: Catalog) -> None:
    count = 1200
    message = b"<11>1 - flood app - - - disk is on fire"
    with running(catalog, batch_size=500, batch_interval=0.2) as rx:
        send_tcp(rx.tcp_port, b"".join(counted(message) for _ in range(count)))
        counters = rx.wait(lambda c: c.submitted >= count)
    assert counters.submitted == count
    assert 3 <= counters.batches <= 6
    assert the_alarm(catalog, node="flood").tally == count


def test_rules_are_used_by_the_receiver(sqlite_catalog: Catalog) -> None:
    rules = parse_rules(
        """
        [[rule]]
        name = "backup-failed"
        [rule.match]
        app_name = "vaultwatch-*"
        message = 'backup of (?P<set>\\S+) failed'
        [rule.set]
        alert_group = "backup.failed"
        alert_key = "{set}"
        severity = "critical"
        summary = "Backup {set} failed on {hostname}"
        """
    )
    with running(sqlite_catalog, rules=rules) as rx:
        send_udp(rx.udp_port, b"<14>Jun 15 11:00:00 gw1 vaultwatch-agent[7]: backup of /srv failed")
        rx.wait(lambda c: c.submitted >= 1)
    alarm = the_alarm(sqlite_catalog, node="gw1")
    assert (alarm.alert_group, alarm.alert_key) == ("backup.failed", "/srv")
    assert alarm.severity == Severity.CRITICAL
    assert alarm.summary == "Backup /srv failed on gw1"


def test_two_receivers_share_one_port(catalog: Catalog) -> None:
    """SO_REUSEPORT: several server processes (here two receivers) listen on one port."""
    with (
        running(catalog) as first,
        running(catalog, udp_port=first.udp_port, tcp_port=first.tcp_port) as second,
    ):
        assert (second.udp_port, second.tcp_port) == (first.udp_port, first.tcp_port)
        for i in range(8):
            send_tcp(first.tcp_port, f"<11>1 - shared app - - - n{i}\n".encode())
        deadline = time.monotonic() + 10
        while first.receiver.counters.received + second.receiver.counters.received < 8:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first.wait(lambda c: True)
        second.wait(lambda c: True)
    assert the_alarm(catalog, node="shared").tally == 8


def test_a_port_held_without_reuseport_is_a_clear_error(sqlite_catalog: Catalog) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        async def start() -> None:
            receiver = SyslogReceiver(sqlite_catalog, udp_port=0, tcp_port=port)
            await receiver.start()

        with pytest.raises(SyslogListenError, match=r"cannot listen for syslog on 127\.0\.0\.1"):
            asyncio.run(start())


def test_connections_beyond_the_limit_are_refused(sqlite_catalog: Catalog) -> None:
    with (
        running(sqlite_catalog, max_connections=1) as rx,
        socket.create_connection(("127.0.0.1", rx.tcp_port), timeout=5) as first,
    ):
        first.sendall(b"<11>1 - held app - - - first sender\n")
        rx.wait(submitted(1))
        with socket.create_connection(("127.0.0.1", rx.tcp_port), timeout=5) as second:
            assert second.recv(1) == b""  # closed by the receiver
        assert rx.receiver.counters.refused == 1
        first.sendall(b"<11>1 - held app - - - still served\n")
        rx.wait(submitted(2))
    assert the_alarm(sqlite_catalog, node="held").tally == 2


def test_a_short_database_outage_loses_nothing(tmp_path: Path) -> None:
    """Batches the database refuses are retried; when it is back they are stored."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'not-yet-migrated.db'}")
    try:
        with running(catalog, retry_pauses=(0.2,) * 50) as rx:
            send_udp(rx.udp_port, b"<11>1 - outage app - - - during the outage")
            deadline = time.monotonic() + 10
            while rx.receiver.counters.retried < 2:
                assert time.monotonic() < deadline, rx.receiver.counters
                time.sleep(0.02)
            assert rx.receiver.counters.submitted == 0
            catalog.upgrade()
            counters = rx.wait(submitted(1))
        assert counters.failed == 0
        assert the_alarm(catalog, node="outage").summary == "during the outage"
    finally:
        catalog.dispose()


def test_a_batch_is_given_up_after_its_retries(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    try:
        with running(catalog, retry_pauses=(0.01, 0.01)) as rx:
            send_udp(rx.udp_port, b"<11>1 - lost app - - - x")
            rx.wait(lambda c: c.failed >= 1)
            send_udp(rx.udp_port, b"<11>1 - lost app - - - the receiver still reads")
            counters = rx.wait(lambda c: c.failed >= 2)
        assert (counters.received, counters.submitted, counters.retried) == (2, 0, 4)
    finally:
        catalog.dispose()


def test_stop_stores_what_is_queued(sqlite_catalog: Catalog) -> None:
    with running(sqlite_catalog, batch_interval=30) as rx:
        send_udp(rx.udp_port, b"<11>1 - late app - - - queued at shutdown")
        deadline = time.monotonic() + 5
        while rx.receiver.counters.received < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert the_alarm(sqlite_catalog, node="late").summary == "queued at shutdown"


# -- rsyslog as a relay --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsyslogd() -> str:
    """rsyslog's daemon; installed by scripts/test-services.sh when missing."""
    found = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin")
    if found is None:
        subprocess.run(
            [str(REPO_ROOT / "scripts" / "test-services.sh")],
            capture_output=True,
            timeout=600,
            check=False,
        )
        found = shutil.which("rsyslogd", path="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))
    if found is None:
        message = "rsyslogd is missing (Debian package rsyslog)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


RSYSLOG_CONFIG = """
global(workDirectory="{work}" processInternalMessages="on")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="{port_file}")
if $programname == "rsyslogd" then {{
  action(type="omfile" file="{work}/internal.log")
  stop
}}
action(type="omfwd" target="127.0.0.1" port="{target}" {forward}
       action.resumeRetryCount="-1" action.resumeInterval="1")
"""


@contextmanager
def rsyslog_relay(binary: str, tmp_path: Path, target: int, forward: str) -> Iterator[int]:
    """A real rsyslogd on loopback relaying to `target`; yields its TCP input port.

    No imuxsock (so /dev/log is never touched), no system configuration, state in tmp.
    """
    work = tmp_path / "rsyslog"
    work.mkdir()
    port_file = work / "port"
    config = work / "rsyslog.conf"
    config.write_text(
        RSYSLOG_CONFIG.format(work=work, port_file=port_file, target=target, forward=forward)
    )
    log = open(work / "rsyslogd.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [binary, "-n", "-f", str(config), "-i", str(work / "rsyslogd.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    try:
        deadline = time.monotonic() + 15
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"rsyslogd did not start:\n{(work / 'rsyslogd.log').read_text()}")
            time.sleep(0.05)
        yield int(port_file.read_text().strip())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.parametrize(
    "forward",
    [
        pytest.param(
            'protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"',
            id="tcp-octet-counted-5424",
        ),
        pytest.param('protocol="tcp" TCP_Framing="traditional"', id="tcp-traditional-3164"),
        pytest.param('protocol="udp"', id="udp-3164"),
    ],
)
def test_rsyslog_relays_logger_messages(
    catalog: Catalog, rsyslogd: str, tmp_path: Path, forward: str
) -> None:
    with running(catalog) as rx:
        target = rx.udp_port if 'protocol="udp"' in forward else rx.tcp_port
        with rsyslog_relay(rsyslogd, tmp_path, target, forward) as port:
            send = ["--server", "127.0.0.1", "--port", str(port), "--tcp", "--rfc3164"]
            down = "igb 0000:01:00.0 eth3: igb: eth3 NIC Link is Down"
            logger(*send, "-t", "kernel", "-p", "user.err", "--", down)
            logger(*send, "-t", "kernel", "-p", "user.err", "--", down)
            rx.wait(lambda c: c.submitted >= 2)
            alarm = the_alarm(catalog, alert_group="syslog.link")
            assert (alarm.alert_key, alarm.tally, alarm.severity) == ("eth3", 2, Severity.MAJOR)
            assert alarm.node == socket.gethostname().split(".")[0]
            assert alarm.summary == "Link down on eth3"
            up = "igb 0000:01:00.0 eth3: igb: eth3 NIC Link is Up"
            logger(*send, "-t", "kernel", "-p", "user.info", "--", up)
            counters = rx.wait(lambda c: c.submitted >= 3)
    assert counters.malformed == 0
    assert the_alarm(catalog, alert_group="syslog.link").cleared_at is not None
