"""Control requests go first: bulk bodies wait while heartbeats are served, but never for long."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vaultwatch.gateway.asgi import Message, Receive, Scope, Send
from vaultwatch.gateway.priority import ControlFirstMiddleware, ControlGate
from vaultwatch.server import is_bulk_transfer, is_control_request


def _scope(method: str, path: str) -> Scope:
    return {"type": "http", "method": method, "path": path, "headers": []}


class _Endpoint:
    """An ASGI app that reads its whole body (as an upload does) or holds a control request open."""

    def __init__(self) -> None:
        self.chunks_read: list[bytes] = []
        self.release_control = asyncio.Event()
        self.control_started = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/upload":
            while True:
                message = await receive()
                self.chunks_read.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
        else:
            self.control_started.set()
            await self.release_control.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _middleware(endpoint: _Endpoint, gate: ControlGate) -> ControlFirstMiddleware:
    return ControlFirstMiddleware(
        endpoint,
        gate,
        is_bulk=lambda scope: scope["path"] == "/upload",
        is_control=lambda scope: scope["path"] == "/heartbeat",
    )


def _body(chunks: int) -> Receive:
    remaining = list(range(chunks))

    async def receive() -> Message:
        remaining.pop()
        return {"type": "http.request", "body": b"x" * 10, "more_body": bool(remaining)}

    return receive


async def _no_request() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(_message: Message) -> None:
    return None


async def _wait_until(predicate: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def test_uploads_wait_while_a_control_request_is_served() -> None:
    async def scenario() -> None:
        endpoint, gate = _Endpoint(), ControlGate(max_wait=30.0)
        app = _middleware(endpoint, gate)
        control = asyncio.create_task(app(_scope("POST", "/heartbeat"), _no_request, _discard))
        await endpoint.control_started.wait()
        assert gate.in_flight == 1
        upload = asyncio.create_task(app(_scope("PUT", "/upload"), _body(3), _discard))
        await asyncio.sleep(0.2)
        assert endpoint.chunks_read == []  # held back: a heartbeat is in flight
        endpoint.release_control.set()
        await control
        await asyncio.wait_for(upload, 5)
        assert len(endpoint.chunks_read) == 3
        assert gate.in_flight == 0
        assert gate.bulk_waits >= 1

    asyncio.run(scenario())


def test_uploads_move_on_after_max_wait_when_control_traffic_never_stops() -> None:
    async def scenario() -> None:
        endpoint, gate = _Endpoint(), ControlGate(max_wait=0.05)
        app = _middleware(endpoint, gate)
        control = asyncio.create_task(app(_scope("POST", "/heartbeat"), _no_request, _discard))
        await endpoint.control_started.wait()
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(app(_scope("PUT", "/upload"), _body(4), _discard), 5)
        waited = asyncio.get_running_loop().time() - started
        assert len(endpoint.chunks_read) == 4
        assert waited >= 4 * 0.05 * 0.9  # each chunk stepped aside, each at most max_wait
        assert gate.bulk_waits == 5  # the four body chunks and the response's body
        endpoint.release_control.set()
        await control

    asyncio.run(scenario())


def test_download_bodies_wait_too_and_failed_control_requests_are_released() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("the handler failed")

    async def scenario() -> None:
        gate = ControlGate(max_wait=30.0)
        failing_app = ControlFirstMiddleware(
            failing, gate, is_bulk=lambda s: False, is_control=lambda s: True
        )
        with pytest.raises(RuntimeError):
            await failing_app(_scope("POST", "/heartbeat"), _no_request, _discard)
        assert gate.in_flight == 0  # released: uploads are not held back forever

        endpoint = _Endpoint()
        app = _middleware(endpoint, gate)
        control = asyncio.create_task(app(_scope("POST", "/heartbeat"), _no_request, _discard))
        await endpoint.control_started.wait()
        sent: list[Message] = []

        async def record(message: Message) -> None:
            sent.append(message)

        async def download(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"pack bytes"})

        bulk = ControlFirstMiddleware(
            download, gate, is_bulk=lambda s: True, is_control=lambda s: False
        )
        task = asyncio.create_task(bulk(_scope("GET", "/download"), _no_request, record))
        await asyncio.sleep(0.2)
        assert [m["type"] for m in sent] == ["http.response.start"]  # the body waits
        endpoint.release_control.set()
        await control
        await asyncio.wait_for(task, 5)
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]

    asyncio.run(scenario())


def test_other_requests_are_neither_held_nor_counted() -> None:
    async def scenario() -> None:
        endpoint, gate = _Endpoint(), ControlGate(max_wait=30.0)
        app = _middleware(endpoint, gate)
        other = asyncio.create_task(app(_scope("GET", "/events"), _no_request, _discard))
        await endpoint.control_started.wait()
        assert gate.in_flight == 0  # a long-lived stream must not hold uploads back
        await asyncio.wait_for(app(_scope("PUT", "/upload"), _body(2), _discard), 5)
        assert len(endpoint.chunks_read) == 2
        endpoint.release_control.set()
        await other

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("method", "path", "bulk", "control"),
    [
        ("PUT", "/api/v1/vault/objects/data/ab/abcd", True, False),
        ("GET", "/api/v1/vault/objects/data/ab/abcd", True, False),
        ("HEAD", "/api/v1/vault/objects/data/ab/abcd", False, True),
        ("DELETE", "/api/v1/vault/objects/locks/x", False, True),
        ("GET", "/api/v1/vault/objects", False, True),
        ("POST", "/api/v1/heartbeat", False, True),
        ("PUT", "/api/v1/jobs/5e0c8f6a-7a4e-4b1e-9c4b-1f0e2d3c4b5a", False, True),
        ("GET", "/healthz", False, True),
        ("GET", "/portal/", False, False),
    ],
)
def test_the_server_classifies_its_routes(
    method: str, path: str, bulk: bool, control: bool
) -> None:
    scope = _scope(method, path)
    assert is_bulk_transfer(scope) is bulk
    if not bulk:  # the middleware asks whether a request is bulk first
        assert is_control_request(scope) is control
