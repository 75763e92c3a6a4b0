"""The support-mail receiver, with Debian's swaks sending real SMTP over loopback.

The receiver runs on its own event loop in a thread, as the server does, with
a real catalog (SQLite and PostgreSQL) and the server's own TLS identity from
`init_server`; swaks verifies the certificate against the server's CA.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.soc.test_incidents import add_tenants
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.models import User
from vaultwatch.catalog.soc_models import Notification, SupportCase
from vaultwatch.server import init_server
from vaultwatch.server_config import ServerConfigError, ServerSettings
from vaultwatch.soc import cases
from vaultwatch.soc.ingest.smtp import SupportMailReceiver, SupportMailSettings
from vaultwatch.soc.runtime import SocRuntime, check_settings

SUPPORT = "support@vaultwatch.example"


@pytest.fixture(scope="module")
def swaks() -> str:
    binary = shutil.which("swaks")
    assert binary is not None, "swaks is needed (scripts/test-services.sh installs it)"
    return binary


@pytest.fixture
def server(tmp_path: Path) -> ServerSettings:
    """A server data directory: its TLS certificate, key and CA are what the receiver uses."""
    return init_server(tmp_path / "server").settings


@contextmanager
def receiving(
    catalog: Catalog, server: ServerSettings, **options: Any
) -> Iterator[SupportMailReceiver]:
    """A started receiver on a free loopback port, on its own event loop thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="smtp-test-loop", daemon=True)
    thread.start()
    settings = replace(SupportMailSettings(addresses=frozenset({SUPPORT}), port=0), **options)
    receiver = SupportMailReceiver(
        catalog, settings, tls_cert=server.tls_cert, tls_key=server.tls_key, hostname="localhost"
    )
    try:
        asyncio.run_coroutine_threadsafe(receiver.start(), loop).result(timeout=30)
        try:
            yield receiver
        finally:
            asyncio.run_coroutine_threadsafe(receiver.stop(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def send(
    swaks: str,
    port: int,
    server: ServerSettings,
    *,
    sender: str,
    subject: str = "Backup failed",
    body: str = "My backup failed last night.",
    to: str = SUPPORT,
    tls: bool = True,
) -> str:
    """Send one mail with swaks; its transcript (server replies are the ``<-`` lines)."""
    command = [
        swaks, "--server", "127.0.0.1", "--port", str(port), "--helo", "client.example",
        "--from", sender, "--to", to, "--header", f"Subject: {subject}", "--body", body,
        "--timeout", "20",
    ]  # fmt: skip
    if tls:
        assert server.ca_cert is not None
        command += ["--tls", "--tls-verify", "--tls-ca-path", str(server.ca_cert)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return result.stdout + result.stderr


def replied(transcript: str, start: str) -> bool:
    """Whether a server reply in a swaks transcript (``<-``, ``<~``, errors ``<**``) starts so."""
    return any(
        line.split(" ", 1)[1].strip().startswith(start)
        for line in transcript.splitlines()
        if line.startswith("<") and " " in line
    )


def customer(catalog: Catalog) -> str:
    [tenant] = add_tenants(catalog, 1)
    with catalog.session() as session:
        return session.scalars(select(User.email).where(User.tenant_id == tenant)).one()


def stored_cases(catalog: Catalog) -> list[SupportCase]:
    with catalog.session() as session:
        rows = list(session.scalars(select(SupportCase).order_by(SupportCase.id)))
        session.expunge_all()
        return rows


def outbox(catalog: Catalog) -> list[Notification]:
    with catalog.session() as session:
        rows = list(session.scalars(select(Notification).order_by(Notification.id)))
        session.expunge_all()
        return rows


def test_an_email_over_starttls_opens_a_case_and_a_reply_lands_on_it(
    catalog: Catalog, server: ServerSettings, swaks: str
) -> None:
    sender = customer(catalog)
    with receiving(catalog, server) as receiver:
        assert receiver.port is not None
        first = send(swaks, receiver.port, server, sender=sender.upper())
        [case] = stored_cases(catalog)
        assert replied(first, f"250 2.0.0 stored on case #{case.id}"), first
        assert (case.opened_via, case.subject, case.contact_email) == (
            "email",
            "Backup failed",
            sender,
        )
        reply = send(
            swaks,
            receiver.port,
            server,
            sender=sender,
            subject=f"Re: [case #{case.id}] Backup failed",
            body="It failed again tonight.",
        )
        assert replied(reply, f"250 2.0.0 stored on case #{case.id}"), reply
    assert [c.id for c in stored_cases(catalog)] == [case.id]
    with catalog.session() as session:
        entries = cases.history(session, case.id)
        assert [(e.kind, e.actor.startswith("user:")) for e in entries] == [
            ("opened", True),
            ("message", True),
        ]
        assert "My backup failed last night." in entries[0].text
        assert "It failed again tonight." in entries[1].text
    [confirmation] = outbox(catalog)
    assert confirmation.recipient == sender
    assert confirmation.subject.startswith(f"[case #{case.id}] We received your case")


def test_mail_for_another_address_is_refused_no_relaying(
    catalog: Catalog, server: ServerSettings, swaks: str
) -> None:
    sender = customer(catalog)
    with receiving(catalog, server) as receiver:
        assert receiver.port is not None
        transcript = send(
            swaks, receiver.port, server, sender=sender, to="someone@elsewhere.example"
        )
    assert replied(transcript, "550 5.7.1 someone@elsewhere.example: no such support address")
    assert stored_cases(catalog) == [] and outbox(catalog) == []


def test_a_stranger_is_refused_with_the_reason_and_nothing_is_stored(
    catalog: Catalog, server: ServerSettings, swaks: str
) -> None:
    customer(catalog)
    with receiving(catalog, server) as receiver:
        assert receiver.port is not None
        transcript = send(swaks, receiver.port, server, sender="stranger@example.net")
    assert replied(
        transcript, "550 5.7.1 stranger@example.net is not a customer's account: cannot open a case"
    ), transcript
    assert stored_cases(catalog) == [] and outbox(catalog) == []


def test_an_oversized_message_is_refused(
    catalog: Catalog, server: ServerSettings, swaks: str
) -> None:
    sender = customer(catalog)
    with receiving(catalog, server, max_bytes=4096) as receiver:
        assert receiver.port is not None
        transcript = send(
            swaks, receiver.port, server, sender=sender, body="A line of a long report.\n" * 400
        )
        assert replied(transcript, "552"), transcript
        small = send(swaks, receiver.port, server, sender=sender, body="short")
        assert replied(small, "250 2.0.0 stored on case #"), small
    assert len(stored_cases(catalog)) == 1


def test_plain_text_is_refused_when_starttls_is_required(
    catalog: Catalog, server: ServerSettings, swaks: str
) -> None:
    sender = customer(catalog)
    with receiving(catalog, server) as receiver:
        assert receiver.port is not None
        transcript = send(swaks, receiver.port, server, sender=sender, tls=False)
    assert replied(transcript, "530"), transcript
    assert stored_cases(catalog) == []


def test_plain_text_is_accepted_when_starttls_is_not_required(
    catalog: Catalog, server: ServerSettings, swaks: str
) -> None:
    sender = customer(catalog)
    with receiving(catalog, server, require_starttls=False) as receiver:
        assert receiver.port is not None
        transcript = send(swaks, receiver.port, server, sender=sender, tls=False)
    assert replied(transcript, "250 2.0.0 stored on case #"), transcript
    assert len(stored_cases(catalog)) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_worker_process_runs_the_receiver_from_the_settings(tmp_path: Path, swaks: str) -> None:
    settings = init_server(tmp_path / "data", node_name="soc-a").settings
    port = _free_port()
    settings = settings.with_overrides(
        extra={"soc": {"support_mail": {"port": port, "addresses": [SUPPORT.upper()]}}}
    )
    catalog = Catalog(settings.catalog_url)
    sender = customer(catalog)
    runtime = SocRuntime(catalog, settings, ("worker",))

    async def scenario() -> str:
        await runtime.start()
        try:
            return await asyncio.to_thread(send, swaks, port, settings, sender=sender)
        finally:
            await runtime.stop()

    try:
        transcript = asyncio.run(scenario())
        [case] = stored_cases(catalog)
        assert replied(transcript, f"250 2.0.0 stored on case #{case.id}"), transcript
    finally:
        catalog.dispose()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "addresses must be a non-empty list"),
        ({"addresses": []}, "addresses must be a non-empty list"),
        ({"addresses": "support@x.example"}, "addresses must be a non-empty list"),
        ({"addresses": ["not an address"]}, "addresses: 'not an address' is not an email"),
        ({"addresses": [SUPPORT], "relay": True}, r"has unknown setting\(s\) relay"),
        ({"addresses": [SUPPORT], "port": 70000}, "port must be a port"),
        ({"addresses": [SUPPORT], "port": "25"}, "port must be a port"),
        ({"addresses": [SUPPORT], "require_starttls": "yes"}, "require_starttls must be true"),
        ({"addresses": [SUPPORT], "max_bytes": 0}, "max_bytes must be from 1"),
        ({"addresses": [SUPPORT], "max_bytes": 10**9}, "max_bytes must be from 1"),
        ({"addresses": [SUPPORT], "host": ""}, "host must be"),
    ],
)
def test_bad_support_mail_settings_are_refused(
    server: ServerSettings, table: dict[str, Any], message: str
) -> None:
    settings = server.with_overrides(extra={"soc": {"support_mail": table}})
    catalog = Catalog(settings.catalog_url)
    try:
        with pytest.raises(ServerConfigError, match=rf"\[soc\.support_mail\] {message}"):
            check_settings(catalog, settings)
    finally:
        catalog.dispose()


def test_good_support_mail_settings_pass(server: ServerSettings) -> None:
    settings = server.with_overrides(
        extra={"soc": {"support_mail": {"addresses": [SUPPORT], "port": 2525}}}
    )
    catalog = Catalog(settings.catalog_url)
    try:
        check_settings(catalog, settings)
    finally:
        catalog.dispose()


def test_an_unusable_tls_certificate_is_a_settings_error(server: ServerSettings) -> None:
    server.tls_key.write_text("not a key\n")
    settings = server.with_overrides(extra={"soc": {"support_mail": {"addresses": [SUPPORT]}}})
    catalog = Catalog(settings.catalog_url)
    try:
        with pytest.raises(ServerConfigError, match=r"\[soc\.support_mail\] cannot use the TLS"):
            check_settings(catalog, settings)
    finally:
        catalog.dispose()


def test_server_run_refuses_bad_support_mail_settings_with_exit_2(server: ServerSettings) -> None:
    import sys

    from vaultwatch.server_config import write_settings

    write_settings(server.with_overrides(extra={"soc": {"support_mail": {"addresses": []}}}))
    result = subprocess.run(
        [sys.executable, "-m", "vaultwatch.cli", "server", "run", "--data-dir",
         str(server.data_dir), "--port", str(_free_port()), "--workers", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "[soc.support_mail] addresses must be" in result.stderr
    assert "Traceback" not in result.stderr
