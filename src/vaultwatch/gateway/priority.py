"""Control traffic before bulk data: uploads and downloads step aside while heartbeats are served.

One server process runs one event loop and, for Python code, one core. Ten
agents streaming packs at their uplink speed keep that loop busy decrypting
and spooling bytes, and a heartbeat or job report that arrives meanwhile
queues behind them: in our benchmark its p99 latency rose from 30 ms to
300 ms. The SOC reads those reports to tell a healthy agent from a dead one,
so they must stay fast whatever the data path is doing.

The middleware counts the control requests in flight. A bulk transfer (the
body of a vault object upload, the body of a download) waits before each
chunk until none is in flight, but never longer than ``max_wait`` per chunk,
so bulk data always moves. While a transfer waits it reads nothing: the
server stops reading its socket and TCP's flow control slows the sender, so
no memory piles up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from vaultwatch.gateway.asgi import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_WAIT = 0.1
"""Seconds a bulk chunk waits at most for control requests to finish."""


class ControlGate:
    """Control requests in flight, and a way for bulk transfers to wait until there are none."""

    def __init__(self, max_wait: float = DEFAULT_MAX_WAIT) -> None:
        self.max_wait = max_wait
        self.in_flight = 0
        self.bulk_waits = 0
        """How many bulk chunks waited for control requests (for tests and diagnostics)."""
        self._idle: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _event(self) -> asyncio.Event:
        # An Event belongs to the loop it first waits on; tests run one app on several loops.
        loop = asyncio.get_running_loop()
        if self._idle is None or self._loop is not loop:
            self._idle, self._loop = asyncio.Event(), loop
            if self.in_flight == 0:
                self._idle.set()
        return self._idle

    def enter(self) -> None:
        """A control request started."""
        self.in_flight += 1
        self._event().clear()

    def leave(self) -> None:
        """A control request finished (its response was sent, or it failed)."""
        self.in_flight -= 1
        if self.in_flight == 0:
            self._event().set()

    async def step_aside(self) -> None:
        """Wait until no control request is in flight, or ``max_wait`` seconds."""
        if self.in_flight == 0:
            return
        self.bulk_waits += 1
        with contextlib.suppress(TimeoutError):  # constant control traffic: move a chunk anyway
            await asyncio.wait_for(self._event().wait(), self.max_wait)


class ControlFirstMiddleware:
    """Serve control requests ahead of the bodies of bulk transfers (see the module docstring).

    ``is_bulk`` names the requests whose bodies are bulk data; ``is_control``
    the short requests that go first. Requests that are neither (long-lived
    streams, for instance) are left alone: counting them as control would
    hold bulk data back for as long as they last.
    """

    def __init__(
        self,
        app: ASGIApp,
        gate: ControlGate,
        is_bulk: Callable[[Scope], bool],
        is_control: Callable[[Scope], bool],
    ) -> None:
        self.app = app
        self.gate = gate
        self.is_bulk = is_bulk
        self.is_control = is_control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif self.is_bulk(scope):
            await self.app(scope, self._gated_receive(receive), self._gated_send(send))
        elif self.is_control(scope):
            self.gate.enter()
            try:
                await self.app(scope, receive, send)
            finally:
                self.gate.leave()
        else:
            await self.app(scope, receive, send)

    def _gated_receive(self, receive: Receive) -> Receive:
        gate = self.gate

        async def gated() -> Message:
            await gate.step_aside()
            return await receive()

        return gated

    def _gated_send(self, send: Send) -> Send:
        gate = self.gate

        async def gated(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                await gate.step_aside()
            await send(message)

        return gated


__all__ = ["DEFAULT_MAX_WAIT", "ControlFirstMiddleware", "ControlGate"]
