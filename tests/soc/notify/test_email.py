"""Email delivery through a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soc.notify.conftest import SmtpServer, free_port
from vaultwatch.catalog.soc_models import NotificationChannel
from vaultwatch.soc.notify import DeliveryError, OutgoingMessage
from vaultwatch.soc.notify.email import EmailSender, SmtpSettingsError, smtp_settings


def _message(recipient: str = "oncall@example.net") -> OutgoingMessage:
    return OutgoingMessage(
        id=1,
        dedup_key="incident:1:page:x",
        channel=NotificationChannel.EMAIL,
        recipient=recipient,
        subject="[CRITICAL] Incident #1: gateway gw1 down",
        body="Incident #1 needs an owner.\nSecond line.",
        tenant_id=None,
        incident_id=1,
        case_id=None,
    )


def test_message_arrives_with_recipient_subject_and_body(smtp_server: SmtpServer) -> None:
    EmailSender(smtp_server.settings).send(_message())
    [got] = smtp_server.mailbox.all()
    assert got.sender == "soc@vaultwatch.test"
    assert got.recipients == ["oncall@example.net"]
    assert got.message["Subject"] == "[CRITICAL] Incident #1: gateway gw1 down"
    assert got.message["To"] == "oncall@example.net"
    assert got.message["X-Vaultwatch-Notification"] == "incident:1:page:x"
    body = got.message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n").strip()
    assert text == "Incident #1 needs an owner.\nSecond line."


def test_refused_recipient_is_a_delivery_error(smtp_server: SmtpServer) -> None:
    smtp_server.mailbox.refuse.add("nobody@example.net")
    with pytest.raises(DeliveryError, match=r"nobody@example\.net"):
        EmailSender(smtp_server.settings).send(_message("nobody@example.net"))
    assert smtp_server.mailbox.all() == []


def test_unreachable_server_is_a_delivery_error(smtp_server: SmtpServer) -> None:
    settings = smtp_server.settings
    dead = type(settings)(host="127.0.0.1", port=free_port(), from_address=settings.from_address)
    with pytest.raises(DeliveryError, match=r"SMTP 127\.0\.0\.1"):
        EmailSender(dead).send(_message())


def test_starttls_against_a_server_without_it_fails_clearly(smtp_server: SmtpServer) -> None:
    s = smtp_server.settings
    settings = type(s)(host=s.host, port=s.port, from_address=s.from_address, starttls=True)
    with pytest.raises(DeliveryError, match="STARTTLS"):
        EmailSender(settings).send(_message())
    assert smtp_server.mailbox.all() == []


def test_settings_come_from_the_soc_smtp_table(tmp_path: Path) -> None:
    (tmp_path / "smtp.pw").write_text("s3cret\n")
    extra = {
        "soc": {
            "smtp": {
                "host": "mail.example.net",
                "port": 587,
                "starttls": True,
                "from_address": "SOC@Example.net",
                "username": "soc",
                "password_file": "smtp.pw",
            }
        }
    }
    settings = smtp_settings(extra, tmp_path)
    assert settings is not None
    assert (settings.host, settings.port, settings.starttls) == ("mail.example.net", 587, True)
    assert settings.from_address == "soc@example.net"
    assert (settings.username, settings.password) == ("soc", "s3cret")
    assert smtp_settings({}) is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"port": 25, "from_address": "a@b.c"}, "host"),
        ({"host": "h", "port": 70000, "from_address": "a@b.c"}, "port"),
        ({"host": "h", "from_address": "not-an-address"}, "from_address"),
        ({"host": "h", "from_address": "a@b.c", "starttls": "yes"}, "starttls"),
        (
            {"host": "h", "from_address": "a@b.c", "password_file": "/nonexistent/pw"},
            "password_file",
        ),
    ],
)
def test_bad_settings_are_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(SmtpSettingsError, match=message):
        smtp_settings({"soc": {"smtp": table}})
