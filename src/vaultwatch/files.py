"""Writing files that hold secrets or state: one definition of "private, complete, durable".

Every such file (settings with a catalog password, keys, passphrases, the
agent's config and status) is created with its final mode from the first
byte, written in full (``os.write`` may write less than asked), flushed to
disk, and either created exclusively or swapped in by one rename, so a crash
never leaves half a file where a whole one was.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (a single os.write may be short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_private(
    path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE, exclusive: bool = False
) -> None:
    """Write ``path`` with ``mode`` from its creation, fsynced.

    ``exclusive``: create it and refuse (FileExistsError) if it exists, as for
    keys that must never be replaced silently; otherwise replace it atomically
    through a temporary file in the same directory.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    target = path if exclusive else path.with_name(f".{path.name}.tmp-{os.getpid()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(target, flags, mode)
    try:
        os.fchmod(fd, mode)  # a umask or a left-over temporary file must not widen it
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    if not exclusive:
        os.replace(target, path)
