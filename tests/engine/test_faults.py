"""Faults: a backup killed mid-way, damaged packs, unreadable files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import FAST_KDF, PASSPHRASE, reopen
from vaultwatch.engine.backup import backup
from vaultwatch.engine.check import check
from vaultwatch.engine.errors import CancelledError
from vaultwatch.engine.pack import DATA
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import restore
from vaultwatch.store.errors import StoreUnavailableError
from vaultwatch.store.local import LocalStore

_BACKUP_SCRIPT = textwrap.dedent(
    """
    import sys
    from vaultwatch.engine.backup import backup
    from vaultwatch.engine.repository import Repository
    from vaultwatch.store.local import LocalStore
    repo = Repository.open(LocalStore(sys.argv[1]), sys.argv[2])
    backup(repo, [sys.argv[3]])
    """
)


def _packs(repo_path: Path) -> dict[str, int]:
    return {
        p.name: p.stat().st_size
        for p in (repo_path / "data").rglob("*")
        if p.is_file() and not p.name.startswith(".tmp-")
    }


def test_backup_killed_mid_way_then_run_again(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    total = 0
    for i in range(12):
        data = os.urandom(10 * 1024 * 1024)
        (src / f"f{i:02}.bin").write_bytes(data)
        total += len(data)
    proc = subprocess.Popen(
        [sys.executable, "-c", _BACKUP_SCRIPT, str(repo_path), PASSPHRASE, str(src)]
    )
    deadline = time.monotonic() + 60
    while len(_packs(repo_path)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the backup finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = _packs(repo_path)
    assert left
    assert not (repo_path / "snapshots").exists() or not list((repo_path / "snapshots").iterdir())
    assert list((repo_path / "locks").iterdir()), "the killed process left its lock behind"

    result = backup(reopen(repo_path), [str(src)])
    # what the killed run stored is reused, not sent again
    assert result.bytes_stored <= total - sum(left.values()) + 2 * 1024 * 1024
    assert set(left) <= set(_packs(repo_path))
    repo2 = reopen(repo_path)
    report = check(repo2, read_data=True)
    assert report.ok, report
    out = tmp_path / "out"
    restore(repo2, repo2.find_snapshot("latest"), out)
    for f in src.iterdir():
        assert (out / str(f).lstrip("/")).read_bytes() == f.read_bytes()


def test_damaged_pack_is_named_and_no_bad_data_is_restored(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "victim.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    backup(repo, [str(src)])
    (src / "other.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    backup(repo, [str(src)])
    r = reopen(repo_path)
    r.load_index()
    pack_id = next(pid for pid, blobs in r.index.by_pack().items() if blobs[0].type == DATA)
    pack = repo_path / "data" / pack_id.hex()[:2] / pack_id.hex()
    raw = bytearray(pack.read_bytes())
    raw[100] ^= 0xFF
    os.chmod(pack, 0o600)
    pack.write_bytes(bytes(raw))

    assert check(reopen(repo_path)).ok  # structure alone cannot see flipped bytes
    report = check(reopen(repo_path), read_data=True)
    assert not report.ok
    text = " ".join(str(e) for e in report.errors)
    assert pack_id.hex()[:8] in text

    out = tmp_path / "out"
    res = restore(reopen(repo_path), reopen(repo_path).find_snapshot("latest"), out)
    damaged = {e.path for e in res.errors}
    assert damaged, "the damaged blob was not reported"
    restored_dir = out / str(src).lstrip("/")
    for name in ("victim.bin", "other.bin"):
        path = restored_dir / name
        if str(path) in damaged:
            assert not path.exists(), "a file with damaged data was left behind"
        else:
            assert path.read_bytes() == (src / name).read_bytes()


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory an unprivileged user can use (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="vw-nobody-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_unreadable_file_is_reported_and_backup_goes_on(world_dir: Path) -> None:
    src = world_dir / "src"
    src.mkdir()
    (src / "readable.txt").write_text("ok")
    (src / "secret.txt").write_text("no")
    (src / "secret.txt").chmod(0o000)
    locked_dir = src / "locked"
    locked_dir.mkdir()
    locked_dir.chmod(0o000)
    src.chmod(0o755)
    repo_path = world_dir / "repo"
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from vaultwatch.engine.backup import backup
        from vaultwatch.engine.keys import KdfParams
        from vaultwatch.engine.repository import Repository
        from vaultwatch.store.local import LocalStore
        import vaultwatch.engine.restore, vaultwatch.engine.check, encodings.idna  # before dropping root
        os.setgid(65534)
        os.setuid(65534)
        store = LocalStore({str(repo_path)!r}); store.create_if_missing()
        repo = Repository.init(store, "pw", kdf=KdfParams({FAST_KDF.time_cost}, {FAST_KDF.memory_kib}, 1))
        r = backup(repo, [{str(src)!r}])
        print(json.dumps({{"errors": [[e.path, e.message] for e in r.errors], "new": r.files_new}}))
        """
    )
    # The interpreter lives under /root, so the child starts as root and drops to nobody itself.
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HOME": str(world_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout)
    paths = {p: m for p, m in out["errors"]}
    assert "Permission denied" in paths[str(src / "secret.txt")]
    assert "Permission denied" in paths[str(locked_dir)]
    repo = Repository.open(LocalStore(repo_path), "pw")
    target = world_dir / "out"
    restore(repo, repo.find_snapshot("latest"), target)
    assert (target / str(src).lstrip("/") / "readable.txt").read_text() == "ok"


def test_cancelled_backup_stops_quickly_and_leaves_a_sound_repository(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02}.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    progress = Progress()

    def cancel_when_started() -> None:
        while progress.bytes_done < 8 * 1024 * 1024:
            time.sleep(0.005)
        progress.cancel()

    canceller = threading.Thread(target=cancel_when_started)
    canceller.start()
    started = time.monotonic()
    with pytest.raises(CancelledError):
        backup(repo, [str(src)], progress=progress)
    canceller.join()
    assert time.monotonic() - started < 5
    assert progress.bytes_done < 120 * 1024 * 1024, "most of the data was read despite the cancel"
    assert not list((repo_path / "locks").iterdir()), "the cancelled backup kept its lock"
    result = backup(reopen(repo_path), [str(src)])
    assert not result.errors
    assert check(reopen(repo_path), read_data=True).ok


class _FailingStore(LocalStore):
    """A real local store whose pack uploads start failing after a few (a dying uplink)."""

    def __init__(self, root: Path, packs_before_failure: int) -> None:
        super().__init__(root)
        self.packs_left = packs_before_failure

    def put(self, name: str, data: bytes, *, overwrite: bool = False) -> None:
        if name.startswith("data/"):
            if self.packs_left <= 0:
                raise StoreUnavailableError("uplink down")
            self.packs_left -= 1
        super().put(name, data, overwrite=overwrite)


def test_failed_uploads_keep_what_was_stored_and_the_next_run_is_sound(
    repo_path: Path, tmp_path: Path
) -> None:
    Repository.init(LocalStore(repo_path), PASSPHRASE, kdf=FAST_KDF)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    store = _FailingStore(repo_path, packs_before_failure=2)
    repo = Repository.open(store, PASSPHRASE)
    with pytest.raises(StoreUnavailableError):
        backup(repo, [str(src)])
    stored = _packs(repo_path)
    assert len(stored) == 2
    # the same open repository is used again once the uplink is back
    store.packs_left = 10**6
    result = backup(repo, [str(src)])
    assert result.bytes_stored <= 40 * 1024 * 1024 - sum(stored.values()) + 2 * 1024 * 1024
    fresh = reopen(repo_path)
    assert check(fresh, read_data=True).ok
    out = tmp_path / "out"
    assert not restore(fresh, fresh.find_snapshot("latest"), out).errors
