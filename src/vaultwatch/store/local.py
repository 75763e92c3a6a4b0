"""A Store on a local (or mounted) file system: one file per object under a root directory.

Writes go to a temp file in the target directory, are fsynced, then linked into
place (create-only) or renamed over the old object, and the directory is fsynced:
after ``put`` returns the object survives a power cut, and a crash mid-write
leaves at most a ``.tmp-`` file that no reader ever sees as an object.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from vaultwatch.store.base import TEMP_PREFIX, StoredObject, check_name, check_prefix
from vaultwatch.store.errors import (
    InvalidObjectNameError,
    ObjectExistsError,
    ObjectNotFoundError,
    RepositoryNotFoundError,
    StoreError,
    StoreFullError,
    StorePermissionError,
)

_FILE_MODE = 0o600  # repository files are private to the service account, as restic does
_DIR_MODE = 0o700
_MAX_READ = 1 << 30  # pread caps a single call near 2 GiB; stay well below


class LocalStore:
    """Objects are files under ``root`` at their slash-separated name."""

    def __init__(self, root: Path | str) -> None:
        # Absolute once, so a later chdir cannot move the repository under us.
        self._root = Path(os.path.abspath(root))

    @property
    def root(self) -> Path:
        """The repository directory."""
        return self._root

    @property
    def location(self) -> str:
        """The absolute path of the repository directory."""
        return str(self._root)

    @property
    def reads_cheaply(self) -> bool:
        """A read is a pread on a local (or mounted) file system."""
        return True

    @property
    def reads_in_place(self) -> bool:
        """``read_into`` is a preadv straight into the caller's buffer."""
        return True

    @property
    def leaves_no_cycles(self) -> bool:
        """Every call is plain system calls: nothing of its data outlives it."""
        return True

    def __repr__(self) -> str:
        return f"LocalStore({self.location!r})"

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- setup -------------------------------------------------------------------------------

    def create_if_missing(self) -> None:
        """Create the repository directory (for ``init``); objects are never put without it."""
        try:
            self._root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            _fsync_dir(self._root.parent)
        except FileExistsError:
            raise RepositoryNotFoundError(
                f"cannot create a repository at {self.location}: it exists and is not a directory"
            ) from None
        except OSError as exc:
            raise self._error(exc, None, "creating") from None

    # -- Store protocol ----------------------------------------------------------------------

    def put(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        """Write ``data`` atomically and durably; refuse to replace unless ``overwrite``."""
        path = self._path(name)
        parent = path.parent
        self._ensure_dir(parent, name)
        tmp = parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if overwrite:
                os.replace(tmp, path)
            else:
                # link() fails if the name exists, so two racing writers cannot clobber each
                # other; rename() would silently replace.
                os.link(tmp, path)
        except OSError as exc:
            raise self._write_error(exc, name) from None
        finally:
            with contextlib.suppress(OSError):  # already renamed, or never created
                os.unlink(tmp)
        self._sync_new_entry(parent, name)

    def put_file(self, name: str, source: Path) -> None:
        """Store the finished file ``source`` as the new object ``name`` without copying it.

        The gateway receives uploads into a spool file on the same file
        system: linking that file into place (after an fsync) writes the
        bytes once instead of twice. The caller still owns ``source`` and
        removes it. Another file system (EXDEV) falls back to a copy.
        """
        path = self._path(name)
        parent = path.parent
        self._ensure_dir(parent, name)
        try:
            fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fchmod(fd, _FILE_MODE)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(source, path)  # create-only, as in put()
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                self.put(name, source.read_bytes())
                return
            raise self._write_error(exc, name) from None
        self._sync_new_entry(parent, name)

    def _write_error(self, exc: OSError, name: str) -> StoreError:
        """What a failed create-only write means: the name is taken, or a store error."""
        if exc.errno in (errno.EEXIST, errno.EISDIR):
            return ObjectExistsError(f"object {name!r} already exists in {self.location}")
        return self._error(exc, name, "writing")

    def _sync_new_entry(self, parent: Path, name: str) -> None:
        """fsync the directory that got the new name, so the object survives a power cut."""
        try:
            _fsync_dir(parent)
        except OSError as exc:
            raise self._error(exc, name, "writing") from None

    def get(self, name: str) -> bytes:
        """Read the whole object."""
        path = self._path(name)
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise self._error(exc, name, "reading") from None

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` with pread; shorter only at the end of the object."""
        if offset < 0 or length < 0:
            raise ValueError(f"offset and length must be >= 0, got {offset} and {length}")
        with self._reading(name) as fd:
            parts: list[bytes] = []
            got = 0
            while got < length:
                chunk = os.pread(fd, min(length - got, _MAX_READ), offset + got)
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
            return b"".join(parts)

    def read_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """Fill ``buffer`` from ``offset``; the bytes read, fewer only at the end of the object.

        Restores read every pack this way into one buffer per thread: a new
        bytes object per read is fresh memory, page-faulted in every time.
        """
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        with self._reading(name) as fd:
            got = 0
            while got < len(buffer):
                n = os.preadv(fd, [buffer[got : got + _MAX_READ]], offset + got)
                if not n:
                    break
                got += n
            return got

    @contextlib.contextmanager
    def _reading(self, name: str) -> Iterator[int]:
        """An object's file opened for reading; OS errors become store errors."""
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    raise IsADirectoryError(errno.EISDIR, "Is a directory")
                yield fd
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._error(exc, name, "reading") from None

    def exists(self, name: str) -> bool:
        """Whether a regular file of that name exists (directories are not objects)."""
        path = self._path(name)
        try:
            return stat.S_ISREG(os.stat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise self._error(exc, name, "checking") from None

    def size(self, name: str) -> int:
        """The file's size in bytes."""
        path = self._path(name)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise self._error(exc, name, "checking") from None
        if not stat.S_ISREG(st.st_mode):
            raise self._error(IsADirectoryError(errno.EISDIR, "Is a directory"), name, "checking")
        return st.st_size

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Walk only the directory the prefix names; temp files and foreign names are skipped."""
        check_prefix(prefix)
        if not self._root.is_dir():
            raise RepositoryNotFoundError(f"no repository at {self.location}")
        head = prefix.rpartition("/")[0]
        stack = [(self._root / head if head else self._root, f"{head}/" if head else "")]
        while stack:
            directory, rel = stack.pop()
            try:
                with os.scandir(directory) as entries:
                    found = list(entries)
            except (FileNotFoundError, NotADirectoryError):
                continue  # the prefix names nothing, or a directory vanished meanwhile
            except OSError as exc:
                raise self._error(exc, None, "listing") from None
            for entry in found:
                if entry.name.startswith(TEMP_PREFIX):
                    continue
                name = rel + entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        sub = name + "/"
                        if sub.startswith(prefix) or prefix.startswith(sub):
                            stack.append((Path(entry.path), sub))
                        continue
                    if not name.startswith(prefix) or not entry.is_file():
                        continue
                    check_name(name)
                    size = entry.stat().st_size
                except InvalidObjectNameError:
                    continue  # a file someone else put here: not addressable, not ours
                except FileNotFoundError:
                    continue  # deleted while we listed
                except OSError as exc:
                    raise self._error(exc, name, "listing") from None
                yield StoredObject(name, size)

    def delete(self, name: str) -> None:
        """Remove the file and make the removal durable; directories stay for later writes."""
        path = self._path(name)
        try:
            os.unlink(path)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise self._error(exc, name, "deleting") from None

    def holds_anything(self) -> bool:
        """Whether the directory holds any file at all, objects or not (a missing one holds none)."""
        try:
            return self._root.is_dir() and any(self._root.iterdir())
        except OSError as exc:
            raise self._error(exc, None, "listing") from None

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own handles."""

    # -- helpers -----------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self._root / check_name(name)

    def _ensure_dir(self, directory: Path, name: str) -> None:
        """Create missing parents below the root, fsyncing each new entry's parent."""
        if directory.is_dir():
            return
        if not self._root.is_dir():
            raise RepositoryNotFoundError(f"no repository at {self.location}")
        current = self._root
        for part in directory.relative_to(self._root).parts:
            parent, current = current, current / part
            try:
                os.mkdir(current, _DIR_MODE)
            except FileExistsError:
                if not current.is_dir():
                    rel = current.relative_to(self._root).as_posix()
                    raise ObjectExistsError(
                        f"cannot store {name!r} in {self.location}: {rel!r} is an object"
                    ) from None
                continue  # created meanwhile by a concurrent writer
            except OSError as exc:
                raise self._error(exc, name, "writing") from None
            try:
                _fsync_dir(parent)
            except OSError as exc:
                raise self._error(exc, name, "writing") from None

    def _error(self, exc: OSError, name: str | None, action: str) -> StoreError:
        """Turn an OSError into the StoreError a caller can act on, naming object and place."""
        what = f"object {name!r}" if name is not None else "the repository"
        where = self.location
        code = exc.errno
        reason = exc.strerror or str(exc)
        if code in (errno.ENOSPC, errno.EDQUOT):
            return StoreFullError(f"no space left in {where} while {action} {what}: {reason}")
        if code in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StorePermissionError(f"permission denied {action} {what} in {where}: {reason}")
        if code in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
            if not self._root.is_dir():
                return RepositoryNotFoundError(f"no repository at {where}")
            if name is None:
                return StoreError(f"error {action} {what} in {where}: {reason}")
            return ObjectNotFoundError(f"object {name!r} not found in {where}")
        if code == errno.EEXIST and name is not None:
            return ObjectExistsError(f"object {name!r} already exists in {where}")
        return StoreError(f"error {action} {what} in {where}: {reason}")


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Persist directory entries (a new link, a rename, an unlink)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # some file systems cannot fsync a directory
            raise
    finally:
        os.close(fd)
