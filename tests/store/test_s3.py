"""S3Store behaviour beyond the conformance suite: endpoints that fail, refuse or misbehave.

Most tests talk to moto over HTTP. Failure modes moto cannot produce (403, 503,
501 for If-None-Match, a cut-off body, a server that ignores Range) come from a
small scripted HTTP server, so botocore still parses real responses.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.conftest import S3Endpoint, fresh_s3_store
from vaultwatch.store.errors import (
    ObjectExistsError,
    ObjectNotFoundError,
    RepositoryNotFoundError,
    StoreFullError,
    StorePermissionError,
    StoreUnavailableError,
)
from vaultwatch.store.s3 import S3Store
from vaultwatch.store.url import open_store

pytestmark = pytest.mark.s3


def _bucket() -> str:
    return f"vw-test-{uuid.uuid4().hex[:16]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- against moto ------------------------------------------------------------------------------


def test_create_bucket_if_missing(s3_endpoint: S3Endpoint) -> None:
    store = S3Store(_bucket(), endpoint_url=s3_endpoint.url)
    assert store.create_bucket_if_missing() is True
    assert store.create_bucket_if_missing() is False
    store.put("config", b"c")
    assert store.get("config") == b"c"


def test_create_bucket_outside_us_east_1(s3_endpoint: S3Endpoint) -> None:
    store = S3Store(_bucket(), endpoint_url=s3_endpoint.url, region="eu-west-1")
    assert store.create_bucket_if_missing() is True
    client = boto3.client("s3", endpoint_url=s3_endpoint.url)
    location = client.get_bucket_location(Bucket=store.bucket)["LocationConstraint"]
    assert location == "eu-west-1"


def test_missing_bucket_names_the_bucket(s3_endpoint: S3Endpoint) -> None:
    store = S3Store("vw-no-such-bucket", endpoint_url=s3_endpoint.url)
    with pytest.raises(RepositoryNotFoundError, match="vw-no-such-bucket"):
        store.get("config")
    with pytest.raises(RepositoryNotFoundError, match="vw-no-such-bucket"):
        store.size("config")


def test_prefix_isolates_repositories(s3_endpoint: S3Endpoint) -> None:
    bucket = _bucket()
    one = S3Store(bucket, "tenants/one", endpoint_url=s3_endpoint.url)
    two = S3Store(bucket, "/tenants/two/", endpoint_url=s3_endpoint.url)
    one.create_bucket_if_missing()
    one.put("config", b"one")
    two.put("config", b"two")
    two.put("data/ab/ab01", b"pack")
    assert one.get("config") == b"one"
    assert {o.name for o in one.list()} == {"config"}
    assert {o.name for o in two.list()} == {"config", "data/ab/ab01"}
    client = boto3.client("s3", endpoint_url=s3_endpoint.url)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"tenants/one/config", "tenants/two/config", "tenants/two/data/ab/ab01"}


def test_capabilities_of_an_object_store(s3_store: S3Store) -> None:
    # what restores and backups tune themselves by (see the Store protocol)
    assert not s3_store.reads_cheaply
    assert not s3_store.reads_in_place
    assert not s3_store.leaves_no_cycles


def test_holds_anything_counts_only_what_is_under_the_prefix(s3_endpoint: S3Endpoint) -> None:
    bucket = _bucket()
    one = S3Store(bucket, "tenants/one", endpoint_url=s3_endpoint.url)
    one.create_bucket_if_missing()
    two = S3Store(bucket, "tenants/two", endpoint_url=s3_endpoint.url)
    one.put("config", b"c")
    assert one.holds_anything()
    assert not two.holds_anything()


def test_foreign_keys_are_skipped(s3_store: S3Store, s3_endpoint: S3Endpoint) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint.url)
    for key in ("notes/read me.txt", "data/", "data//x", "data/ab/.tmp-1"):
        client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"x")
    s3_store.put("data/ab/ab01", b"pack")
    assert [o.name for o in s3_store.list()] == ["data/ab/ab01"]


def test_list_pages_through_many_objects(s3_store: S3Store) -> None:
    """More than one ListObjectsV2 page (1000 keys) must all come back."""
    names = {f"index/{i:05d}" for i in range(1100)}
    with ThreadPoolExecutor(16) as pool:  # one shared client, as the engine uses it
        list(pool.map(lambda name: s3_store.put(name, name.encode()), names))
    assert {o.name for o in s3_store.list("index/")} == names


def test_location_has_no_credentials_and_reopens(s3_endpoint: S3Endpoint) -> None:
    store = S3Store(
        _bucket(),
        "repo/main",
        endpoint_url=s3_endpoint.url,
        access_key="testing",
        secret_key="testing",
    )
    store.create_bucket_if_missing()
    assert store.location == f"s3:{s3_endpoint.url}/{store.bucket}/repo/main"
    assert "testing" not in store.location
    store.put("config", b"c")
    again = open_store(store.location)
    assert again.location == store.location
    assert again.get("config") == b"c"


def test_location_for_aws() -> None:
    assert S3Store("my-bucket").location == "s3:s3.amazonaws.com/my-bucket"
    assert S3Store("my-bucket", "p").location == "s3:s3.amazonaws.com/my-bucket/p"


def test_without_conditional_put_overwrite_is_still_refused(s3_endpoint: S3Endpoint) -> None:
    store = S3Store(_bucket(), endpoint_url=s3_endpoint.url, conditional_put=False)
    store.create_bucket_if_missing()
    store.put("keys/k1", b"first")
    with pytest.raises(ObjectExistsError, match="keys/k1"):
        store.put("keys/k1", b"second")
    store.put("keys/k1", b"third", overwrite=True)
    assert store.get("keys/k1") == b"third"


@pytest.mark.parametrize("server", ["s3_endpoint", "seaweedfs_endpoint"], ids=["moto", "seaweedfs"])
def test_endpoint_itself_refuses_to_replace(server: str, request: pytest.FixtureRequest) -> None:
    """Append-only holds in the object store: a conditional create of an existing key gets 412."""
    endpoint: S3Endpoint = request.getfixturevalue(server)
    with fresh_s3_store(endpoint) as store:
        assert store.conditional_put is True  # probed: the second create was refused
        store.put("keys/k1", b"first")
        client = boto3.client("s3", endpoint_url=endpoint.url)
        with pytest.raises(ClientError) as info:  # another writer, not through the store
            client.put_object(Bucket=store.bucket, Key="keys/k1", Body=b"x", IfNoneMatch="*")
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        with pytest.raises(ObjectExistsError, match="keys/k1"):
            store.put("keys/k1", b"second")
        assert store.get("keys/k1") == b"first"
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=store.bucket)["Contents"]]
        assert keys == ["keys/k1"]  # the probe's scratch object was removed


def test_unreachable_endpoint_fails_fast() -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens here
    store = S3Store(
        "vw-unreachable",
        endpoint_url=url,
        access_key="AKIAEXAMPLE",
        secret_key="very-secret-key",
        connect_timeout=1,
        max_attempts=1,
    )
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        store.get("config")
    assert time.monotonic() - started < 5
    assert url in str(info.value)
    assert "very-secret-key" not in str(info.value)
    with pytest.raises(StoreUnavailableError):
        store.put("config", b"c")
    with pytest.raises(StoreUnavailableError):
        list(store.list())


def test_silent_endpoint_times_out() -> None:
    """A server that accepts and never answers must not hang the caller."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        store = S3Store(
            "vw-silent",
            endpoint_url=f"http://127.0.0.1:{port}",
            connect_timeout=1,
            read_timeout=0.5,
            max_attempts=1,
        )
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            store.get("config")
        assert time.monotonic() - started < 5


# -- against a scripted server -----------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class ScriptedS3:
    """Answers each request with ``respond(request)``; keeps every request it saw."""

    url: str
    respond: Callable[[Request], Reply] = lambda _: (500, {}, b"")
    requests: list[Request] = field(default_factory=list)

    def store(self, **kwargs: object) -> S3Store:
        """A store on the scripted server; it trusts If-None-Match unless told to probe."""
        kwargs.setdefault("conditional_put", True)
        return S3Store(
            "vw-scripted",
            endpoint_url=self.url,
            access_key="k",
            secret_key="s",
            connect_timeout=1,
            read_timeout=2,
            **kwargs,  # type: ignore[arg-type]
        )

    def seen(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]


def error(status: int, code: str) -> Reply:
    body = f"<Error><Code>{code}</Code><Message>scripted {code}</Message></Error>".encode()
    return status, {"Content-Type": "application/xml"}, body


@pytest.fixture
def scripted() -> Iterator[ScriptedS3]:
    state = ScriptedS3(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(self.command, self.path, dict(self.headers.items()), body)
            state.requests.append(request)
            status, headers, payload = state.respond(request)
            self.send_response(status)
            headers.setdefault("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_access_denied(scripted: ScriptedS3) -> None:
    scripted.respond = lambda _: error(403, "AccessDenied")
    store = scripted.store()
    with pytest.raises(StorePermissionError, match="config"):
        store.get("config")
    with pytest.raises(StorePermissionError, match="data/ab/x"):
        store.put("data/ab/x", b"x")
    with pytest.raises(StorePermissionError):
        store.exists("config")  # a 403 is not "missing"
    with pytest.raises(StorePermissionError):
        list(store.list())


def test_busy_endpoint_is_retried_then_unavailable(scripted: ScriptedS3) -> None:
    scripted.respond = lambda _: error(503, "SlowDown")
    store = scripted.store(max_attempts=3)
    with pytest.raises(StoreUnavailableError, match="SlowDown"):
        store.get("config")
    assert len(scripted.requests) == 3


def test_busy_endpoint_recovers(scripted: ScriptedS3) -> None:
    def respond(request: Request) -> Reply:
        if len(scripted.requests) == 1:
            return error(503, "SlowDown")
        return 200, {}, b"payload"

    scripted.respond = respond
    assert scripted.store(max_attempts=3).get("config") == b"payload"


def test_storage_full(scripted: ScriptedS3) -> None:
    scripted.respond = lambda _: error(507, "XMinioStorageFull")
    with pytest.raises(StoreFullError, match="data/ab/x"):
        scripted.store(max_attempts=1).put("data/ab/x", b"x")


def test_put_sends_content_md5_and_if_none_match(scripted: ScriptedS3) -> None:
    scripted.respond = lambda _: (200, {"ETag": '"x"'}, b"")
    store = scripted.store()
    store.put("data/ab/x", b"pack bytes")
    store.put("data/ab/y", b"pack bytes", overwrite=True)
    create, replace = scripted.requests
    expected_md5 = base64.b64encode(hashlib.md5(b"pack bytes").digest()).decode()
    assert create.method == "PUT" and create.path.endswith("/vw-scripted/data/ab/x")
    assert create.headers["Content-MD5"] == expected_md5
    assert create.headers["If-None-Match"] == "*"
    assert create.body == b"pack bytes"
    assert "If-None-Match" not in replace.headers


def test_endpoint_without_conditional_writes_falls_back_to_head(scripted: ScriptedS3) -> None:
    stored: dict[str, bytes] = {}

    def respond(request: Request) -> Reply:
        key = request.path
        if request.method == "PUT" and "If-None-Match" in request.headers:
            return error(501, "NotImplemented")
        if request.method == "PUT":
            stored[key] = request.body
            return 200, {"ETag": '"x"'}, b""
        if request.method == "HEAD":
            if key in stored:
                return 200, {"Content-Length": str(len(stored[key]))}, b""
            return 404, {}, b""
        return error(400, "Unexpected")

    scripted.respond = respond
    store = scripted.store(max_attempts=1)
    store.put("keys/k1", b"first")
    assert scripted.seen() == [
        "PUT /vw-scripted/keys/k1",  # conditional: refused with 501
        "HEAD /vw-scripted/keys/k1",  # fallback check
        "PUT /vw-scripted/keys/k1",  # plain write
    ]
    scripted.requests.clear()
    with pytest.raises(ObjectExistsError):
        store.put("keys/k1", b"second")
    assert scripted.seen() == ["HEAD /vw-scripted/keys/k1"]  # no further conditional attempts
    assert stored == {"/vw-scripted/keys/k1": b"first"}


def test_retried_put_that_already_landed_succeeds(scripted: ScriptedS3) -> None:
    """First PUT is stored but answered 500; the retry then sees 412 for our own bytes."""
    data = b"pack bytes"
    etag = hashlib.md5(data).hexdigest()

    def respond(request: Request) -> Reply:
        puts = sum(1 for r in scripted.requests if r.method == "PUT")
        if request.method == "PUT":
            return error(500, "InternalError") if puts == 1 else error(412, "PreconditionFailed")
        return 200, {"ETag": f'"{etag}"', "Content-Length": str(len(data))}, b""

    scripted.respond = respond
    scripted.store(max_attempts=3).put("data/ab/x", data)
    assert scripted.seen() == [
        "PUT /vw-scripted/data/ab/x",
        "PUT /vw-scripted/data/ab/x",
        "HEAD /vw-scripted/data/ab/x",
    ]


def test_retried_put_that_met_someone_elses_object_fails(scripted: ScriptedS3) -> None:
    def respond(request: Request) -> Reply:
        puts = sum(1 for r in scripted.requests if r.method == "PUT")
        if request.method == "PUT":
            return error(500, "InternalError") if puts == 1 else error(412, "PreconditionFailed")
        return 200, {"ETag": '"0123456789abcdef0123456789abcdef"', "Content-Length": "3"}, b""

    scripted.respond = respond
    with pytest.raises(ObjectExistsError):
        scripted.store(max_attempts=3).put("data/ab/x", b"pack bytes")


def test_range_ignored_by_server(scripted: ScriptedS3) -> None:
    data = bytes(range(100))
    scripted.respond = lambda _: (200, {}, data)  # 200 with the whole object, not 206
    assert scripted.store().get_range("data/ab/x", 10, 5) == data[10:15]


def test_range_header(scripted: ScriptedS3) -> None:
    scripted.respond = lambda _: (206, {"Content-Range": "bytes 10-14/100"}, b"abcde")
    assert scripted.store().get_range("data/ab/x", 10, 5) == b"abcde"
    assert scripted.requests[0].headers["Range"] == "bytes=10-14"


def test_body_cut_off_is_read_again(scripted: ScriptedS3) -> None:
    data = bytes(range(256)) * 40

    def respond(request: Request) -> Reply:
        if len(scripted.requests) == 1:  # promise everything, send a tenth
            return 200, {"Content-Length": str(len(data)), "Connection": "close"}, data[:1024]
        return 200, {}, data

    scripted.respond = respond
    assert scripted.store(max_attempts=3).get("data/ab/x") == data
    assert len(scripted.requests) == 2


def test_body_always_cut_off_is_unavailable(scripted: ScriptedS3) -> None:
    scripted.respond = lambda _: (200, {"Content-Length": "5000", "Connection": "close"}, b"x")
    with pytest.raises(StoreUnavailableError, match="data/ab/x"):
        scripted.store(max_attempts=2).get("data/ab/x")
    assert len(scripted.requests) == 2


def test_missing_key_vs_missing_bucket_on_head(scripted: ScriptedS3) -> None:
    """HEAD 404 says nothing about why; the bucket is checked to tell the two apart."""
    bucket_exists = True

    def respond(request: Request) -> Reply:
        if request.path.rstrip("/") == "/vw-scripted":
            return (200, {}, b"") if bucket_exists else (404, {}, b"")
        return 404, {}, b""

    scripted.respond = respond
    store = scripted.store(max_attempts=1)
    with pytest.raises(ObjectNotFoundError):
        store.size("config")
    bucket_exists = False
    with pytest.raises(RepositoryNotFoundError):
        store.size("config")
    with pytest.raises(RepositoryNotFoundError):
        store.delete("config")


def bucket_server(scripted: ScriptedS3, if_none_match: str) -> dict[str, bytes]:
    """Serve one bucket from a dict; ``if_none_match`` is "honour", "ignore" or "501"."""
    stored: dict[str, bytes] = {}

    def respond(request: Request) -> Reply:
        key = request.path
        if request.method == "PUT" and "If-None-Match" in request.headers:
            if if_none_match == "501":
                return error(501, "NotImplemented")
            if if_none_match == "honour" and key in stored:
                return error(412, "PreconditionFailed")
        if request.method == "PUT":
            stored[key] = request.body
            return 200, {"ETag": '"x"'}, b""
        if request.method == "HEAD":
            if key in stored:
                return 200, {"Content-Length": str(len(stored[key]))}, b""
            return 404, {}, b""
        if request.method == "DELETE":
            stored.pop(key, None)
            return 204, {}, b""
        return error(400, "Unexpected")

    scripted.respond = respond
    return stored


PROBE = "/vw-scripted/.tmp-conditional-put-probe-"


def probes(scripted: ScriptedS3) -> list[str]:
    """The requests seen, with the probe's random scratch name made constant."""
    return [line.split(PROBE)[0] + PROBE if PROBE in line else line for line in scripted.seen()]


def test_probe_finds_conditional_writes_once(scripted: ScriptedS3) -> None:
    stored = bucket_server(scripted, "honour")
    store = scripted.store(conditional_put=None, max_attempts=1)
    store.put("keys/k1", b"first")
    assert probes(scripted) == [
        f"PUT {PROBE}",  # created
        f"PUT {PROBE}",  # refused with 412: the endpoint honours If-None-Match
        f"DELETE {PROBE}",
        "PUT /vw-scripted/keys/k1",
    ]
    assert scripted.requests[-1].headers["If-None-Match"] == "*"
    assert store.conditional_put is True
    scripted.requests.clear()
    with pytest.raises(ObjectExistsError):
        store.put("keys/k1", b"second")
    assert scripted.seen() == ["PUT /vw-scripted/keys/k1"]  # no second probe, no HEAD
    assert stored == {"/vw-scripted/keys/k1": b"first"}


@pytest.mark.parametrize("answer", ["ignore", "501"])
def test_probe_finds_endpoint_without_conditional_writes(scripted: ScriptedS3, answer: str) -> None:
    """An endpoint that ignores the header (200, overwritten) is found out, not trusted."""
    stored = bucket_server(scripted, answer)
    store = scripted.store(conditional_put=None, max_attempts=1)
    store.put("keys/k1", b"first")
    assert store.conditional_put is False
    assert probes(scripted)[-2:] == ["HEAD /vw-scripted/keys/k1", "PUT /vw-scripted/keys/k1"]
    assert "If-None-Match" not in scripted.requests[-1].headers
    with pytest.raises(ObjectExistsError):
        store.put("keys/k1", b"second")
    assert stored == {"/vw-scripted/keys/k1": b"first"}  # and no scratch object left behind


def test_probe_that_cannot_tell_is_tried_again(scripted: ScriptedS3) -> None:
    """A scratch write the endpoint refuses (403) decides nothing: the header is still sent."""
    stored = bucket_server(scripted, "honour")
    honour = scripted.respond
    scripted.respond = lambda r: error(403, "AccessDenied") if PROBE in r.path else honour(r)
    store = scripted.store(conditional_put=None, max_attempts=1)
    store.put("keys/k1", b"first")
    assert probes(scripted) == [f"PUT {PROBE}", "PUT /vw-scripted/keys/k1"]
    assert scripted.requests[-1].headers["If-None-Match"] == "*"
    assert store.conditional_put is None
    scripted.respond = honour
    assert store.conditional_put is True
    assert stored == {"/vw-scripted/keys/k1": b"first"}
