"""Email notifications over SMTP (smtplib), optionally upgraded with STARTTLS.

Settings come from the server settings file's ``[soc.smtp]`` section::

    [soc.smtp]
    host = "mail.example.net"
    port = 587
    starttls = true
    from_address = "soc@vaultwatch.example"
    username = "soc"            # optional
    password_file = "smtp.pw"   # optional, relative to the data directory
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from vaultwatch.catalog.users import normalize_email
from vaultwatch.errors import VaultwatchError
from vaultwatch.soc.notify.outbox import DeliveryError, OutgoingMessage

DEFAULT_TIMEOUT = 15.0


class SmtpSettingsError(VaultwatchError):
    """The ``[soc.smtp]`` settings are malformed."""

    exit_code = 2


@dataclass(frozen=True)
class SmtpSettings:
    """Where and as whom email notifications are sent."""

    host: str
    from_address: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    tls_context: ssl.SSLContext | None = None


def smtp_settings(extra: dict[str, Any], data_dir: Path | None = None) -> SmtpSettings | None:
    """The ``[soc.smtp]`` section of the server settings' `extra` tables; None when absent."""
    soc = extra.get("soc", {})
    section = soc.get("smtp") if isinstance(soc, dict) else None
    if section is None:
        return None
    if not isinstance(section, dict):
        raise SmtpSettingsError("[soc.smtp] must be a table")
    host = section.get("host")
    if not isinstance(host, str) or not host.strip():
        raise SmtpSettingsError("[soc.smtp] host must be a host name")
    port = section.get("port", 25)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise SmtpSettingsError("[soc.smtp] port must be between 1 and 65535")
    starttls = section.get("starttls", False)
    if not isinstance(starttls, bool):
        raise SmtpSettingsError("[soc.smtp] starttls must be true or false")
    try:
        sender = normalize_email(str(section.get("from_address", "")))
    except VaultwatchError:
        raise SmtpSettingsError("[soc.smtp] from_address must be an email address") from None
    username = section.get("username")
    if username is not None and not isinstance(username, str):
        raise SmtpSettingsError("[soc.smtp] username must be text")
    password = None
    password_file = section.get("password_file")
    if password_file is not None:
        path = Path(str(password_file))
        if not path.is_absolute() and data_dir is not None:
            path = data_dir / path
        try:
            password = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SmtpSettingsError(f"cannot read [soc.smtp] password_file {path}: {exc}") from None
    timeout = section.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise SmtpSettingsError("[soc.smtp] timeout must be a positive number of seconds")
    return SmtpSettings(
        host=host.strip(),
        port=port,
        starttls=starttls,
        from_address=sender,
        username=username or None,
        password=password,
        timeout=float(timeout),
    )


class EmailSender:
    """Sends outbox rows of the email channel, one SMTP connection per message."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def compose(self, message: OutgoingMessage) -> EmailMessage:
        """The RFC 5322 message for an outbox row (its dedup key names it for threading)."""
        email = EmailMessage()
        email["From"] = self.settings.from_address
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email["Message-ID"] = make_msgid(domain=self.settings.from_address.split("@")[-1])
        email["X-Vaultwatch-Notification"] = message.dedup_key
        email.set_content(message.body)
        return email

    def send(self, message: OutgoingMessage) -> None:
        """Deliver `message` to its recipient; DeliveryError on any SMTP or network failure."""
        s = self.settings
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
                if s.starttls:
                    smtp.starttls(context=s.tls_context or ssl.create_default_context())
                if s.username and s.password:
                    smtp.login(s.username, s.password)
                refused = smtp.send_message(self.compose(message), to_addrs=[message.recipient])
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"SMTP {s.host}:{s.port} refused {message.recipient}: {exc}"
            ) from None
        if refused:
            raise DeliveryError(f"SMTP {s.host}:{s.port} refused {message.recipient}: {refused}")
