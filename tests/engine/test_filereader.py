"""Reader processes: the same chunks and ids as the in-process path, only new chunks sent back."""

from __future__ import annotations

import os
from pathlib import Path

from vaultwatch.engine.backup import BackupOptions, backup
from vaultwatch.engine.chunker import Chunker
from vaultwatch.engine.compress import decompress
from vaultwatch.engine.filereader import (
    SMALL_FILE,
    TOO_LARGE,
    BatchReader,
    LazyReaderPool,
    ReaderParams,
    ReaderPool,
)
from vaultwatch.engine.ids import blob_id
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import restore

KEY = bytes(range(32))
PARAMS = ReaderParams(KEY, 8 * 1024, 32 * 1024, 256 * 1024, seed=7, retries=0)


def _files(tmp_path: Path) -> list[bytes]:
    small = tmp_path / "small.txt"
    small.write_bytes(b"hello world\n")
    cut = tmp_path / "cut.bin"
    cut.write_bytes(os.urandom(300 * 1024))  # more than one chunk
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    return [os.fsencode(p) for p in (small, cut, empty)]


def test_batch_reader_gives_the_chunkers_cuts_and_keyed_ids(tmp_path: Path) -> None:
    paths = _files(tmp_path)
    answers = BatchReader(PARAMS).read(paths)
    chunker = Chunker(8 * 1024, 32 * 1024, 256 * 1024, 7)
    for path, (error, warning, size, ids) in zip(paths, answers, strict=True):
        data = Path(os.fsdecode(path)).read_bytes()
        assert (error, warning, size) == ("", "", len(data))
        assert ids == [blob_id(KEY, c) for c in chunker.cut(data)]
    assert len(answers[1][3]) > 1
    assert answers[2][3] == []


def test_batch_reader_reports_missing_symlinked_and_grown_files(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"secret")
    link = tmp_path / "link"
    link.symlink_to(target)
    big = tmp_path / "big"
    big.write_bytes(b"x" * (SMALL_FILE + 1))
    paths = [os.fsencode(p) for p in (tmp_path / "gone", link, big)]
    answers = BatchReader(PARAMS).read(paths)
    assert answers[0][0] == "No such file or directory"
    assert answers[1][0]  # O_NOFOLLOW: a symlink is never read through
    assert answers[1][3] == []
    assert answers[2][0] == TOO_LARGE


def test_pool_sends_back_only_the_chunks_the_writer_reserves(tmp_path: Path) -> None:
    paths = _files(tmp_path)
    stored: dict[bytes, bytes] = {}

    def store(bid: bytes, body: bytes, size: int) -> None:
        stored[bid] = decompress(body, size)

    with ReaderPool(PARAMS, 2) as pool:
        first = pool.read_batch(paths, lambda ids: [True] * len(ids), store)
        ids = [b for r in first for b in r.content]
        assert set(stored) == set(ids)
        assert all(blob_id(KEY, data) == bid for bid, data in stored.items())
        stored.clear()
        again = pool.read_batch(paths, lambda ids: [False] * len(ids), store)
    assert stored == {}
    assert [r.content for r in again] == [r.content for r in first]
    assert [r.size for r in first] == [len(Path(os.fsdecode(p)).read_bytes()) for p in paths]


def test_backups_with_and_without_reader_processes_agree(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(300):
        (src / "sub" / f"f{i}.c").write_bytes(f"int f{i}(void) {{ return {i}; }}\n".encode() * i)
    (src / "large.bin").write_bytes(os.urandom(SMALL_FILE + 4096))
    threads = backup(repo, [str(src)], BackupOptions(parent=None, reader_processes=0))
    processes = backup(
        repo, [str(src)], BackupOptions(parent=None, reader_processes=2, reader_processes_after=0)
    )
    assert processes.snapshot.tree == threads.snapshot.tree
    assert processes.files_new == threads.files_new == 301
    assert processes.bytes_added == 0  # every chunk was already stored
    assert processes.bytes_read == threads.bytes_read

    out = tmp_path / "out"
    restore(repo, processes.snapshot, out)
    for p in src.rglob("*"):
        if p.is_file():
            assert (out / p.relative_to("/")).read_bytes() == p.read_bytes()


def test_reader_processes_store_new_content(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"alpha\n" * 5000)
    (src / "b.txt").write_bytes(b"alpha\n" * 5000)  # same content: stored once
    result = backup(repo, [str(src)], BackupOptions(reader_processes=2, reader_processes_after=0))
    assert result.files_new == 2
    assert 30000 <= result.bytes_added < 60000  # the second copy was not stored again
    out = tmp_path / "out"
    restore(repo, result.snapshot, out)
    assert (out / src.relative_to("/") / "b.txt").read_bytes() == b"alpha\n" * 5000


def test_the_reader_processes_start_only_when_enough_files_are_listed() -> None:
    """A continuous snapshot reading a few changed files must not pay for two interpreters."""
    with LazyReaderPool(PARAMS, 2, after_files=100) as lazy:
        assert lazy.get(99) is None
        pool = lazy.get(100)
        assert pool is not None
        assert lazy.get(5000) is pool  # started once
        workers = [w.process for w in pool._workers]
        assert len(workers) == 2 and all(p.poll() is None for p in workers)
    assert all(p.poll() is not None for p in workers)  # ended with the backup
