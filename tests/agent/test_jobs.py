"""The job runner on the real engine and a real local vault, with an outage injected into the store.

The store wrapper below is a fault injector, not a mock: every call reaches
the real LocalStore except those it is told to fail, as a cut network would.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.conftest import base_doc, config_from
from tests.conftest import make_unexaminable
from vaultwatch.agent.config import AgentConfig
from vaultwatch.agent.jobs import WAITING, JobRunner
from vaultwatch.agent.journal import Journal
from vaultwatch.agent.vault import AgentRepository, open_vault
from vaultwatch.engine import keys
from vaultwatch.engine.repository import ChunkerParams, Repository
from vaultwatch.engine.restore import restore
from vaultwatch.gateway.schemas import JobReportIn
from vaultwatch.job_states import JobState
from vaultwatch.store.base import StoredObject
from vaultwatch.store.errors import StoreUnavailableError
from vaultwatch.store.local import LocalStore

PASSPHRASE = "correct horse battery staple"
FAST_KDF = keys.KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)


class FlakyStore:
    """A LocalStore whose data uploads fail for a while after the n-th one, as in an outage."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.fail_after: int | None = None
        self.failures_left = 0
        self.data_puts: collections.Counter[str] = collections.Counter()
        self.stored: set[str] = set()
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return self.inner.location

    # It stands for a gateway: reads are round trips, bodies outlive the calls.
    reads_cheaply = False
    reads_in_place = False
    leaves_no_cycles = False

    def put(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        if name.startswith("data/"):
            with self._lock:
                self.data_puts[name] += 1
                fail = (
                    self.fail_after is not None
                    and len(self.stored) >= self.fail_after
                    and self.failures_left > 0
                )
                if fail:
                    self.failures_left -= 1
            if fail:
                raise StoreUnavailableError("cannot reach a gateway (injected outage)")
        self.inner.put(name, data, overwrite=overwrite)
        if name.startswith("data/"):
            with self._lock:
                self.stored.add(name)

    def put_file(self, name: str, source: Path) -> None:
        self.put(name, source.read_bytes())

    def get(self, name: str) -> bytes:
        return self.inner.get(name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(name, offset, length)

    def read_into(self, name: str, offset: int, buffer: memoryview) -> int:
        return self.inner.read_into(name, offset, buffer)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def holds_anything(self) -> bool:
        return self.inner.holds_anything()

    def close(self) -> None:
        self.inner.close()


def make_tree(root: Path, files: int = 40, size: int = 96 * 1024) -> None:
    for i in range(files):
        sub = root / f"d{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.bin").write_bytes(os.urandom(size))
    (root / "empty.txt").write_bytes(b"")


def tree_bytes(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


class Harness:
    def __init__(self, tmp_path: Path, doc_sets: dict[str, Any]) -> None:
        self.tmp = tmp_path
        doc = base_doc(tmp_path, **doc_sets)
        doc["network"] = {"backoff_initial": "10ms", "backoff_max": "50ms"}
        self.config: AgentConfig = config_from(doc, tmp_path)
        (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
        self.local = LocalStore(tmp_path / "vault")
        self.local.create_if_missing()
        Repository.init(
            self.local,
            PASSPHRASE,
            kdf=FAST_KDF,
            chunker=ChunkerParams(4096, 16384, 65536),
            pack_size=256 * 1024,
        )
        self.store = FlakyStore(self.local)
        self.journal = Journal(tmp_path / "state" / "journal.sqlite")
        self.reports: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self._repo: AgentRepository | None = None
        self.runner = JobRunner(
            self.config,
            self.journal,
            self.vault,
            stop=self.stop,
            on_report=lambda uid, body: self.reports.append({"uid": uid, **body}),
            on_reports_queued=self.final_reports,
        )

    def final_reports(self) -> None:
        """Final reports are queued in the journal with the job's end: take them from there."""
        for p in self.journal.pending_reports():
            self.reports.append({"uid": p.job_uid, **p.body})
            self.journal.mark_sent(p.job_uid, p.version)

    def vault(self) -> AgentRepository:
        if self._repo is None:
            self._repo = open_vault(self.store, PASSPHRASE)
        return self._repo


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_tree(root)
    return root


def test_backup_job_commits_a_snapshot_and_reports(tmp_path: Path, data: Path) -> None:
    h = Harness(tmp_path, {"a": {"name": "www", "paths": [str(data)], "mode": "continuous"}})
    cfg = h.config.backup_sets[0]
    state, result = h.runner.run(cfg, "changes")
    assert state == "succeeded" and result is not None
    snap_id = result.snapshot.id
    assert snap_id is not None
    states = [r["state"] for r in h.reports]
    assert states[0] == "running" and states[-1] == "succeeded"
    final = h.reports[-1]
    assert final["snapshot"]["id"] == snap_id
    assert final["snapshot"]["files_new"] == 41
    assert final["snapshot"]["tags"] == ["set:www"]
    rec = h.journal.set_record("www")
    assert rec is not None and rec.last_snapshot == snap_id
    # The next job uses that snapshot as its parent: nothing is read again, and as nothing
    # changed, no identical snapshot is written: the job is "unchanged".
    state, second = h.runner.run(cfg, "rescan")
    assert state == "unchanged" and second is not None
    assert second.snapshot.parent == snap_id and second.snapshot.id == snap_id
    assert second.files_unmodified == 41 and second.bytes_read == 0
    assert [o.name for o in h.local.list("snapshots/")] == [f"snapshots/{snap_id}"]


def test_a_job_that_finds_nothing_changed_writes_no_snapshot(tmp_path: Path, data: Path) -> None:
    h = Harness(tmp_path, {"a": {"name": "www", "paths": [str(data)], "mode": "continuous"}})
    cfg = h.config.backup_sets[0]
    _, first = h.runner.run(cfg, "changes")
    assert first is not None
    for reason in ("agent start", "rescan"):  # a restart and the hourly rescan
        state, again = h.runner.run(cfg, reason)
        assert state == "unchanged" and again is not None and again.snapshot.id == first.snapshot.id
    final = h.reports[-1]
    assert final["state"] == "unchanged" and final["snapshot"] is None
    assert len(list(h.local.list("snapshots/"))) == 1
    assert len(list(h.local.list("manifests/"))) == 1
    rec = h.journal.set_record("www")
    assert rec is not None and rec.last_snapshot == first.snapshot.id
    assert rec.last_state == "unchanged"

    # A change makes a snapshot again, on top of the first one, with its manifest.
    (data / "d0" / "f0.bin").write_bytes(os.urandom(1000))
    state, changed = h.runner.run(cfg, "changes")
    assert state == "succeeded" and changed is not None
    assert changed.snapshot.parent == first.snapshot.id != changed.snapshot.id
    assert h.local.exists(f"manifests/{changed.snapshot.id}")


def test_outage_mid_job_resumes_without_resending_packs(tmp_path: Path, data: Path) -> None:
    h = Harness(tmp_path, {"a": {"name": "www", "paths": [str(data)], "mode": "continuous"}})
    h.store.fail_after = 6
    h.store.failures_left = 1
    cfg = h.config.backup_sets[0]
    state, result = h.runner.run(cfg, "changes")
    assert state == "succeeded" and result is not None

    uids = {r["uid"] for r in h.reports}
    assert len(uids) == 1  # one job from start to end, across the outage
    states = [r["state"] for r in h.reports]
    assert WAITING in states and states[-1] == "succeeded"
    job = h.journal.job(uids.pop())
    assert job is not None and job.attempts == 2 and job.state == "succeeded"
    # Packs stored before the outage were adopted, not sent again...
    resent = [name for name, n in h.store.data_puts.items() if n > 1 and name in h.store.stored]
    assert resent == [], resent
    # ... and the files they hold were not read again.
    assert result.files_unmodified > 0
    assert h.journal.count_files(job.job_uid) == 0

    repo = Repository.open(h.local, PASSPHRASE)
    snap = repo.find_snapshot("latest")
    target = tmp_path / "restored"
    restore(repo, snap, target)
    assert tree_bytes(target / str(data).lstrip("/")) == tree_bytes(data)


def test_job_interrupted_by_a_restart_keeps_its_uid(tmp_path: Path, data: Path) -> None:
    h = Harness(tmp_path, {"a": {"name": "www", "paths": [str(data)], "mode": "continuous"}})
    cfg = h.config.backup_sets[0]
    job = h.journal.create_job("www", "changes")
    h.journal.set_state(job.job_uid, "running", attempt=True)
    state, result = h.runner.run(cfg, "rescan", h.journal.open_job("www"))
    assert state == "succeeded" and result is not None
    assert {r["uid"] for r in h.reports} == {job.job_uid}
    done = h.journal.job(job.job_uid)
    assert done is not None and done.attempts == 2 and done.finished is not None


def test_a_partial_jobs_final_report_carries_the_backups_summary(
    tmp_path: Path, data: Path, unreadable_file: str
) -> None:
    make_unexaminable(data)  # an error, but not a file
    h = Harness(
        tmp_path,
        {"a": {"name": "www", "paths": [str(data), unreadable_file], "mode": "continuous"}},
    )
    state, result = h.runner.run(h.config.backup_sets[0], "changes")
    assert state == JobState.PARTIAL and result is not None
    summary = result.to_dict()
    assert (summary["files_total"], summary["files_unreadable"], summary["errors"]) == (41, 1, 2)
    final = h.reports[-1]
    # Done: the files in the snapshot; of a total that adds the files that could not be read.
    assert (final["files_done"], final["files_total"]) == (41, 42)
    assert final["bytes_done"] == final["bytes_total"] == summary["total_bytes"]
    assert final["error_count"] == summary["errors"] and len(final["errors"]) == 2
    snap = final["snapshot"]
    shared = ("files_total", "files_new", "files_changed", "bytes_added", "bytes_stored")
    assert {k: snap[k] for k in shared} == {k: summary[k] for k in shared}
    assert snap["bytes_stored"] > 0  # what the new content took in packs: the guard reads it
    assert snap["bytes_total"] == summary["total_bytes"]
    # ... in the form the gateway accepts.
    accepted = JobReportIn.model_validate({k: v for k, v in final.items() if k != "uid"})
    assert accepted.state is JobState.PARTIAL and accepted.files_total == 42
    assert accepted.snapshot is not None and accepted.snapshot.files_total == 41
    assert accepted.snapshot.bytes_stored == summary["bytes_stored"]


def test_unreadable_paths_make_a_partial_job_and_a_missing_set_fails(
    tmp_path: Path, data: Path
) -> None:
    secret = data / "d0" / "f0.bin"
    secret.chmod(0)
    h = Harness(
        tmp_path,
        {
            "a": {"name": "www", "paths": [str(data)], "mode": "continuous"},
            "b": {"name": "gone", "paths": [str(tmp_path / "nope")], "mode": "continuous"},
        },
    )
    www, gone = h.config.backup_sets
    state, result = h.runner.run(www, "changes")
    if os.geteuid() == 0:  # root reads everything: that is why the agent runs as root
        assert state == "succeeded"
    else:
        assert state == "partial" and result is not None and result.errors
        assert h.reports[-1]["errors"][0]["path"] == str(secret)
    state, result = h.runner.run(gone, "changes")
    assert state == "failed" and result is None
    assert "does not exist" in h.reports[-1]["errors"][0]["message"]
    rec = h.journal.set_record("gone")
    assert rec is not None and rec.last_state == "failed"
