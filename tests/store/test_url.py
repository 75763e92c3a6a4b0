"""Repository URLs: every accepted form, and a clear error for every bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import S3Endpoint
from vaultwatch.errors import VaultwatchError
from vaultwatch.store.errors import InvalidStoreURLError, RepositoryNotFoundError
from vaultwatch.store.local import LocalStore
from vaultwatch.store.s3 import S3Store
from vaultwatch.store.url import STORE_OPENERS, open_store, parse_s3


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9000/bucket", ("http://127.0.0.1:9000", "bucket", "")),
        ("http://127.0.0.1:9000/bucket/", ("http://127.0.0.1:9000", "bucket", "")),
        ("https://minio.example.com/bucket/a/b", ("https://minio.example.com", "bucket", "a/b")),
        ("http://[::1]:9000/bucket/p", ("http://[::1]:9000", "bucket", "p")),
        ("minio.example.com/bucket", ("https://minio.example.com", "bucket", "")),
        ("minio:9000/bucket/tenant-1", ("https://minio:9000", "bucket", "tenant-1")),
        ("localhost/bucket", ("https://localhost", "bucket", "")),
        ("s3.amazonaws.com/my.bucket/repo", (None, "my.bucket", "repo")),
        ("s3.eu-west-1.amazonaws.com/b-1/r", ("https://s3.eu-west-1.amazonaws.com", "b-1", "r")),
    ],
)
def test_s3_forms(url: str, expected: tuple[str | None, str, str]) -> None:
    assert parse_s3(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3:bucket/prefix", "ambiguous"),
        ("s3:bucket", "ambiguous"),
        ("s3:", "ambiguous"),
        ("s3://bucket/prefix", "s3:s3.amazonaws.com/BUCKET"),
        ("s3:s3.amazonaws.com", "no bucket"),
        ("s3:s3.amazonaws.com/", "no bucket"),
        ("s3:http://127.0.0.1:9000", "no bucket"),
        ("s3:http://127.0.0.1:9000//bucket", "no bucket"),
        ("s3:http://user:secret@host/bucket", "AWS_ACCESS_KEY_ID"),
        ("s3:http://host:99999/bucket", "port"),
        ("s3:http://host/bucket?region=x", "query"),
        ("s3:ftp://host/bucket", "http:// or https://"),
        ("s3:minio:/bucket", "port"),
        ("s3:minio:90a/bucket", "port"),
        ("s3:host.example/Bad_Bucket", "bucket name"),
        ("s3:host.example/ab", "bucket name"),
        ("s3:host.example/bucket/../etc", "prefix"),
        ("s3:host.example/bucket/a//b", "prefix"),
        ("s3:host.example/bucket/with space", "prefix"),
        ("s3:bad host.example/bucket", "host"),
        ("", "empty"),
        ("   ", "empty"),
        ("local:", "needs a path"),
        ("/srv/\0vault", "NUL"),
        ("sftp:backup@host:/srv/vault", "not supported"),
        ("rest:https://host/", "not supported"),
        ("https://gateway.example.com/tenant", "unsupported"),
        ("ftp://host/vault", "unsupported"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidStoreURLError, match=message) as info:
        open_store(url)
    assert isinstance(info.value, VaultwatchError)
    assert "secret" not in str(info.value)


def test_plain_and_local_paths(tmp_path: Path) -> None:
    for url in (str(tmp_path / "a"), f"local:{tmp_path / 'a'}"):
        store = open_store(url)
        assert isinstance(store, LocalStore)
        assert store.location == str(tmp_path / "a")


def test_relative_path_and_colons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_store("vault").location == str(tmp_path / "vault")
    # Not a known scheme and no "//": a directory whose name has a colon, as in restic.
    assert open_store("backup:2024").location == str(tmp_path / "backup:2024")


def test_local_create(tmp_path: Path) -> None:
    url = str(tmp_path / "new" / "vault")
    with pytest.raises(RepositoryNotFoundError):
        open_store(url).put("config", b"c")
    store = open_store(url, create=True)
    store.put("config", b"c")
    assert (tmp_path / "new" / "vault" / "config").read_bytes() == b"c"
    assert open_store(url).get("config") == b"c"


def test_s3_url_opens_s3_store() -> None:
    store = open_store("s3:http://127.0.0.1:9000/bucket/tenants/t1")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("bucket", "tenants/t1")
    assert store.location == "s3:http://127.0.0.1:9000/bucket/tenants/t1"
    assert open_store("s3:s3.amazonaws.com/bucket").location == "s3:s3.amazonaws.com/bucket"


@pytest.mark.s3
def test_s3_create(s3_endpoint: S3Endpoint) -> None:
    url = f"s3:{s3_endpoint.url}/vw-url-create/repo"
    with pytest.raises(RepositoryNotFoundError):
        open_store(url).put("config", b"c")
    store = open_store(url, create=True)
    store.put("config", b"c")
    assert open_store(url).get("config") == b"c"
    open_store(url, create=True)  # an existing bucket is fine


def test_openers_are_pluggable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A later scheme (the gateway's https) plugs in without touching the parser."""
    seen: list[tuple[str, bool]] = []

    def opener(rest: str, create: bool) -> LocalStore:
        seen.append((rest, create))
        return LocalStore(tmp_path)

    monkeypatch.setitem(STORE_OPENERS, "https", opener)
    assert isinstance(open_store("https://gateway.example.com/t1", create=True), LocalStore)
    assert seen == [("//gateway.example.com/t1", True)]
