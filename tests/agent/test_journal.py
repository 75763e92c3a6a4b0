"""The job journal: jobs survive restarts, the file cache matches on metadata, reports queue up."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from vaultwatch.agent.journal import Journal
from vaultwatch.engine.tree import FILE, Node


def node(size: int = 10, mtime: int = 1, ctime: int = 2, inode: int = 3) -> Node:
    return Node(name=b"f", type=FILE, size=size, mtime_ns=mtime, ctime_ns=ctime, inode=inode)


IDS = [bytes([i]) * 32 for i in range(3)]


def test_job_lifecycle_and_resume_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    j = Journal(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    job = j.create_job("www", "changes")
    assert job.state == "queued" and job.finished is None
    j.set_state(job.job_uid, "running", attempt=True)
    j.set_state(job.job_uid, "waiting_for_network")
    j.close()

    j = Journal(path)  # the agent restarted
    open_job = j.open_job("www")
    assert open_job is not None and open_job.job_uid == job.job_uid
    assert open_job.state == "waiting_for_network" and open_job.attempts == 1
    assert [o.job_uid for o in j.open_jobs()] == [job.job_uid]
    assert j.open_job("other") is None

    j.finish_job(
        job.job_uid,
        "succeeded",
        paths=["/srv"],
        snapshot_id="ab" * 32,
        report={"state": "succeeded"},
    )
    assert j.open_job("www") is None
    # The final report is queued together with the end of the job.
    assert [(p.job_uid, p.body) for p in j.pending_reports()] == [
        (job.job_uid, {"state": "succeeded"})
    ]
    rec = j.set_record("www")
    assert rec is not None and rec.last_snapshot == "ab" * 32 and rec.last_state == "succeeded"
    assert rec.paths == ["/srv"] and rec.last_success is not None

    failed = j.create_job("www")
    j.finish_job(failed.job_uid, "failed", paths=["/srv"], error="boom")
    rec = j.set_record("www")
    assert rec is not None
    assert rec.last_state == "failed" and rec.last_error == "boom"
    assert rec.last_snapshot == "ab" * 32  # the parent stays the last good snapshot
    assert [r.job_uid for r in j.recent_jobs()] == [failed.job_uid, job.job_uid]
    j.close()


def test_file_cache_matches_path_and_metadata(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    job = j.create_job("www")
    fresh = j.file_cache(job.job_uid)
    fresh.put(b"/srv/a", node(), IDS)
    fresh.put(b"/srv/b", node(size=0), [])
    j.flush()
    cache = j.file_cache(job.job_uid)  # a new try of the same job
    assert cache.get(b"/srv/a", node()) == IDS
    assert cache.get(b"/srv/b", node(size=0)) == []
    assert cache.get(b"/srv/c", node()) is None
    for changed in (node(size=11), node(mtime=9), node(ctime=9), node(inode=9)):
        assert cache.get(b"/srv/a", changed) is None
    other = j.create_job("www")
    assert j.file_cache(other.job_uid).get(b"/srv/a", node()) is None  # per job
    assert cache.hits == 2

    j.finish_job(job.job_uid, "succeeded", paths=["/srv"], snapshot_id="cd" * 32)
    assert j.count_files(job.job_uid) == 0  # a finished job's entries are cleared
    assert j.file_cache(job.job_uid).get(b"/srv/a", node()) is None
    j.close()


def test_huge_inodes_and_non_utf8_paths(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    job = j.create_job("www")
    big = node(inode=(1 << 64) - 5)
    j.file_cache(job.job_uid).put(b"/srv/\xff\xfe", big, IDS[:1])
    j.flush()
    assert j.file_cache(job.job_uid).get(b"/srv/\xff\xfe", big) == IDS[:1]
    j.close()


def test_file_cache_is_thread_safe(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    job = j.create_job("www")
    cache = j.file_cache(job.job_uid)

    def worker(k: int) -> None:
        for i in range(300):
            cache.put(f"/srv/{k}/{i}".encode(), node(size=i), [IDS[i % 3]])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    j.flush()
    assert j.count_files(job.job_uid) == 1800
    again = j.file_cache(job.job_uid)
    assert all(again.get(f"/srv/3/{i}".encode(), node(size=i)) == [IDS[i % 3]] for i in range(300))
    j.close()


def test_entries_survive_the_process_being_killed(tmp_path: Path) -> None:
    """A SIGKILLed agent keeps what it had committed (batches flush at least every second)."""
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    uid = j.create_job("www").job_uid
    j.close()
    script = f"""
import os, signal, time
from vaultwatch.agent.journal import Journal
from vaultwatch.engine.tree import FILE, Node
j = Journal(__import__("pathlib").Path({str(path)!r}))
c = j.file_cache({uid!r})
for i in range(1000):
    c.put(f"/srv/{{i}}".encode(), Node(name=b"f", type=FILE, size=i), [bytes(32)])
time.sleep(1.1)
c.put(b"/srv/last", Node(name=b"f", type=FILE, size=1), [bytes(32)])  # triggers a timed flush
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert proc.returncode == -9
    j = Journal(path)
    assert j.count_files(uid) == 1001
    assert j.file_cache(uid).get(b"/srv/999", Node(name=b"f", type=FILE, size=999)) == [bytes(32)]
    j.close()


def test_reports_wait_until_acknowledged(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    j.put_report("job-1", {"state": "running", "bytes_done": 1})
    j.put_report("job-2", {"state": "running"})
    j.put_report("job-1", {"state": "waiting_for_network", "bytes_done": 5})
    pending = j.pending_reports()
    assert [(p.job_uid, p.version) for p in pending] == [("job-2", 1), ("job-1", 2)]
    assert pending[1].body == {"state": "waiting_for_network", "bytes_done": 5}
    # Acknowledged version 2, but a newer report arrived meanwhile: that one stays pending.
    j.put_report("job-1", {"state": "succeeded"})
    j.mark_sent("job-1", 2)
    j.mark_sent("job-2", 1)
    pending = j.pending_reports()
    assert [(p.job_uid, p.version, p.body["state"]) for p in pending] == [("job-1", 3, "succeeded")]
    j.mark_sent("job-1", 3)
    assert j.pending_reports() == []
    j.close()


def test_prune_keeps_open_and_unreported_jobs(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    done = [j.create_job("www") for _ in range(5)]
    for job in done:
        j.finish_job(job.job_uid, "succeeded", paths=["/srv"], snapshot_id="ef" * 32)
    j.put_report(done[0].job_uid, {"state": "succeeded"})  # not yet acknowledged
    running = j.create_job("www")
    j.prune(keep=1)
    left = {r.job_uid for r in j.recent_jobs(100)}
    assert running.job_uid in left and done[0].job_uid in left
    assert done[1].job_uid not in left
    j.close()
