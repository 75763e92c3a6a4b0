"""restic's include/exclude pattern rules, case by case."""

from __future__ import annotations

import pytest

from vaultwatch.engine.errors import EngineError
from vaultwatch.engine.patterns import PathSelector, Pattern


def parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


@pytest.mark.parametrize(
    ("pattern", "path", "matched"),
    [
        ("/home/u", "/home/u", True),
        ("/home/u", "/home/u/docs/a.txt", True),  # anchored: a prefix of components
        ("/home/u", "/srv/home/u", False),
        ("/home/u", "/home/user", False),
        ("*.txt", "/home/u/a.txt", True),  # unanchored: anywhere
        ("*.txt", "/home/u/a.txt.bak", False),
        ("*.txt", "/home/notes.txt/inner", True),  # below a match
        ("cache", "/home/u/cache/x/y", True),
        ("u/docs", "/home/u/docs/a", True),
        ("u/docs", "/home/u/x/docs", False),
        ("/home/*/docs", "/home/u/docs/a", True),
        ("/home/**/a.txt", "/home/a.txt", True),  # ** is zero or more components
        ("/home/**/a.txt", "/home/u/v/w/a.txt", True),
        ("/home/**/a.txt", "/srv/u/a.txt", False),
        ("**/deep", "/a/b/deep", True),
        ("/h?me/[uv]", "/home/v", True),
        ("/home/u/", "/home/u/x", True),  # a trailing slash changes nothing
        ("/home/./u/../u", "/home/u", True),
    ],
)
def test_match(pattern: str, path: str, matched: bool) -> None:
    assert Pattern.parse(pattern).match(parts(path)) is matched


@pytest.mark.parametrize(
    ("pattern", "directory", "may"),
    [
        ("/home/u/docs", "/home", True),
        ("/home/u/docs", "/home/u", True),
        ("/home/u/docs", "/srv", False),
        ("/home/u/docs", "/home/v", False),
        ("/home/**/x", "/home/a/b/c", True),
        ("/home/**/x", "/srv/a", False),
        ("*.txt", "/anything", True),  # unanchored patterns may match anywhere below
    ],
)
def test_child_may_match(pattern: str, directory: str, may: bool) -> None:
    assert Pattern.parse(pattern).child_may_match(parts(directory)) is may


def test_selector_includes_excludes_and_negation() -> None:
    sel = PathSelector(["/data"], ["*.log", "!keep.log"])
    assert sel.included([b"data", b"a.txt"]) and not sel.included([b"etc", b"a"])
    assert sel.excluded([b"data", b"x.log"])
    assert not sel.excluded([b"data", b"keep.log"])  # taken back by the negation
    assert sel.child_may_be_included([b"data"]) and not sel.child_may_be_included([b"etc"])
    assert PathSelector().everything and not sel.everything


def test_undecodable_names_match_by_their_escapes() -> None:
    assert PathSelector([], ["bad*"]).excluded([b"d", b"bad\xff"])


@pytest.mark.parametrize("text", ["", "  ", "!"])
def test_empty_pattern_is_an_error(text: str) -> None:
    with pytest.raises(EngineError, match="empty pattern"):
        Pattern.parse(text)
