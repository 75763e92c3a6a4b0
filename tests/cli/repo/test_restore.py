"""`repo restore` and `repo dump`, compared byte for byte with the source."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, corrupt_a_pack, read_tree


def test_restore_round_trip(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    result = cli.ok("repo", "restore", "-r", repo, snapshot[:8], "--target", target)
    assert result.stdout.startswith("restored 3 files (")
    assert read_tree(target / data.relative_to("/")) == read_tree(data)

    again = cli.json("repo", "restore", "-r", repo, "latest", "--target", target)
    assert again["files_restored"] == 0 and again["files_skipped"] == 3 and again["errors"] == []


def test_restore_include(cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path) -> None:
    target = tmp_path / "out"
    doc = cli.json(
        "repo",
        "restore",
        "-r",
        repo,
        "latest",
        "-t",
        target,
        "--include",
        str(data / "sub" / "deep"),
    )
    assert doc["files_restored"] == 1
    restored = target / data.relative_to("/")
    assert (restored / "sub" / "deep" / "Notes.md").read_text() == "# notes\n" * 50
    assert not (restored / "alpha.txt").exists() and not (restored / "sub" / "blob.bin").exists()

    nothing = cli("repo", "restore", "-r", repo, "latest", "-t", target, "-i", "/not/there")
    assert nothing.exit_code == 1
    assert "nothing in the snapshot matches" in nothing.stderr


def test_restore_of_damaged_data_exits_1(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path
) -> None:
    corrupt_a_pack(repo)
    result = cli("repo", "restore", "-r", repo, "latest", "--target", tmp_path / "out")
    assert result.exit_code == 1
    assert "blob.bin" in result.stderr
    assert "could not be restored" in result.stderr.splitlines()[-1]


def test_dump(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    result = cli.ok("repo", "dump", "-r", repo, "latest", str(data / "sub" / "blob.bin"))
    assert result.stdout_bytes == (data / "sub" / "blob.bin").read_bytes()
    link = cli("repo", "dump", "-r", repo, "latest", str(data / "link"))
    assert link.exit_code == 1 and "only files and directories" in link.stderr
    assert link.stdout_bytes == b""
    zipped = cli("repo", "dump", "-r", repo, "latest", str(data), "--archive", "zip")
    assert zipped.exit_code == 2 and "--archive" in zipped.stderr


def test_dump_of_a_directory_is_a_tar(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path
) -> None:
    result = cli.ok("repo", "dump", "-r", repo, "latest", str(data / "sub"))
    archive = tmp_path / "sub.tar"
    archive.write_bytes(result.stdout_bytes)
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
    prefix = str(data / "sub").lstrip("/")
    assert names == [f"{prefix}/blob.bin", f"{prefix}/deep", f"{prefix}/deep/Notes.md"]
    out = tmp_path / "untarred"
    out.mkdir()
    subprocess.run(["tar", "-x", "-f", archive, "-C", out], check=True)
    assert read_tree(out / data.relative_to("/") / "sub") == read_tree(data / "sub")


def test_restore_patterns_like_restic(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path
) -> None:
    globbed = tmp_path / "globbed"
    doc = cli.json("repo", "restore", "-r", repo, "latest", "-t", globbed, "--include", "*.md")
    restored = globbed / data.relative_to("/")
    assert [p.relative_to(restored) for p in restored.rglob("*") if not p.is_dir()] == [
        Path("sub/deep/Notes.md")
    ]
    # every directory made on the way is counted: the root path's parts, sub and deep
    assert doc["message_type"] == "summary"
    assert doc["files_restored"] == 1 and doc["dirs"] == len(data.parts) - 1 + 2
    assert doc["dirs"] == sum(1 for p in globbed.rglob("*") if p.is_dir())

    excluded = tmp_path / "excluded"
    doc = cli.json(
        "repo", "restore", "-r", repo, "latest", "-t", excluded, "-e", "deep", "-e", "*.txt"
    )
    restored = excluded / data.relative_to("/")
    assert read_tree(restored) == {
        "link": "link:alpha.txt",
        "sub": "dir",
        "sub/blob.bin": (data / "sub" / "blob.bin").read_bytes(),
    }
    assert doc["files_restored"] == 1

    both = tmp_path / "both"
    cli.ok(
        "repo", "restore", "-r", repo, "latest", "-t", both, "-i", str(data / "sub"), "-e", "*.md"
    )
    assert read_tree(both / data.relative_to("/")) == {
        "sub": "dir",
        "sub/blob.bin": (data / "sub" / "blob.bin").read_bytes(),
        "sub/deep": "dir",
    }


def test_restore_verify_reads_the_files_back(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    doc = cli.json("repo", "restore", "-r", repo, "latest", "-t", target, "--verify")
    assert doc["files_verified"] == 3 and doc["errors"] == []
    text = cli.ok("repo", "restore", "-r", repo, "latest", "-t", target, "--verify")
    assert "verified 3 files" in text.stdout


def test_restore_verify_finds_a_file_changed_behind_its_back(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the restore skipped (same size and mtime) but whose bytes differ fails verification."""
    target = tmp_path / "out"
    cli.ok("repo", "restore", "-r", repo, "latest", "-t", target, "-q")
    blob = target / data.relative_to("/") / "sub" / "blob.bin"
    st = blob.stat()
    raw = bytearray(blob.read_bytes())
    raw[1000] ^= 0xFF
    blob.write_bytes(bytes(raw))
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = cli("repo", "restore", "-r", repo, "latest", "-t", target, "--verify")
    assert result.exit_code == 1
    assert f"error: {blob}: verification failed: content differs at offset 0" in result.stderr


def test_latest_with_host_path_and_tag_filters(
    cli: Cli, repo: Path, data: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.txt").write_text("other\n")
    a = cli.json("repo", "backup", "-r", repo, data, "--host", "alpha", "--tag", "daily")
    b = cli.json("repo", "backup", "-r", repo, other, "--host", "beta")
    assert cli.json("repo", "snapshots", "-r", repo, "--host", "alpha")[0]["id"] == a["snapshot_id"]
    listing = cli.json_lines("repo", "ls", "-r", repo, "latest", "--host", "alpha")
    assert listing[0]["id"] == a["snapshot_id"]
    listing = cli.json_lines("repo", "ls", "-r", repo, "latest")
    assert listing[0]["id"] == b["snapshot_id"]
    by_path = cli.json_lines("repo", "ls", "-r", repo, "latest", "--path", str(data))
    assert by_path[0]["id"] == a["snapshot_id"]
    dumped = cli.ok("repo", "dump", "-r", repo, "latest", str(data / "alpha.txt"), "--tag", "daily")
    assert dumped.stdout == "alpha\n"
    target = tmp_path / "t"
    doc = cli.json("repo", "restore", "-r", repo, "latest", "-t", target, "--host", "alpha")
    assert doc["snapshot_id"] == a["snapshot_id"]
    none = cli("repo", "ls", "-r", repo, "latest", "--host", "gamma")
    assert none.exit_code == 1 and "no snapshot matches host gamma" in none.stderr


def test_read_only_repository_needs_no_lock(
    cli: Cli, repo: Path, data: Path, snapshot: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Physical media may be write-protected: reading must still work, with a warning."""
    from vaultwatch.store.errors import StorePermissionError
    from vaultwatch.store.local import LocalStore

    def refuse(self: LocalStore, name: str, data: bytes, *, overwrite: bool = False) -> None:
        raise StorePermissionError(f"permission denied writing {name}")

    monkeypatch.setattr(LocalStore, "put", refuse)
    result = cli.ok("repo", "dump", "-r", repo, "latest", str(data / "alpha.txt"))
    assert result.stdout == "alpha\n"
    assert "read-only: continuing without a lock" in result.stderr
    quiet = cli.ok("repo", "dump", "-r", repo, "latest", str(data / "alpha.txt"), "--no-lock")
    assert quiet.stderr == ""
