"""The operations center's background work as the server runs it: duties, lease, receivers."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.leases import current_holder
from vaultwatch.catalog.soc_models import Alarm, ServerNode
from vaultwatch.server import init_server
from vaultwatch.server_config import ServerConfigError
from vaultwatch.soc.runtime import SocRuntime


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_a_worker_runs_the_duties_under_the_lease_and_its_syslog_receiver(
    tmp_path: Path,
) -> None:
    logger = shutil.which("logger")
    assert logger is not None, "util-linux logger is needed (scripts/test-services.sh)"
    port = _free_port()
    settings = init_server(tmp_path / "data", node_name="soc-a").settings
    settings = settings.with_overrides(
        extra={
            "soc": {"syslog": {"host": "127.0.0.1", "udp_port": port, "tcp_port": None}},
            "monitors": {"interval": 1, "node_report_interval": 1},
        }
    )
    catalog = Catalog(settings.catalog_url)
    runtime = SocRuntime(catalog, settings, ("worker",))

    async def scenario() -> None:
        await runtime.start()
        try:
            with catalog.session() as session:
                _wait(lambda: current_holder(session, "soc-duties") is not None)
            await asyncio.to_thread(
                subprocess.run,
                [
                    logger,
                    "--server",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--udp",
                    "--rfc5424",
                    "-t",
                    "kernel",
                    "-p",
                    "kern.err",
                    "--",
                    "sd 0:0:0:0: [sda] I/O error, dev sda, sector 42",
                ],
                check=True,
            )

            def stored() -> bool:
                with catalog.session() as session:
                    return session.scalar(select(Alarm).where(Alarm.source == "syslog")) is not None

            await asyncio.to_thread(_wait, stored)

            def reported() -> bool:
                with catalog.session() as session:
                    node = session.scalar(select(ServerNode).where(ServerNode.name == "soc-a"))
                    return node is not None and bool(node.health)

            await asyncio.to_thread(_wait, reported)
        finally:
            await runtime.stop()

    try:
        asyncio.run(scenario())
        with catalog.session() as session:
            assert current_holder(session, "soc-duties") is None  # released on stop
            alarm = session.scalars(select(Alarm).where(Alarm.source == "syslog")).one()
            assert "I/O error" in alarm.summary
            assert alarm.alarm_class == "hardware"
    finally:
        catalog.dispose()


def test_a_malformed_receiver_table_is_a_clear_error(tmp_path: Path) -> None:
    settings = init_server(tmp_path / "data").settings
    settings = settings.with_overrides(extra={"soc": {"syslog": {"udp_port": 1, "colour": "red"}}})
    catalog = Catalog(settings.catalog_url)
    runtime = SocRuntime(catalog, settings, ("worker",))
    try:
        with pytest.raises(ServerConfigError, match="colour"):
            asyncio.run(runtime.start())
    finally:
        asyncio.run(runtime.stop())
        catalog.dispose()


def test_server_run_refuses_bad_operations_settings_with_a_message(tmp_path: Path) -> None:
    import sys

    from vaultwatch.server_config import write_settings

    settings = init_server(tmp_path / "data").settings
    write_settings(
        settings.with_overrides(extra={"soc": {"syslog": {"udp_port": 5514, "colour": "red"}}})
    )
    result = subprocess.run(
        [sys.executable, "-m", "vaultwatch.cli", "server", "run", "--data-dir",
         str(settings.data_dir), "--port", str(_free_port()), "--workers", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "colour" in result.stderr and "Traceback" not in result.stderr
