"""Durations as people write them: one grammar for the agent's config, the CLI and retention.

Fixed-length units: ``ms``, ``s``, ``m`` or ``min`` (minutes), ``h``, ``d``,
``w``; tokens combine (``1h30m``) and a bare number is seconds. Months and
years have no fixed length, so only calendar durations (retention's
keep-within) take them, written ``mo`` and ``y``. There a bare ``m`` is
refused as ambiguous: restic users write months as ``m``, and ``2m`` must
never quietly keep two minutes of history where two months were meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_TOKEN = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
EXAMPLES = '30, "30s", "5m", "1h30m", "2d" or "1w"'


class DurationError(ValueError):
    """Text that is not a duration; the message says how to write one."""


def _tokens(text: str) -> list[tuple[str, str]]:
    raw = text.strip().lower()
    if not raw:
        raise DurationError("empty duration")
    if raw.startswith("-"):
        raise DurationError(f"{text!r} must not be negative")
    found, pos = [], 0
    while pos < len(raw):
        m = _TOKEN.match(raw, pos)
        if m is None:
            raise DurationError(f"{text!r}: expected a number at {raw[pos:]!r}")
        found.append((m.group(1), m.group(2)))
        pos = m.end()
        while pos < len(raw) and raw[pos] == " ":
            pos += 1
    return found


def parse_seconds(text: str) -> float:
    """Seconds in a fixed-length duration such as ``90s``, ``5m``, ``1h30m`` or ``1.5h``."""
    total = 0.0
    tokens = _tokens(text)
    for number, unit in tokens:
        if unit in ("mo", "y"):
            raise DurationError(
                f"{text!r}: months and years have no fixed length; use days or weeks here"
            )
        if unit == "" and len(tokens) > 1:
            raise DurationError(f"{text!r}: the number {number} has no unit")
        factor = SECONDS.get(unit or "s")
        if factor is None:
            raise DurationError(f"{text!r}: unknown unit {unit!r} (use ms, s, m, h, d or w)")
        total += float(number) * factor
    return total


@dataclass(frozen=True)
class CalendarParts:
    """A calendar duration's parts; months and years are counted, not converted to seconds."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0


_CALENDAR = {"y": "years", "mo": "months", "w": "weeks", "d": "days", "h": "hours"}


def parse_calendar(text: str) -> CalendarParts:
    """``1y2mo3d4h`` (each unit once, whole numbers): years, months, weeks, days, hours."""
    values: dict[str, int] = {}
    for number, unit in _tokens(text):
        if unit == "m":
            raise DurationError(
                f"{text!r}: 'm' is ambiguous here; write 'mo' for months (e.g. 6mo) "
                "or use hours and days"
            )
        if not unit:
            raise DurationError(f"{text!r}: the number {number} has no unit (y, mo, w, d or h)")
        name = _CALENDAR.get(unit)
        if name is None:
            raise DurationError(
                f"{text!r}: unknown unit {unit!r} (use y years, mo months, w weeks, d days, h hours)"
            )
        if "." in number:
            raise DurationError(f"{text!r}: use whole numbers (e.g. 36h rather than 1.5d)")
        if name in values:
            raise DurationError(f"{text!r}: the unit {unit!r} appears more than once")
        values[name] = int(number)
    weeks = values.pop("weeks", 0)
    values["days"] = values.get("days", 0) + 7 * weeks
    return CalendarParts(**values)
