"""restic's path patterns, for ``restore --include/--exclude``.

A pattern is matched against a path's components, each with shell globbing
(``*``, ``?``, ``[...]``); ``**`` stands for any number of components. A
pattern starting with ``/`` is anchored at the snapshot's root and matches a
path that begins with it (so ``/home/u`` also matches everything below it);
any other pattern matches wherever its components appear in a row (``*.log``
matches every ``.log`` file, ``cache`` every entry in a directory named
cache). ``!pattern`` takes back what earlier patterns matched.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from vaultwatch.engine.errors import EngineError

_DOUBLE = "**"


@dataclass(frozen=True)
class Pattern:
    """One parsed pattern."""

    text: str
    parts: tuple[str, ...]
    anchored: bool
    negated: bool

    @classmethod
    def parse(cls, text: str) -> Pattern:
        """Parse ``text``; an empty pattern is an error, as in restic."""
        raw = text.strip()
        negated = raw.startswith("!")
        if negated:
            raw = raw[1:]
        if not raw:
            raise EngineError(f"empty pattern {text!r}")
        norm = posixpath.normpath(raw)
        anchored = norm.startswith("/")
        parts = tuple(p for p in norm.split("/") if p and p != ".")
        return cls(text, parts, anchored, negated)

    def match(self, path: Sequence[str]) -> bool:
        """Whether the path (its components below the root) matches."""
        return _match(self.parts, self.anchored, list(path))

    def child_may_match(self, path: Sequence[str]) -> bool:
        """Whether something below the directory ``path`` may match (restic's ChildMatch)."""
        if not self.anchored:
            return True
        strs = list(path)
        if _DOUBLE in self.parts:
            strs = strs[: self.parts.index(_DOUBLE)]
        n = min(len(strs), len(self.parts))
        return _match(self.parts[:n], True, strs[:n])


def _match(parts: Sequence[str], anchored: bool, strs: list[str]) -> bool:
    if _DOUBLE in parts:
        pos = list(parts).index(_DOUBLE)
        head, tail = list(parts[:pos]), list(parts[pos + 1 :])
        # expand ** into 0..n single-component wildcards, as restic does
        for k in range(len(strs) - len(head) - len(tail) + 1):
            if _match([*head, *(["*"] * k), *tail], anchored, strs):
                return True
        return False
    if not parts:
        return not strs
    if len(parts) > len(strs):
        return False
    last = 0 if anchored else len(strs) - len(parts)
    for offset in range(last, -1, -1):
        if all(fnmatch.fnmatchcase(strs[offset + i], p) for i, p in enumerate(parts)):
            return True
    return False


class PathSelector:
    """Which paths of a snapshot a restore takes: included (or all) and not excluded."""

    def __init__(self, includes: Sequence[str] = (), excludes: Sequence[str] = ()) -> None:
        self.includes = [Pattern.parse(p) for p in includes]
        self.excludes = [Pattern.parse(p) for p in excludes]

    @property
    def everything(self) -> bool:
        """Whether every path is taken."""
        return not self.includes and not self.excludes

    @staticmethod
    def _list(patterns: Sequence[Pattern], path: list[str]) -> bool:
        matched = False
        for p in patterns:
            if p.match(path):
                matched = not p.negated
        return matched

    def excluded(self, path: list[bytes]) -> bool:
        """Whether an exclude pattern matches (the entry and all below it are left out)."""
        return bool(self.excludes) and self._list(self.excludes, _text(path))

    def included(self, path: list[bytes]) -> bool:
        """Whether an include pattern matches (or there are none); entries below match too."""
        return not self.includes or self._list(self.includes, _text(path))

    def child_may_be_included(self, path: list[bytes]) -> bool:
        """Whether an include pattern may match something below the directory ``path``."""
        text = _text(path)
        return any(not p.negated and p.child_may_match(text) for p in self.includes)


def _text(path: list[bytes]) -> list[str]:
    return [os.fsdecode(p) for p in path]
