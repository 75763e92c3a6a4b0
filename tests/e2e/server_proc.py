"""The real server app (``build_app``, uvicorn, TLS from the data directory) with a request log.

Run as a script by the e2e tests. Besides serving exactly what
``vaultwatch server run`` serves, it appends one JSON line per vault upload
to ``--events``: when the request reached the app (``start``, with its
declared size, before any of the body is read) and when it was answered
(``done``, with the status). A PUT cut mid-body has a start and no done, so
counting starts per object name counts every time a pack was sent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from vaultwatch.server import build_app, log_config
from vaultwatch.server_config import load_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]  # fmt: skip

OBJECTS = "/api/v1/vault/objects/"


class UploadLog:
    """Wraps the app; logs each vault object PUT."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.out = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def write(self, doc: dict[str, Any]) -> None:
        doc["t"] = time.time()
        with self.lock:
            self.out.write(json.dumps(doc) + "\n")

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or scope["method"] != "PUT" or not path.startswith(OBJECTS):
            await self.app(scope, receive, send)
            return
        name = path[len(OBJECTS) :]
        size = next((int(v) for k, v in scope["headers"] if k == b"content-length"), -1)
        self.write({"event": "start", "name": name, "size": size, "pid": os.getpid()})

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.write({"event": "done", "name": name, "status": message["status"]})
            await send(message)

        await self.app(scope, receive, logged_send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", required=True)
    args = parser.parse_args()
    settings = load_settings(args.data_dir)
    app = UploadLog(build_app(settings), args.events)
    print(f"serving on {args.port} (pid {os.getpid()})", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        ssl_certfile=str(settings.tls_cert),
        ssl_keyfile=str(settings.tls_key),
        log_config=log_config("warning"),
        log_level="warning",
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
