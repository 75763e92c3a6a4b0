"""``mount``: the snapshots as a read-only file system (FUSE), browsed with any tool.

The layout and reading are :mod:`vaultwatch.engine.mountfs`; this module
only hands the kernel's calls to it through fusepy (libfuse 2). It runs in
the foreground until Ctrl-C, SIGTERM or ``umount``, holding a shared lock
so prune cannot remove what is being read.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from vaultwatch.cli import output as out
from vaultwatch.cli.options import (
    CliError,
    NoLockOpt,
    PassphraseFileOpt,
    RepoOpt,
    open_repository,
    settings,
    shared_lock,
)
from vaultwatch.cli.repo.app import repo_app
from vaultwatch.engine.mountfs import Attr, SnapshotFS


def _fuse() -> Any:
    """fusepy, or a clear error where the machine has no FUSE."""
    if not os.path.exists("/dev/fuse"):
        raise CliError("mount needs FUSE: /dev/fuse does not exist on this machine")
    try:
        import fuse  # type: ignore[import-untyped]
    except (ImportError, OSError) as exc:
        raise CliError(
            f"mount needs fusepy and libfuse2 (Debian: apt install libfuse2): {exc}"
        ) from None
    return fuse


def _stat(attr: Attr) -> dict[str, int | float]:
    return {
        "st_mode": attr.mode,
        "st_size": attr.size,
        "st_mtime": attr.mtime_ns / 1e9,
        "st_atime": attr.mtime_ns / 1e9,
        "st_ctime": attr.mtime_ns / 1e9,
        "st_uid": attr.uid,
        "st_gid": attr.gid,
        "st_nlink": attr.nlink,
        "st_rdev": attr.rdev,
    }


def operations(view: SnapshotFS, fuse: Any) -> Any:
    """fusepy Operations answering from ``view``; every error becomes its errno."""

    def call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno or errno.EIO) from None
        except Exception:
            raise fuse.FuseOSError(errno.EIO) from None

    class Ops(fuse.Operations):  # type: ignore[misc]
        def getattr(self, path: str, fh: int | None = None) -> dict[str, int | float]:
            return _stat(call(view.getattr, path))

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *call(view.readdir, path)]

        def readlink(self, path: str) -> str:
            return str(call(view.readlink, path))

        def open(self, path: str, flags: int) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR):
                raise fuse.FuseOSError(errno.EROFS)
            call(view.getattr, path)
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            return bytes(call(view.read, path, size, offset))

    return Ops()


@repo_app.command("mount")
def mount_cmd(
    ctx: typer.Context,
    mountpoint: Annotated[
        Path, typer.Argument(metavar="DIR", help="An empty directory to mount on")
    ],
    repo: RepoOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    no_lock: NoLockOpt = False,
) -> None:
    """Mount the snapshots read-only on DIR until Ctrl-C (ids/, snapshots/, hosts/, tags/)."""
    opts = settings(ctx, repo=repo, passphrase_file=passphrase_file, no_lock=no_lock)
    fuse = _fuse()
    if not mountpoint.is_dir():
        raise CliError(f"mount point {mountpoint} is not a directory")
    with open_repository(opts) as repository, shared_lock(repository, opts, "mount"):
        view = SnapshotFS(repository)
        out.note(
            f"serving {out.plural(len(view.views['ids']), 'snapshot')} at {mountpoint}; Ctrl-C to unmount"
        )
        fuse.FUSE(
            operations(view, fuse),
            str(mountpoint),
            foreground=True,
            ro=True,
            nothreads=False,
            fsname="vaultwatch",
        )
