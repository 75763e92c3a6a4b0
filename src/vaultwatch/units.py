"""How sizes, durations and counts are written for people, in the CLI and on the web alike."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``1 snapshot``, ``2 snapshots``."""
    return f"{count} {noun}{'s' if count != 1 else ''}"


def human_bytes(n: int | float) -> str:
    """Sizes as restic prints them: binary units, two decimals."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
