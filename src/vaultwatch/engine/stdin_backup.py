"""Back up a stream (``backup --stdin``): a snapshot holding one file, read from standard input.

For a database dump piped straight in, with nothing written to disk first.
The file sits at the root of the snapshot under the name given, and the
snapshot's path is ``/<name>``, as restic records it.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from datetime import UTC, datetime
from typing import BinaryIO

from vaultwatch import __version__
from vaultwatch.engine.backup import BackupOptions, BackupResult
from vaultwatch.engine.chunker import Chunker
from vaultwatch.engine.errors import EngineError
from vaultwatch.engine.pack import DATA, TREE
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import FILE, Node, Tree

STDIN_MODE = 0o644


def check_stdin_name(name: str) -> bytes:
    """The file name for the stream: one plain name (no slash, not . or ..)."""
    raw = os.fsencode(name)
    if not raw or raw in (b".", b"..") or b"/" in raw or b"\0" in raw:
        raise EngineError(f"--stdin-filename {name!r} must be a plain file name (no '/')")
    return raw


def backup_stdin(
    repo: Repository,
    stream: BinaryIO,
    filename: str,
    options: BackupOptions | None = None,
    progress: Progress | None = None,
) -> BackupResult:
    """Store everything ``stream`` yields as the one file ``/filename`` of a new snapshot."""
    options = options or BackupOptions()
    progress = progress or Progress()
    name = check_stdin_name(filename)
    host = options.hostname or socket.gethostname()
    started = time.monotonic()
    p = repo.config.chunker
    chunker = Chunker(p.min_size, p.avg_size, p.max_size, repo.master.chunker_seed)
    with repo.lock(exclusive=False, purpose="backup", on_lost=progress.cancel) as lock:
        repo.load_index()
        progress.phase = "backing up"
        with repo.writer() as writer:
            content: list[bytes] = []
            size = 0
            for data in chunker.chunks(stream):
                progress.check()
                content.append(writer.save(DATA, data)[0])
                size += len(data)
                progress.add(len(data))
            now = time.time_ns()
            node = Node(
                name=name,
                type=FILE,
                mode=STDIN_MODE,
                uid=os.getuid(),
                gid=os.getgid(),
                mtime_ns=now,
                atime_ns=now,
                ctime_ns=now,
                size=size,
                content=content,
            )
            tree_id = Tree([node]).save(lambda blob: writer.save(TREE, blob)[0])
            progress.phase = "saving"
            writer.flush()
        lock.check()
        progress.add(files=1)
        duration = time.monotonic() - started
        try:
            user = getpass.getuser()
        except Exception:
            user = str(os.getuid())
        snap = Snapshot(
            datetime.now(UTC),
            tree_id,
            ["/" + filename],
            host,
            user,
            list(options.tags),
            None,
            program_version=f"vaultwatch {__version__}",
        )
        result = BackupResult(
            snapshot=snap,
            files_new=1,
            bytes_read=size,
            bytes_added=writer.new_raw_bytes,
            bytes_stored=writer.stored_bytes,
            total_bytes=size,
            duration=duration,
            scan="stdin",
        )
        snap.summary = result.to_dict()
        repo.save_snapshot(snap)
        progress.phase = "done"
        return result
