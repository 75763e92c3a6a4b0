"""Event text cleaning: clean text passes untouched, everything else is cleaned as before."""

from __future__ import annotations

import pytest

from vaultwatch.soc.events import clean_text


def test_clean_text_is_returned_as_it_is() -> None:
    text = "disk /var 91% full on db-01 (größer als erwartet) ✓"
    assert clean_text(text, 1000) is text


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("line one\nline two\ttabbed\r", "line one line two tabbed"),
        ("\x1b[31mred\x00\x7f\x9f", "[31mred"),
        ("right\u202eto left\u2066isolated\u2069\u200b", "rightto leftisolated"),
        ("  padded  ", "padded"),
        ("\u00a0no-break space\u00a0", "no-break space"),
        ("\u00a0inside\u00a0kept", "inside\u00a0kept"),
    ],
)
def test_control_and_direction_characters_are_removed(raw: str, cleaned: str) -> None:
    assert clean_text(raw, 1000) == cleaned


def test_long_clean_text_is_still_cut() -> None:
    assert clean_text("x" * 20, 10) == "x" * 9 + "…"
    assert clean_text("x" * 10, 10) == "x" * 10
