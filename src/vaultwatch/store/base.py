"""The Store protocol: a flat namespace of immutable named objects.

Every repository lives on a Store. Names are slash-separated relative paths
(``config``, ``keys/<id>``, ``locks/<id>``, ``snapshots/<id>``, ``index/<id>``,
``data/<aa>/<id>``). Objects are written whole and atomically: a reader sees
either the complete object or nothing, never a partial write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from vaultwatch.store.errors import InvalidObjectNameError, RepositoryNotFoundError

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

    @property
    def reads_cheaply(self) -> bool:
        """Whether a read is a local system call rather than a network round trip.

        Restores then fetch fewer packs at once and read them in short spans:
        more in flight would only hold more memory, not hide any latency.
        """
        ...

    @property
    def reads_in_place(self) -> bool:
        """Whether ``read_into`` fills the caller's buffer directly, with no bytes in between.

        Only then does a reused read buffer save the fresh memory (and page
        faults) of a new bytes object per read.
        """
        ...

    @property
    def leaves_no_cycles(self) -> bool:
        """Whether a call leaves no reference cycle that holds its data once it returns.

        An HTTP client's request does (its body stays reachable until the
        cyclic collector runs), so only then may a backup or restore make the
        collector's young generation run rarely.
        """
        ...

    def put(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        """Store ``data`` under ``name`` atomically.

        A view is used only until put returns (a store that keeps the data
        longer copies it), so the caller may reuse the buffer behind it.
        Raises ObjectExistsError when the name exists and ``overwrite`` is false.
        """
        ...

    def put_file(self, name: str, source: Path) -> None:
        """Store the finished file ``source`` as the new object ``name`` (create-only).

        The caller still owns ``source``; a store on the same file system may
        link it into place instead of writing the bytes again.
        """
        ...

    def get(self, name: str) -> bytes:
        """Return the whole object; ObjectNotFoundError when missing."""
        ...

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset``; fewer only at the end of the object."""
        ...

    def read_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """Fill ``buffer`` from ``offset``; the bytes read, fewer only at the end of the object."""
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

    def holds_anything(self) -> bool:
        """Whether anything is there yet: an object, or in a directory any file at all.

        A new repository is made only where nothing is, so init never mixes
        its objects with someone else's files.
        """
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


_CHAR = "[A-Za-z0-9._-]"
#: One part of a name as ``check_name`` takes it: not ``.`` or ``..``, not starting ``.tmp-``.
#: Written without look-arounds, so every JSON Schema validator and generator can use it.
_PART = "|".join(
    (
        f"[A-Za-z0-9_-]{_CHAR}*",
        rf"\.\.{_CHAR}+",
        rf"\.[A-Za-su-z0-9_-]{_CHAR}*",
        rf"\.t(?:[A-Za-ln-z0-9._-]{_CHAR}*)?",
        rf"\.tm(?:[A-Za-oq-z0-9._-]{_CHAR}*)?",
        rf"\.tmp(?:[A-Za-z0-9._]{_CHAR}*)?",
    )
)
NAME_REGEX = f"(?:{_PART})(?:/(?:{_PART}))*"
"""The names ``check_name`` accepts, as a regular expression (for the API's published schema)."""
PREFIX_REGEX = f"(?:{NAME_REGEX}/)?{_CHAR}*"
"""The listing prefixes ``check_prefix`` accepts, likewise."""


def read_into_by_range(store: Store, name: str, offset: int, buffer: memoryview) -> int:
    """``read_into`` for a store whose reads arrive as new bytes: a range read, then a copy."""
    data = store.get_range(name, offset, len(buffer))
    buffer[: len(data)] = data
    return len(data)


def holds_any_object(store: Store) -> bool:
    """``holds_anything`` for a store that only ever holds objects (a bucket, a gateway's vault)."""
    try:
        return next(iter(store.list()), None) is not None
    except RepositoryNotFoundError:
        return False  # not created yet, like a missing directory
