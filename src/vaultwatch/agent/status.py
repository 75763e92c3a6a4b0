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

from vaultwatch.files import write_private

STATUS_FILE = "status.json"
MAX_REFUSED_REPORTS = 20
"""How many job reports the service refused for good the status keeps (the newest)."""


def status_path(state_dir: Path) -> Path:
    """Where the status file lives."""
    return state_dir / STATUS_FILE


def write_status(path: Path, doc: dict[str, Any]) -> None:
    """Replace the status file in one rename (a reader never sees half a file)."""
    write_private(path, json.dumps(doc, indent=1, sort_keys=True).encode(), mode=0o640)


def read_status(path: Path) -> dict[str, Any] | None:
    """The last status written, or None when there is none (or it is unreadable)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def refused_report(
    job_uid: str, body: dict[str, Any], http_status: int, problem: str, at: float
) -> dict[str, Any]:
    """The status entry of a job report the service refused (it is not sent again).

    The service's job then misses this update, so the operator must be able
    to see what was refused and why: the agent's log alone rotates away.
    """
    return {
        "job_uid": job_uid,
        "backup_set": body.get("backup_set"),
        "state": body.get("state"),
        "http_status": http_status,
        "problem": problem,
        "refused_at": at,
    }


def kept_refused_reports(previous: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The refused reports an earlier status listed, so a restart does not hide them."""
    entries = (previous or {}).get("refused_reports")
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict)][-MAX_REFUSED_REPORTS:]


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
