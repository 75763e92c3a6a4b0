"""The product's one duration grammar: fixed-length durations and calendar durations."""

from __future__ import annotations

import pytest

from vaultwatch.durations import CalendarParts, DurationError, parse_calendar, parse_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("250ms", 0.25),
        ("90s", 90.0),
        ("5m", 300.0),
        ("5min", 300.0),
        ("1.5h", 5400.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        (" 24H ", 86400.0),
    ],
)
def test_fixed_length_durations(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("-5m", "negative"),
        ("5x", "unknown unit 'x'"),
        ("6mo", "no fixed length"),
        ("1y", "no fixed length"),
        ("1h30", "no unit"),
        ("soon", "expected a number"),
    ],
)
def test_what_is_not_a_fixed_length_duration_is_explained(text: str, message: str) -> None:
    with pytest.raises(DurationError, match=message):
        parse_seconds(text)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("1y2mo3d4h", CalendarParts(years=1, months=2, days=3, hours=4)),
        ("6mo", CalendarParts(months=6)),
        ("2w", CalendarParts(days=14)),
        ("1w2d", CalendarParts(days=9)),
        ("36h", CalendarParts(hours=36)),
    ],
)
def test_calendar_durations(text: str, parts: CalendarParts) -> None:
    assert parse_calendar(text) == parts


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2m", "'m' is ambiguous here; write 'mo' for months"),
        ("1.5d", "whole numbers"),
        ("3d3d", "more than once"),
        ("5", "no unit"),
        ("5s", "unknown unit 's'"),
    ],
)
def test_what_is_not_a_calendar_duration_is_explained(text: str, message: str) -> None:
    with pytest.raises(DurationError, match=message):
        parse_calendar(text)
