"""`repo mount`: the snapshots through a real FUSE mount, read byte for byte.

Needs /dev/fuse, libfuse2 and fusermount (scripts/test-services.sh installs
them): where they are missing the test fails and says so, rather than
passing without having mounted anything.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import PASSPHRASE, Cli, read_tree, subprocess_env, vaultwatch_exe


def _require_fuse() -> None:
    missing = [
        what
        for what, ok in (
            ("/dev/fuse", os.path.exists("/dev/fuse")),
            (
                "fusermount3 or fusermount",
                bool(shutil.which("fusermount3") or shutil.which("fusermount")),
            ),
        )
        if not ok
    ]
    if missing:
        pytest.fail(
            f"FUSE is not usable here ({', '.join(missing)} missing): run scripts/test-services.sh"
        )


def _wait_for(path: Path, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(
                f"mount exited with {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        if time.monotonic() > deadline:
            pytest.fail("the mount did not appear")
        time.sleep(0.1)


def test_mounted_snapshots_read_like_the_source(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path
) -> None:
    _require_fuse()
    cli.ok("repo", "tag", "-r", repo, "latest", "--add", "weekly", "-q")
    short = cli.json("repo", "snapshots", "-r", repo)[0]["short_id"]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen(
        [str(vaultwatch_exe()), "repo", "mount", "-r", str(repo), str(mnt)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(VAULTWATCH_PASSPHRASE=PASSPHRASE),
    )
    try:
        _wait_for(mnt / "ids", proc, time.monotonic() + 120)
        assert sorted(os.listdir(mnt)) == ["hosts", "ids", "snapshots", "tags"]
        inside = mnt / "ids" / short / data.relative_to("/")
        assert read_tree(inside) == read_tree(data)
        latest = mnt / "snapshots" / "latest"
        assert latest.is_symlink()
        assert read_tree(latest / data.relative_to("/")) == read_tree(data)
        tagged = mnt / "tags" / "weekly"
        assert len(os.listdir(tagged)) == 1
        blob = inside / "sub" / "blob.bin"
        with open(blob, "rb") as f:
            f.seek(123_457)
            assert f.read(70_000) == (data / "sub" / "blob.bin").read_bytes()[123_457:193_457]
        with pytest.raises(OSError) as refused:
            (inside / "new.txt").write_text("no")
        assert refused.value.errno in (errno.EROFS, errno.EACCES)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        finally:
            if os.path.ismount(mnt):
                subprocess.run(["umount", "-l", str(mnt)], check=False)
    assert not os.path.ismount(mnt)
    assert list((repo / "locks").iterdir()) == []
