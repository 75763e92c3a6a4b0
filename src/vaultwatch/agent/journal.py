"""The job journal: a small SQLite database in the agent's state directory.

It is what makes a job resumable after a network cut, a gateway restart or
the agent's own death:

- ``jobs``: every job with its uid, set, state and result. A job that has no
  ``finished`` time when the agent starts is resumed under the same uid.
- ``files``: files an unfinished job has already handed to the pack writer,
  keyed by job, path and (size, mtime, ctime, inode): the engine's FileCache.
  A resumed job does not read them again. Cleared when the job finishes.
- ``reports``: the latest report of each job, kept until the server has
  acknowledged it, so what happened during an outage is reported afterwards.
- ``sets``: per backup set, the last snapshot (the parent of the next backup)
  and the last outcome (for status and metrics).

WAL with ``synchronous=NORMAL``: a committed row survives the agent being
killed; a power cut may lose the last second, which only means re-reading a
few files.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaultwatch.engine.ids import ID_SIZE
from vaultwatch.engine.tree import Node
from vaultwatch.job_states import FINAL_JOB_STATES, JobState

#: Final states after which the set is protected up to the job's end ("unchanged": nothing
#: changed since the last snapshot, so no identical snapshot was written).
GOOD_STATES = frozenset({JobState.SUCCEEDED, JobState.PARTIAL, JobState.UNCHANGED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_uid TEXT PRIMARY KEY,
    backup_set TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'backup',
    reason TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    snapshot_id TEXT
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (backup_set, finished);
CREATE TABLE IF NOT EXISTS files (
    job_uid TEXT NOT NULL,
    path BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (job_uid, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reports (
    job_uid TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    version INTEGER NOT NULL,
    sent_version INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sets (
    name TEXT PRIMARY KEY,
    paths TEXT NOT NULL,
    last_snapshot TEXT,
    last_run REAL,
    last_success REAL,
    last_state TEXT,
    last_error TEXT
);
"""

_FLUSH_EVERY_ROWS = 256
_FLUSH_EVERY_SECONDS = 1.0
_INT64 = 1 << 63


def _signed(value: int) -> int:
    """SQLite integers are signed 64-bit; some file systems hand out inodes above 2**63."""
    return value - (1 << 64) if value >= _INT64 else value


@dataclass(frozen=True)
class JobRecord:
    """One row of ``jobs``."""

    job_uid: str
    backup_set: str
    kind: str
    reason: str
    state: str
    created: float
    updated: float
    finished: float | None
    attempts: int
    error: str | None
    snapshot_id: str | None


@dataclass(frozen=True)
class SetRecord:
    """One row of ``sets``."""

    name: str
    paths: list[str]
    last_snapshot: str | None
    last_run: float | None
    last_success: float | None
    last_state: str | None
    last_error: str | None


@dataclass(frozen=True)
class PendingReport:
    """A job report the server has not acknowledged yet."""

    job_uid: str
    version: int
    body: dict[str, Any]


class Journal:
    """The agent's local state; every method is thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(
            str(path), timeout=30, check_same_thread=False, isolation_level=None
        )
        self._lock = threading.RLock()
        self._pending: dict[tuple[str, bytes], tuple[int, int, int, int, bytes]] = {}
        self._last_flush = time.monotonic()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        path.chmod(0o600)

    def close(self) -> None:
        """Write what is pending and close the database."""
        with self._lock:
            self.flush()
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- jobs -------------------------------------------------------------------------------

    def create_job(self, backup_set: str, reason: str = "", kind: str = "backup") -> JobRecord:
        """A new queued job with a fresh uid."""
        now = time.time()
        uid = str(uuid.uuid4())
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs (job_uid, backup_set, kind, reason, state, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (uid, backup_set, kind, reason, JobState.QUEUED, now, now),
            )
        job = self.job(uid)
        assert job is not None
        return job

    def job(self, job_uid: str) -> JobRecord | None:
        """One job by uid."""
        with self._lock:
            row = self._db.execute(
                "SELECT job_uid, backup_set, kind, reason, state, created, updated, finished,"
                " attempts, error, snapshot_id FROM jobs WHERE job_uid = ?",
                (job_uid,),
            ).fetchone()
        return JobRecord(*row) if row is not None else None

    def open_job(self, backup_set: str) -> JobRecord | None:
        """The unfinished job of a set, if one was interrupted."""
        with self._lock:
            row = self._db.execute(
                "SELECT job_uid FROM jobs WHERE backup_set = ? AND finished IS NULL"
                " ORDER BY created LIMIT 1",
                (backup_set,),
            ).fetchone()
        return self.job(row[0]) if row is not None else None

    def open_jobs(self) -> list[JobRecord]:
        """Every unfinished job, oldest first (resumed at start-up)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_uid FROM jobs WHERE finished IS NULL ORDER BY created"
            ).fetchall()
        return [j for j in (self.job(r[0]) for r in rows) if j is not None]

    def recent_jobs(self, limit: int = 20) -> list[JobRecord]:
        """The latest jobs, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_uid FROM jobs ORDER BY created DESC LIMIT ?", (limit,)
            ).fetchall()
        return [j for j in (self.job(r[0]) for r in rows) if j is not None]

    def set_state(self, job_uid: str, state: str, *, attempt: bool = False) -> None:
        """Record a state change of an unfinished job (``attempt``: a new try starts)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = ?, updated = ?, attempts = attempts + ?"
                " WHERE job_uid = ? AND finished IS NULL",
                (state, time.time(), 1 if attempt else 0, job_uid),
            )

    def finish_job(
        self,
        job_uid: str,
        state: str,
        *,
        paths: list[str],
        snapshot_id: str | None = None,
        error: str | None = None,
        report: dict[str, Any] | None = None,
    ) -> None:
        """Close a job: its file entries go, the set remembers the outcome (and the new parent).

        ``report``, the job's final report, is queued in the same transaction:
        a job is never finished here without its final report waiting to be sent.
        """
        if state not in FINAL_JOB_STATES:
            raise ValueError(f"not a final state: {state}")
        now = time.time()
        with self._lock:
            self._pending = {k: v for k, v in self._pending.items() if k[0] != job_uid}
        with self._tx() as db:
            row = db.execute("SELECT backup_set FROM jobs WHERE job_uid = ?", (job_uid,)).fetchone()
            if row is None:
                raise KeyError(job_uid)
            db.execute(
                "UPDATE jobs SET state = ?, updated = ?, finished = ?, error = ?, snapshot_id = ?"
                " WHERE job_uid = ?",
                (state, now, now, error, snapshot_id, job_uid),
            )
            db.execute("DELETE FROM files WHERE job_uid = ?", (job_uid,))
            db.execute(
                "INSERT INTO sets (name, paths, last_run, last_state, last_error)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " last_run = excluded.last_run, last_state = excluded.last_state,"
                " last_error = excluded.last_error",
                (row[0], json.dumps(paths), now, state, error),
            )
            if snapshot_id is not None:
                db.execute(
                    "UPDATE sets SET last_snapshot = ?, last_success = ?, paths = ? WHERE name = ?",
                    (snapshot_id, now, json.dumps(paths), row[0]),
                )
            if report is not None:
                self._upsert_report(db, job_uid, report)

    def prune(self, keep: int = 500) -> None:
        """Forget old finished jobs whose reports the server has acknowledged."""
        with self._tx() as db:
            db.execute(
                "DELETE FROM jobs WHERE finished IS NOT NULL AND job_uid NOT IN"
                " (SELECT job_uid FROM jobs ORDER BY created DESC LIMIT ?) AND job_uid NOT IN"
                " (SELECT job_uid FROM reports WHERE sent_version < version)",
                (keep,),
            )
            db.execute(
                "DELETE FROM reports WHERE sent_version >= version"
                " AND job_uid NOT IN (SELECT job_uid FROM jobs)"
            )

    # -- files (the engine's FileCache) ---------------------------------------------------------

    def file_cache(self, job_uid: str) -> JobFileCache:
        """The FileCache of one job."""
        return JobFileCache(self, job_uid)

    def count_files(self, job_uid: str) -> int:
        """How many finished files a job has recorded."""
        with self._lock:
            pending = sum(1 for k in self._pending if k[0] == job_uid)
            row = self._db.execute(
                "SELECT count(*) FROM files WHERE job_uid = ?", (job_uid,)
            ).fetchone()
        return int(row[0]) + pending

    def _get_file(self, job_uid: str, path: bytes) -> tuple[int, int, int, int, bytes] | None:
        with self._lock:
            hit = self._pending.get((job_uid, path))
            if hit is not None:
                return hit
            row = self._db.execute(
                "SELECT size, mtime_ns, ctime_ns, inode, content FROM files"
                " WHERE job_uid = ? AND path = ?",
                (job_uid, path),
            ).fetchone()
        return (int(row[0]), int(row[1]), int(row[2]), int(row[3]), bytes(row[4])) if row else None

    def _put_file(
        self, job_uid: str, path: bytes, key: tuple[int, int, int, int], content: bytes
    ) -> None:
        with self._lock:
            self._pending[(job_uid, path)] = (*key, content)
            if (
                len(self._pending) >= _FLUSH_EVERY_ROWS
                or time.monotonic() - self._last_flush >= _FLUSH_EVERY_SECONDS
            ):
                self.flush()

    def flush(self) -> None:
        """Commit the file entries collected since the last commit."""
        with self._lock:
            self._last_flush = time.monotonic()
            if not self._pending:
                return
            rows = [(uid, path, *value) for (uid, path), value in self._pending.items()]
            self._pending.clear()
            with self._tx() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO files"
                    " (job_uid, path, size, mtime_ns, ctime_ns, inode, content)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

    # -- reports ----------------------------------------------------------------------------

    def put_report(self, job_uid: str, body: dict[str, Any]) -> None:
        """Replace the job's latest report; it stays pending until acknowledged."""
        with self._tx() as db:
            self._upsert_report(db, job_uid, body)

    @staticmethod
    def _upsert_report(db: sqlite3.Connection, job_uid: str, body: dict[str, Any]) -> None:
        db.execute(
            "INSERT INTO reports (job_uid, body, version, updated) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (job_uid) DO UPDATE SET body = excluded.body,"
            " version = reports.version + 1, updated = excluded.updated",
            (job_uid, json.dumps(body), time.time()),
        )

    def pending_reports(self) -> list[PendingReport]:
        """Reports not yet acknowledged, oldest change first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_uid, version, body FROM reports WHERE sent_version < version"
                " ORDER BY updated"
            ).fetchall()
        return [PendingReport(r[0], int(r[1]), json.loads(r[2])) for r in rows]

    def mark_sent(self, job_uid: str, version: int) -> None:
        """The server acknowledged this version of the report (a newer one stays pending)."""
        with self._tx() as db:
            db.execute(
                "UPDATE reports SET sent_version = max(sent_version, ?) WHERE job_uid = ?",
                (version, job_uid),
            )

    # -- sets -------------------------------------------------------------------------------

    def set_record(self, name: str) -> SetRecord | None:
        """What the journal knows of one backup set."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, paths, last_snapshot, last_run, last_success, last_state, last_error"
                " FROM sets WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            return None
        return SetRecord(row[0], json.loads(row[1]), *row[2:])

    def set_records(self) -> list[SetRecord]:
        """Every backup set the journal has seen."""
        with self._lock:
            names = [r[0] for r in self._db.execute("SELECT name FROM sets ORDER BY name")]
        return [r for r in (self.set_record(n) for n in names) if r is not None]


class JobFileCache:
    """The engine's FileCache for one job, on the journal (thread-safe)."""

    def __init__(self, journal: Journal, job_uid: str) -> None:
        self.journal = journal
        self.job_uid = job_uid
        self.hits = 0
        self.hit_bytes = 0  # what an earlier try of the job already stored (not read again)
        self._lock = threading.Lock()
        # Most jobs are fresh: don't query the database for every file of those.
        self._may_hit = journal.count_files(job_uid) > 0

    @staticmethod
    def _key(node: Node) -> tuple[int, int, int, int]:
        return (node.size, node.mtime_ns, node.ctime_ns, _signed(node.inode))

    def get(self, path: bytes, node: Node) -> list[bytes] | None:
        """The content recorded for this path if its metadata is unchanged."""
        if not self._may_hit:
            return None
        row = self.journal._get_file(self.job_uid, path)
        if row is None or row[:4] != self._key(node):
            return None
        blob = row[4]
        if len(blob) % ID_SIZE:
            return None
        with self._lock:
            self.hits += 1
            self.hit_bytes += node.size
        return [blob[i : i + ID_SIZE] for i in range(0, len(blob), ID_SIZE)]

    def put(self, path: bytes, node: Node, content: list[bytes]) -> None:
        """Remember a file whose content the pack writer now holds."""
        self.journal._put_file(self.job_uid, path, self._key(node), b"".join(content))
