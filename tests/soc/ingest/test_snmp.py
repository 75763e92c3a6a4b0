"""The SNMP receiver, driven by net-snmp's own snmptrap and snmpinform over loopback UDP."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import Alarm, AlarmClass, EventSource, EventType, Severity
from vaultwatch.soc.ingest.snmp import (
    MAX_VARBINDS,
    SNMP_TRAP_OID,
    SYS_NAME,
    Notification,
    SnmpListenError,
    SnmpReceiverConfig,
    SnmpReceiverStats,
    SnmpTrapReceiver,
    SnmpV3User,
    check_config,
    notification_to_event,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
COMMUNITY = "vw-public"
SENDER_ENGINE = "0x8000000001020304"
USER = SnmpV3User("socops", "auth-secret-1", "priv-secret-1", engine_ids=(SENDER_ENGINE,))
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_ADMIN = "1.3.6.1.2.1.2.2.1.7"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"


# -- net-snmp ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net_snmp() -> None:
    """net-snmp's command-line tools; installed by scripts/test-services.sh when missing."""
    if shutil.which("snmptrap") is None:
        subprocess.run(
            [str(REPO_ROOT / "scripts" / "test-services.sh")],
            capture_output=True,
            timeout=600,
            check=False,
        )
    if shutil.which("snmptrap") is None or shutil.which("snmpinform") is None:
        message = "net-snmp's snmptrap/snmpinform are missing (Debian package snmp)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def snmp_env(tmp_path: Path, net_snmp: None) -> dict[str, str]:
    """An environment where net-snmp reads no local configuration and keeps its state in tmp."""
    state = tmp_path / "net-snmp"
    state.mkdir()
    env = dict(os.environ)
    env.update({"SNMPCONFPATH": str(state), "SNMP_PERSISTENT_DIR": str(state), "MIBS": ""})
    return env


def run_tool(
    env: dict[str, str], *args: str, timeout: float = 10
) -> subprocess.CompletedProcess[str]:
    """Run one net-snmp command (OIDs numeric, no MIBs loaded)."""
    return subprocess.run(
        [args[0], "-M", "/dev/null", *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def v2c_trap(
    env: dict[str, str], port: int, trap_oid: str, *varbinds: str, community: str = COMMUNITY
) -> None:
    done = run_tool(
        env, "snmptrap", "-v", "2c", "-c", community, f"127.0.0.1:{port}", "", trap_oid, *varbinds
    )
    assert done.returncode == 0, done.stderr


def v3_args(auth_key: str = USER.auth_key, priv_key: str = USER.priv_key) -> list[str]:
    return [
        "-v",
        "3",
        "-u",
        USER.name,
        "-l",
        "authPriv",
        "-a",
        "SHA",
        "-A",
        auth_key,
        "-x",
        "AES",
        "-X",
        priv_key,
    ]


def link(index: int, oper: int) -> list[str]:
    """The varbinds an agent puts in linkDown/linkUp (RFC 2863)."""
    return [
        f"{IF_INDEX}.{index}",
        "i",
        str(index),
        f"{IF_ADMIN}.{index}",
        "i",
        "1",
        f"{IF_OPER}.{index}",
        "i",
        str(oper),
    ]


# -- a receiver on its own event loop -----------------------------------------------------------


class RunningReceiver:
    """A started SnmpTrapReceiver whose asyncio loop runs in a thread, as in the server."""

    def __init__(self, receiver: SnmpTrapReceiver, loop: asyncio.AbstractEventLoop) -> None:
        self.receiver = receiver
        self.loop = loop
        self.port = receiver.port

    def call(self, make: Callable[[], object]) -> object:
        async def run() -> object:
            result = make()
            if asyncio.iscoroutine(result):
                return await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def stats(self) -> SnmpReceiverStats:
        stats = self.call(lambda: dataclasses.replace(self.receiver.stats))
        assert isinstance(stats, SnmpReceiverStats)
        return stats

    def wait(
        self, done: Callable[[SnmpReceiverStats], bool], *, drain: bool = True, timeout: float = 10
    ) -> SnmpReceiverStats:
        """Poll the counters until `done`, then (with `drain`) until every queued event is stored."""
        deadline = time.monotonic() + timeout
        while not done(stats := self.stats()):
            assert time.monotonic() < deadline, f"receiver never got there: {stats}"
            time.sleep(0.02)
        if drain:
            self.call(self.receiver.drain)
        return self.stats()


@contextmanager
def running_receiver(catalog: Catalog, **settings: object) -> Iterator[RunningReceiver]:
    settings.setdefault("communities", (COMMUNITY,))
    settings.setdefault("users", (USER,))
    cfg = SnmpReceiverConfig(host="127.0.0.1", port=0, **settings)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="snmp-test-loop", daemon=True)
    thread.start()
    try:

        async def start() -> SnmpTrapReceiver:
            receiver = SnmpTrapReceiver(catalog, cfg)
            await receiver.start()
            return receiver

        receiver = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
        running = RunningReceiver(receiver, loop)
        try:
            yield running
        finally:
            running.call(receiver.stop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def alarms_of(catalog: Catalog, alert_group: str) -> list[Alarm]:
    with catalog.session() as session:
        rows = list(session.scalars(select(Alarm).where(Alarm.alert_group == alert_group)))
        for row in rows:
            session.expunge(row)
        return rows


# -- through the network, into the alarm store --------------------------------------------------


def test_v1_trap_raises_an_alarm_named_after_its_agent_address(
    catalog: Catalog, snmp_env: dict[str, str]
) -> None:
    with running_receiver(catalog) as rx:
        done = run_tool(
            snmp_env, "snmptrap", "-v", "1", "-c", COMMUNITY, f"127.0.0.1:{rx.port}",
            "1.3.6.1.4.1.8072.2.3", "10.9.8.7", "2", "0", "", f"{IF_INDEX}.4", "i", "4",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        stats = rx.wait(lambda s: s.submitted >= 1)
    [alarm] = alarms_of(catalog, "snmp.linkDown")
    assert alarm.node == "10.9.8.7"
    assert alarm.alert_key == "4"
    assert alarm.severity == Severity.MAJOR
    assert alarm.alarm_class == AlarmClass.NETWORK
    assert alarm.source == EventSource.SNMP
    assert alarm.attributes["snmp.version"] == "v1"
    assert alarm.attributes["snmp.sender"] == "127.0.0.1"
    assert COMMUNITY not in str(alarm.attributes), "a v1 trap's community must not be stored"
    assert "interface 4" in alarm.summary
    assert (stats.received, stats.notifications, stats.rejected) == (1, 1, 0)


def test_v2c_link_down_repeats_then_link_up_clears_the_alarm(
    catalog: Catalog, snmp_env: dict[str, str]
) -> None:
    with running_receiver(catalog) as rx:
        v2c_trap(snmp_env, rx.port, LINK_DOWN, *link(3, 2))
        v2c_trap(snmp_env, rx.port, LINK_DOWN, *link(3, 2))
        v2c_trap(snmp_env, rx.port, LINK_DOWN, *link(5, 2))
        rx.wait(lambda s: s.notifications >= 3)
        down = {a.alert_key: a for a in alarms_of(catalog, "snmp.linkDown")}
        assert set(down) == {"3", "5"}
        assert down["3"].tally == 2 and down["5"].tally == 1
        assert down["3"].severity == Severity.MAJOR and down["3"].cleared_at is None
        assert "ifOperStatus.3=down" in down["3"].summary

        v2c_trap(snmp_env, rx.port, LINK_UP, *link(3, 1))
        stats = rx.wait(lambda s: s.notifications >= 4)
    after = {a.alert_key: a for a in alarms_of(catalog, "snmp.linkDown")}
    assert after["3"].id == down["3"].id
    assert after["3"].cleared_at is not None
    assert after["3"].severity == Severity.CLEAR
    assert after["3"].type == EventType.RESOLUTION
    assert after["3"].tally == 2, "a resolution does not count as a repeat"
    assert after["5"].cleared_at is None, "only the interface that came back is cleared"
    assert alarms_of(catalog, "snmp.linkUp") == []
    assert stats.submitted == 4
    assert stats.batches >= 2, "the linkUp was stored after the linkDowns were"


def test_v2c_inform_is_acknowledged_promptly(catalog: Catalog, snmp_env: dict[str, str]) -> None:
    with running_receiver(catalog) as rx:
        started = time.monotonic()
        done = run_tool(
            snmp_env, "snmpinform", "-v", "2c", "-c", COMMUNITY, "-t", "3", "-r", "0",
            f"127.0.0.1:{rx.port}", "", COLD_START, SYS_NAME, "s", "nas-7.dc1",
        )  # fmt: skip
        elapsed = time.monotonic() - started
        rx.wait(lambda s: s.submitted >= 1)
    assert done.returncode == 0, f"inform not acknowledged: {done.stderr}"
    assert elapsed < 2, f"inform took {elapsed:.2f}s to be acknowledged"
    [alarm] = alarms_of(catalog, "snmp.coldStart")
    assert alarm.node == "nas-7.dc1", "sysName names the node"
    assert alarm.severity == Severity.WARNING
    assert alarm.attributes["snmp.pdu"] == "inform"


def test_a_retransmitted_inform_is_not_counted_twice(
    catalog: Catalog, snmp_env: dict[str, str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as capture:
        capture.bind(("127.0.0.1", 0))
        capture.settimeout(5)
        run_tool(
            snmp_env, "snmpinform", "-v", "2c", "-c", COMMUNITY, "-t", "0.2", "-r", "0",
            f"127.0.0.1:{capture.getsockname()[1]}", "", LINK_DOWN, *link(2, 2),
        )  # fmt: skip
        inform, _ = capture.recvfrom(65535)
        with running_receiver(catalog) as rx:
            for _ in range(2):  # the sender's retry of an inform whose answer was lost
                capture.sendto(inform, ("127.0.0.1", rx.port))
            stats = rx.wait(lambda s: s.notifications >= 2)
            answers = [capture.recv(65535) for _ in range(2)]
    assert all(answers), "each copy is acknowledged"
    [alarm] = alarms_of(catalog, "snmp.linkDown")
    assert alarm.tally == 1
    assert stats.submitted == 2


def test_v3_auth_priv_trap_from_a_configured_user_is_accepted(
    catalog: Catalog, snmp_env: dict[str, str]
) -> None:
    with running_receiver(catalog) as rx:
        done = run_tool(
            snmp_env, "snmptrap", *v3_args(), "-e", SENDER_ENGINE, f"127.0.0.1:{rx.port}", "",
            LINK_DOWN, *link(9, 2),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        rx.wait(lambda s: s.submitted >= 1)
    [alarm] = alarms_of(catalog, "snmp.linkDown")
    assert alarm.alert_key == "9"
    assert alarm.attributes["snmp.version"] == "v3"
    assert alarm.attributes["snmp.security_name"] == USER.name


def test_v3_inform_from_a_configured_user_is_acknowledged(
    catalog: Catalog, snmp_env: dict[str, str]
) -> None:
    with running_receiver(catalog, engine_id="0x80001f8804c0ffee01") as rx:
        assert rx.receiver.engine_id == "80001f8804c0ffee01"
        done = run_tool(
            snmp_env, "snmpinform", *v3_args(), "-t", "3", "-r", "0", f"127.0.0.1:{rx.port}", "",
            "1.3.6.1.4.1.99999.0.7", "1.3.6.1.4.1.99999.1.1.0", "s", "disk shelf 2 degraded",
        )  # fmt: skip
        rx.wait(lambda s: s.submitted >= 1)
    assert done.returncode == 0, f"v3 inform not acknowledged: {done.stderr}"
    [alarm] = alarms_of(catalog, "snmp.1.3.6.1.4.1.99999.0.7")
    assert "disk shelf 2 degraded" in alarm.summary
    assert alarm.severity == Severity.WARNING


def test_v3_trap_with_a_wrong_key_raises_no_alarm(
    catalog: Catalog, snmp_env: dict[str, str]
) -> None:
    with running_receiver(catalog) as rx:
        target = f"127.0.0.1:{rx.port}"
        for args in (v3_args(auth_key="not-the-key-1"), v3_args(priv_key="not-the-key-2")):
            bad = run_tool(
                snmp_env, "snmptrap", *args, "-e", SENDER_ENGINE, target, "", LINK_DOWN, *link(1, 2)
            )
            assert bad.returncode == 0, bad.stderr
        # A good trap after the bad ones: once it is stored, the bad ones were seen and refused.
        good = run_tool(
            snmp_env, "snmptrap", *v3_args(), "-e", SENDER_ENGINE, target, "", COLD_START
        )
        assert good.returncode == 0, good.stderr
        stats = rx.wait(lambda s: s.submitted >= 1)
    assert alarms_of(catalog, "snmp.linkDown") == []
    assert len(alarms_of(catalog, "snmp.coldStart")) == 1
    assert stats.notifications == 1
    assert stats.rejected + stats.malformed == 2
    assert stats.rejected >= 1, "the wrong authentication key is a wrong digest"


def test_unknown_community_raises_no_alarm(catalog: Catalog, snmp_env: dict[str, str]) -> None:
    with running_receiver(catalog) as rx:
        v2c_trap(snmp_env, rx.port, LINK_DOWN, *link(2, 2), community="public")
        v2c_trap(snmp_env, rx.port, COLD_START)
        stats = rx.wait(lambda s: s.submitted >= 1)
    assert alarms_of(catalog, "snmp.linkDown") == []
    assert (stats.received, stats.notifications, stats.rejected) == (2, 1, 1)


def test_no_community_configured_accepts_no_v2c_trap(
    catalog: Catalog, snmp_env: dict[str, str]
) -> None:
    with running_receiver(catalog, communities=()) as rx:
        v2c_trap(snmp_env, rx.port, COLD_START, community="public")
        stats = rx.wait(lambda s: s.received >= 1 and s.rejected >= 1)
    assert stats.notifications == 0
    assert alarms_of(catalog, "snmp.coldStart") == []


def test_garbage_datagrams_are_counted_and_the_receiver_keeps_working(
    catalog: Catalog, snmp_env: dict[str, str]
) -> None:
    with running_receiver(catalog) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for garbage in (b"\x00\xffnot snmp at all", b"\x30\x03\x02\x01\x05", b"", os.urandom(600)):
            udp.sendto(garbage, ("127.0.0.1", rx.port))
        rx.wait(lambda s: s.received >= 4)
        v2c_trap(snmp_env, rx.port, COLD_START)
        stats = rx.wait(lambda s: s.submitted >= 1)
    assert stats.malformed == 4
    assert stats.notifications == 1
    assert len(alarms_of(catalog, "snmp.coldStart")) == 1


# -- the receiver's own behaviour ---------------------------------------------------------------


def test_events_wait_for_the_catalog_and_are_stored_once_it_is_back(
    tmp_path: Path, snmp_env: dict[str, str]
) -> None:
    catalog = Catalog(make_url(f"sqlite:///{tmp_path / 'late.db'}"))  # tables not created yet
    try:
        with running_receiver(catalog) as rx:
            v2c_trap(snmp_env, rx.port, LINK_DOWN, *link(6, 2))
            rx_stats = rx.wait(lambda s: s.submit_errors >= 1, drain=False)
            assert rx_stats.submitted == 0
            catalog.upgrade()
            stats = rx.wait(lambda s: s.submitted >= 1)
        assert stats.dropped == 0
        [alarm] = alarms_of(catalog, "snmp.linkDown")
        assert alarm.alert_key == "6"
    finally:
        catalog.dispose()


def test_a_busy_port_is_a_clear_error(catalog: Catalog) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]

        async def start() -> None:
            receiver = SnmpTrapReceiver(catalog, SnmpReceiverConfig(host="127.0.0.1", port=port))
            await receiver.start()

        with pytest.raises(SnmpListenError, match=f"cannot listen for SNMP on 127.0.0.1:{port}"):
            asyncio.run(start())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"port": 70000}, "port"),
        ({"communities": ("",)}, "community"),
        ({"communities": ("a", "a")}, "repeat"),
        ({"users": (SnmpV3User("u", "short", "priv-secret-1"),)}, "authentication key"),
        ({"users": (SnmpV3User("u", "auth-secret-1", "2short"),)}, "privacy key"),
        ({"users": (SnmpV3User("u", "auth-secret-1", "priv-secret-1", ("zz",)),)}, "engine ID"),
        ({"engine_id": "0x01"}, "engine ID"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_config(SnmpReceiverConfig(**settings))  # type: ignore[arg-type]


# -- mapping ------------------------------------------------------------------------------------


def _note(*varbinds: tuple[str, str], sender: str = "192.0.2.10") -> Notification:
    return Notification(sender=sender, varbinds=list(varbinds))


def test_enterprise_traps_keep_their_numeric_oid_and_a_row_index_as_key() -> None:
    event = notification_to_event(
        _note((SNMP_TRAP_OID, "1.3.6.1.4.1.9.9.41.2.0.1"), ("1.3.6.1.2.1.31.1.1.1.1.12", "Gi0/12"))
    )
    assert event.alert_group == "snmp.1.3.6.1.4.1.9.9.41.2.0.1"
    assert event.alert_key == "12"
    assert event.node == "192.0.2.10"
    assert event.severity == Severity.WARNING
    assert "ifName.12=Gi0/12" in event.summary


def test_link_up_carries_the_identifier_link_down_derives() -> None:
    down = notification_to_event(_note((SNMP_TRAP_OID, LINK_DOWN), (f"{IF_INDEX}.8", "8")))
    up = notification_to_event(_note((SNMP_TRAP_OID, LINK_UP), (f"{IF_INDEX}.8", "8")))
    assert up.type == EventType.RESOLUTION
    assert up.alert_group == "snmp.linkUp"
    assert up.identifier == down.dedup_identifier == "192.0.2.10|snmp.linkDown|8"


@pytest.mark.parametrize(
    ("trap_oid", "severity", "alarm_class"),
    [
        ("1.3.6.1.6.3.1.1.5.1", Severity.WARNING, None),
        ("1.3.6.1.6.3.1.1.5.2", Severity.INDETERMINATE, None),
        ("1.3.6.1.6.3.1.1.5.3", Severity.MAJOR, AlarmClass.NETWORK),
        ("1.3.6.1.6.3.1.1.5.4", Severity.CLEAR, AlarmClass.NETWORK),
        ("1.3.6.1.6.3.1.1.5.5", Severity.WARNING, None),
    ],
)
def test_well_known_traps_have_their_severity(
    trap_oid: str, severity: Severity, alarm_class: AlarmClass | None
) -> None:
    event = notification_to_event(_note((SNMP_TRAP_OID, trap_oid)))
    assert event.severity == severity
    assert event.alarm_class == alarm_class
    assert event.source == EventSource.SNMP


def test_summary_and_attributes_stay_bounded() -> None:
    many = [(f"1.3.6.1.4.1.99999.1.{i}.0", "x" * 2000) for i in range(MAX_VARBINDS + 15)]
    event = notification_to_event(_note((SNMP_TRAP_OID, "1.3.6.1.4.1.99999.0.1"), *many))
    assert len(event.summary) <= 400
    assert len(event.attributes) <= 50
    assert event.attributes["snmp.varbinds_dropped"] == "16"
    assert all(len(value) <= 256 for value in event.attributes.values())


def test_a_notification_without_a_trap_oid_is_refused() -> None:
    with pytest.raises(ValidationError, match="snmpTrapOID"):
        notification_to_event(_note(("1.3.6.1.2.1.1.3.0", "100")))
