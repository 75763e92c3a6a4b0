"""Webhook delivery to a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.soc.notify.conftest import free_port
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import NotificationChannel
from vaultwatch.soc.notify import DeliveryError, OutgoingMessage
from vaultwatch.soc.notify.webhook import WebhookSender, check_webhook_url


class _Receiver(ThreadingHTTPServer):
    status = 204
    delay = 0.0
    bodies: list[tuple[str, dict[str, Any], str | None]]


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        doc = json.loads(self.rfile.read(length))
        self.server.bodies.append((self.path, doc, self.headers.get("Content-Type")))
        if self.server.delay:
            threading.Event().wait(self.server.delay)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _Handler)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _message(url: str) -> OutgoingMessage:
    return OutgoingMessage(
        id=7,
        dedup_key="customer-update:3:webhook",
        channel=NotificationChannel.WEBHOOK,
        recipient=url,
        subject="Service notice: gateway gw1 down",
        body="We are investigating.",
        tenant_id=uuid.UUID("00000000-0000-0000-0000-0000000000aa"),
        incident_id=3,
        case_id=None,
    )


def _url(server: _Receiver) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hooks/vaultwatch"


def test_posts_the_notification_as_json(receiver: _Receiver) -> None:
    sender = WebhookSender(timeout=5)
    sender.send(_message(_url(receiver)))
    sender.close()
    [(path, doc, content_type)] = receiver.bodies
    assert path == "/hooks/vaultwatch"
    assert content_type == "application/json"
    assert doc == {
        "id": "customer-update:3:webhook",
        "subject": "Service notice: gateway gw1 down",
        "body": "We are investigating.",
        "tenant_id": "00000000-0000-0000-0000-0000000000aa",
        "incident_id": 3,
        "case_id": None,
    }


def test_an_error_status_is_a_delivery_error(receiver: _Receiver) -> None:
    receiver.status = 503
    with pytest.raises(DeliveryError, match="answered 503"):
        WebhookSender(timeout=5).send(_message(_url(receiver)))


def test_a_slow_receiver_times_out(receiver: _Receiver) -> None:
    receiver.delay = 1.0
    with pytest.raises(DeliveryError, match="failed"):
        WebhookSender(timeout=0.2).send(_message(_url(receiver)))


def test_nobody_listening_is_a_delivery_error() -> None:
    with pytest.raises(DeliveryError, match="failed"):
        WebhookSender(timeout=2).send(_message(f"http://127.0.0.1:{free_port()}/x"))


@pytest.mark.parametrize("url", ["ftp://example.net/x", "example.net/hook", "http://", ""])
def test_only_http_urls_are_webhooks(url: str) -> None:
    with pytest.raises(ValidationError, match="http"):
        check_webhook_url(url)
