"""Server-Sent Events for the live pages: the message format and the polling loop they share.

A live page's stream polls the catalog (in a worker thread) every
`poll_seconds`, sends what changed, and sends a comment now and then so
proxies keep the connection. It ends itself after `STREAM_SECONDS` and the
browser reconnects at once (``retry``): a restart waits at most that long for
open pages (uvicorn waits for open responses), and a revoked session is cut
off within it. A catalog outage ends the stream; the browser reconnects and
finds out for itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

log = logging.getLogger("vaultwatch.web")

HEARTBEAT_SECONDS = 15.0
STREAM_SECONDS = 25.0
RETRY_MS = 1500


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    """One SSE message: an optional ``id:``, the event name and its JSON data."""
    lines = [f"id: {event_id}"] if event_id else []
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


async def poll_events(
    request: Request, poll: Callable[[], str | None], *, what: str, poll_seconds: float
) -> AsyncIterator[str]:
    """The stream of one live page: `poll` (run in a thread) says what changed, or None."""
    yield f"retry: {RETRY_MS}\n\n"
    started = last = time.monotonic()
    while time.monotonic() - started < STREAM_SECONDS:
        if await request.is_disconnected():
            return
        try:
            message = await run_in_threadpool(poll)
        except OperationalError:
            log.warning("%s stream: the catalog is unavailable; ending the stream", what)
            return
        if message is not None:
            yield message
            last = time.monotonic()
        elif time.monotonic() - last >= HEARTBEAT_SECONDS:
            yield ": heartbeat\n\n"
            last = time.monotonic()
        await asyncio.sleep(poll_seconds)
