"""The agent's live status, as a small JSON file in its state directory.

The daemon rewrites it every second (atomically), and ``vaultwatch agent
status`` reads it: no socket to secure, and the file tells the last known
state even when the daemon is down (the pid in it tells whether it runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"


def status_path(state_dir: Path) -> Path:
    """Where the status file lives."""
    return state_dir / STATUS_FILE


def write_status(path: Path, doc: dict[str, Any]) -> None:
    """Replace the status file in one rename (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, json.dumps(doc, indent=1, sort_keys=True).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    """The last status written, or None when there is none (or it is unreadable)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
