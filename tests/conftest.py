"""Fixtures shared across the test suite."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from vaultwatch.store.s3 import S3Store


@dataclass(frozen=True)
class S3Endpoint:
    """A running S3-compatible server reachable over real HTTP."""

    url: str
    access_key: str
    secret_key: str
    region: str


_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Keep the developer's own ~/.aws out of the tests.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_AWS_CLEARED = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto's server on a free port; retry if another process grabbed the port."""
    for _ in range(3):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url + "/", timeout=1):
                    return proc, url
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        proc.kill()
        proc.wait()
    pytest.fail(f"moto server did not start:\n{log.read_text(errors='replace')}")


@contextmanager
def _aws_test_environment() -> Iterator[None]:
    """The test credentials in the environment (what boto3's default chain reads), restored after."""
    saved = {key: os.environ.get(key) for key in (*_AWS_ENV, *_AWS_CLEARED)}
    os.environ.update(_AWS_ENV)
    for key in _AWS_CLEARED:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """moto in server mode in a subprocess, with test credentials in the environment."""
    with _aws_test_environment():
        proc, url = _start_moto(tmp_path_factory.mktemp("moto") / "server.log")
        try:
            yield S3Endpoint(
                url=url, access_key="testing", secret_key="testing", region="us-east-1"
            )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def seaweedfs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """SeaweedFS, a real S3 server, on loopback; the same test credentials as moto's."""
    from tests.seaweedfs import SeaweedFSError, running_seaweedfs

    key, secret = _AWS_ENV["AWS_ACCESS_KEY_ID"], _AWS_ENV["AWS_SECRET_ACCESS_KEY"]
    with _aws_test_environment(), ExitStack() as stack:
        try:
            url = stack.enter_context(
                running_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), key, secret)
            )
        except SeaweedFSError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield S3Endpoint(url=url, access_key=key, secret_key=secret, region="us-east-1")


def fresh_s3_store(endpoint: S3Endpoint) -> S3Store:
    """An S3Store on a new, empty bucket at ``endpoint``."""
    from vaultwatch.store.s3 import S3Store

    store = S3Store(
        f"vw-test-{uuid.uuid4().hex[:16]}", endpoint_url=endpoint.url, region=endpoint.region
    )
    assert store.create_bucket_if_missing()
    return store


@pytest.fixture
def s3_store(s3_endpoint: S3Endpoint) -> Iterator[S3Store]:
    """An S3Store on a fresh, empty bucket."""
    with fresh_s3_store(s3_endpoint) as store:
        yield store


@pytest.fixture
def unreadable_file() -> Iterator[str]:
    """A file whose read fails, for root too: another process's memory at offset 0.

    Permissions cannot make a file unreadable to root; reading page 0 of a
    process's memory always fails (EIO, or EACCES/EPERM where ptrace is
    restricted), so a backup of it is partial on any Linux.
    """
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        yield f"/proc/{sleeper.pid}/mem"
    finally:
        sleeper.kill()
        sleeper.wait()


def make_unexaminable(root: Path) -> str:
    """A directory in ``root`` no backup can even lstat: its path is longer than PATH_MAX.

    It is made step by step relative to its parent's descriptor, as only
    such calls reach it; a backup of ``root`` meets it as an entry of
    unknown kind that cannot be examined. Returns its path.
    """
    name = "n" * 200
    path = str(root / "deep")
    os.mkdir(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while len(os.fsencode(path)) < os.pathconf("/", "PC_PATH_MAX"):
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
            path += "/" + name
    finally:
        os.close(fd)
    return path
