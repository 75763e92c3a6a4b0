"""Webhook notifications: an HTTP POST of a JSON document to the recipient URL.

Any 2xx answer is delivery; anything else (or no answer within the timeout)
is a DeliveryError, so the outbox retries it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.soc.notify.outbox import DeliveryError, OutgoingMessage

DEFAULT_TIMEOUT = 10.0


def check_webhook_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL; ValidationError otherwise."""
    cleaned = url.strip()
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{url!r} is not an http:// or https:// URL")
    return cleaned


def payload(message: OutgoingMessage) -> dict[str, Any]:
    """The JSON document posted for one notification."""
    return {
        "id": message.dedup_key,
        "subject": message.subject,
        "body": message.body,
        "tenant_id": str(message.tenant_id) if message.tenant_id else None,
        "incident_id": message.incident_id,
        "case_id": message.case_id,
    }


class WebhookSender:
    """Posts outbox rows of the webhook channel."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, *, verify: bool | str = True) -> None:
        self._client = httpx.Client(timeout=timeout, verify=verify, follow_redirects=False)

    def send(self, message: OutgoingMessage) -> None:
        """POST the message; DeliveryError unless the receiver answers 2xx."""
        try:
            response = self._client.post(
                message.recipient,
                json=payload(message),
                headers={"X-Vaultwatch-Notification": message.dedup_key},
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {message.recipient} failed: {exc}") from None
        if not response.is_success:
            raise DeliveryError(f"webhook {message.recipient} answered {response.status_code}")

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()
