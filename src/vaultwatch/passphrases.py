"""Passphrase files: one reading for the CLI's ``--passphrase-file`` and the agent's key file.

The passphrase is the file's first line without its line ending (``\\n`` or
``\\r\\n``). Other whitespace belongs to it, so a passphrase may begin or end
with spaces, and whatever follows the first line is ignored. A file that
cannot give a passphrase is a clear error naming the file, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

from vaultwatch.errors import VaultwatchError


class PassphraseFileError(VaultwatchError):
    """The passphrase file is missing, unreadable, not UTF-8 text, or its first line is empty."""


def read_passphrase_file(path: Path) -> str:
    """The first line of the file, without its line ending (other whitespace is kept)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PassphraseFileError(
            f"cannot read passphrase file {path}: it does not exist"
        ) from None
    except IsADirectoryError:
        raise PassphraseFileError(
            f"cannot read passphrase file {path}: it is a directory"
        ) from None
    except OSError as exc:
        raise PassphraseFileError(
            f"cannot read passphrase file {path}: {exc.strerror or exc}"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PassphraseFileError(f"passphrase file {path} is not UTF-8 text") from None
    first = text.split("\n", 1)[0].removesuffix("\r")
    if not first:
        raise PassphraseFileError(
            f"passphrase file {path} is empty (the passphrase is its first line)"
        )
    return first
