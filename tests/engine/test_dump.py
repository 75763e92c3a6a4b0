"""dump: a file as its bytes, a directory as a tar that Python's tarfile and GNU tar read back exactly."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.engine.treecompare import BAD_UTF8_NAME, build_tree, describe
from vaultwatch.engine.backup import backup
from vaultwatch.engine.dump import dump
from vaultwatch.engine.errors import EngineError, PathNotFoundError
from vaultwatch.engine.repository import Repository


def without_link_groups(tree: dict[bytes, tuple[object, ...]]) -> dict[bytes, tuple[object, ...]]:
    """The archive stores hard links as separate files, as restic's does."""
    return {k: v[:-1] for k, v in tree.items()}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    build_tree(src)
    return src


def test_a_file_is_dumped_as_its_bytes(repo: Repository, source: Path) -> None:
    snap = backup(repo, [str(source)]).snapshot
    out = io.BytesIO()
    big = source / "dir" / "nested" / "big.bin"
    assert dump(repo, snap, str(big), out) == big.stat().st_size
    assert out.getvalue() == big.read_bytes()


def test_a_directory_is_a_tar_of_everything_below_it(repo: Repository, source: Path) -> None:
    snap = backup(repo, [str(source)]).snapshot
    out = io.BytesIO()
    count = dump(repo, snap, str(source / "dir"), out)
    out.seek(0)
    with tarfile.open(fileobj=out, mode="r:", errors="surrogateescape") as tar:
        members = {m.name: m for m in tar.getmembers()}
        prefix = str(source / "dir").lstrip("/")
        assert set(members) == {
            f"{prefix}/nested",
            f"{prefix}/nested/big.bin",
            f"{prefix}/text.log",
            f"{prefix}/hardlink.bin",
        }
        assert count == len(members)
        big = members[f"{prefix}/nested/big.bin"]
        extracted = tar.extractfile(big)
        assert extracted is not None
        assert extracted.read() == (source / "dir" / "nested" / "big.bin").read_bytes()
        assert members[f"{prefix}/nested"].isdir() and members[f"{prefix}/nested"].mode == 0o750
        assert members[f"{prefix}/nested"].mtime == 1_500_000_000


def test_the_whole_snapshot_through_gnu_tar_matches_the_source(
    repo: Repository, source: Path, tmp_path: Path
) -> None:
    snap = backup(repo, [str(source)]).snapshot
    archive = tmp_path / "dump.tar"
    with archive.open("wb") as f:
        dump(repo, snap, "/", f)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [
            "tar",
            "-x",
            "-f",
            archive,
            "-C",
            out,
            "--xattrs",
            "--xattrs-include=*",
            "-p",
            "--numeric-owner",
        ],
        check=True,
        capture_output=True,
    )
    extracted = out / source.relative_to("/")
    assert without_link_groups(describe(extracted)) == without_link_groups(describe(source))
    assert (os.fsencode(extracted) + b"/" + BAD_UTF8_NAME) and os.path.exists(
        os.path.join(os.fsencode(extracted), BAD_UTF8_NAME)
    )
    listing = subprocess.run(
        ["tar", "-t", "-f", archive], check=True, capture_output=True
    ).stdout.splitlines()
    assert listing[0] == str(source.relative_to("/")).split("/")[0].encode() + b"/"


def test_paths_that_cannot_be_dumped(repo: Repository, source: Path) -> None:
    snap = backup(repo, [str(source)]).snapshot
    with pytest.raises(PathNotFoundError, match="does not exist"):
        dump(repo, snap, str(source / "missing"), io.BytesIO())
    with pytest.raises(EngineError, match="only files and directories"):
        dump(repo, snap, str(source / "fifo"), io.BytesIO())
    with pytest.raises(EngineError, match="unknown archive format"):
        dump(repo, snap, str(source), io.BytesIO(), archive="rar")


def test_times_before_1970_keep_their_sign() -> None:
    from vaultwatch.engine.dump import _pax_time

    assert _pax_time(-500_000_000) == "-0.500000000"
    assert _pax_time(1_600_000_000_123_456_789) == "1600000000.123456789"
