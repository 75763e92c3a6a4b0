"""Structured logs for the agent: one JSON object per line on stderr (journald keeps them).

Nothing secret is ever passed to a log call; as a second line of defence the
formatter masks anything that looks like a bearer credential.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_SECRET = re.compile(r"(Bearer\s+)\S+|\bvw[a-z]*_[A-Za-z0-9_\-]{16,}")


def _mask(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or "") + "***", text)


class JsonFormatter(logging.Formatter):
    """time, level, logger, message (and the exception, if any) as JSON."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _mask(record.getMessage()),
        }
        if record.exc_info:
            doc["exception"] = _mask(self.formatException(record.exc_info))
        return json.dumps(doc)


class TextFormatter(logging.Formatter):
    """A plain line for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return _mask(super().format(record))


def setup_logging(level: str, fmt: str = "json") -> None:
    """Send the agent's logs to stderr; quiet the HTTP library's per-request lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
