"""The published forms of the store's name rules say exactly what ``check_name`` decides."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from vaultwatch.store.base import NAME_REGEX, PREFIX_REGEX, check_name, check_prefix
from vaultwatch.store.errors import InvalidObjectNameError

NAME = re.compile(NAME_REGEX)
PREFIX = re.compile(PREFIX_REGEX)
#: Every character class the rules tell apart: the dot, the letters of ``.tmp-``, others,
#: the slash and a character no name may hold.
ALPHABET = ".tmp-a/_Z9 "


def _accepted(check: Callable[[str], str], text: str) -> bool:
    try:
        check(text)
    except InvalidObjectNameError:
        return False
    return True


def test_regexes_agree_with_the_checks_on_every_short_string() -> None:
    for size in range(6):
        for chars in itertools.product(ALPHABET, repeat=size):
            text = "".join(chars)
            assert bool(NAME.fullmatch(text)) == _accepted(check_name, text), text
            assert bool(PREFIX.fullmatch(text)) == _accepted(check_prefix, text), text


@given(st.text(max_size=40))
def test_regexes_agree_with_the_checks_on_any_text(text: str) -> None:
    assert bool(NAME.fullmatch(text)) == _accepted(check_name, text)
    assert bool(PREFIX.fullmatch(text)) == _accepted(check_prefix, text)


@given(st.from_regex(NAME, fullmatch=True))
def test_every_name_the_regex_makes_is_accepted(name: str) -> None:
    assert check_name(name) == name
