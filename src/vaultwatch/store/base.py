"""The Store protocol: a flat namespace of immutable named objects.

Every repository lives on a Store. Names are slash-separated relative paths
(``config``, ``keys/<id>``, ``locks/<id>``, ``snapshots/<id>``, ``index/<id>``,
``data/<aa>/<id>``). Objects are written whole and atomically: a reader sees
either the complete object or nothing, never a partial write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from vaultwatch.store.errors import InvalidObjectNameError

_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True)
class StoredObject:
    """One entry of a listing."""

    name: str
    size: int


@runtime_checkable
class Store(Protocol):
    """Where a repository's bytes live."""

    @property
    def location(self) -> str:
        """A human-readable location (path or URL, never with credentials)."""
        ...

    def put(self, name: str, data: bytes, *, overwrite: bool = False) -> None:
        """Store ``data`` under ``name`` atomically.

        Raises ObjectExistsError when the name exists and ``overwrite`` is false.
        """
        ...

    def get(self, name: str) -> bytes:
        """Return the whole object; ObjectNotFoundError when missing."""
        ...

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset``; fewer only at the end of the object."""
        ...

    def exists(self, name: str) -> bool:
        """Whether the object exists."""
        ...

    def size(self, name: str) -> int:
        """The object's size in bytes; ObjectNotFoundError when missing."""
        ...

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose name starts with ``prefix``, in no particular order."""
        ...

    def delete(self, name: str) -> None:
        """Remove the object; ObjectNotFoundError when missing."""
        ...

    def close(self) -> None:
        """Release connections and handles."""
        ...


TEMP_PREFIX = ".tmp-"
"""Reserved for a store's in-flight writes, so a crash leftover can never pass for an object."""


def check_name(name: str) -> str:
    """Refuse names that could escape the store (``..``, absolute, empty parts, odd characters)."""
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts) or not set(name) - {"/"} <= _ALLOWED:
        raise InvalidObjectNameError(f"invalid object name: {name!r}")
    if any(p.startswith(TEMP_PREFIX) for p in parts):
        raise InvalidObjectNameError(f"invalid object name: {name!r} ({TEMP_PREFIX!r} is reserved)")
    return name


def check_prefix(prefix: str) -> str:
    """Refuse listing prefixes that could leave the store; the last part may be partial."""
    if not prefix:
        return prefix
    head, slash, tail = prefix.rpartition("/")
    if slash:
        try:
            check_name(head)
        except InvalidObjectNameError:
            raise InvalidObjectNameError(f"invalid object name prefix: {prefix!r}") from None
    if not set(tail) <= _ALLOWED:
        raise InvalidObjectNameError(f"invalid object name prefix: {prefix!r}")
    return prefix
