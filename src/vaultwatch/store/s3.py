"""A Store on S3 or any S3-compatible object storage (MinIO, Ceph RGW, moto ...).

Each object is one S3 object at ``<prefix>/<name>``. S3 writes are atomic by
nature (a PUT is visible whole or not at all), so ``put`` needs no temp objects.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    SSLError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from vaultwatch.store.base import (
    TEMP_PREFIX,
    StoredObject,
    check_name,
    check_prefix,
    holds_any_object,
    read_into_by_range,
)
from vaultwatch.store.errors import (
    InvalidObjectNameError,
    InvalidStoreURLError,
    ObjectExistsError,
    ObjectNotFoundError,
    RepositoryNotFoundError,
    StoreError,
    StoreFullError,
    StorePermissionError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AWS_HOST = "s3.amazonaws.com"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HOST_RE = re.compile(r"^(?:[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|[0-9a-f:.]+)$")  # name or IPv6
_AWS_REGION_HOST_RE = re.compile(r"^s3[.-]([a-z0-9-]+)\.amazonaws\.com$")

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AccountProblem",
    }
)
_BUSY = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
)
_FULL = frozenset({"XMinioStorageFull", "QuotaExceeded", "InsufficientStorage"})

# What a conditional create of the probe's scratch object met, and what a second
# one then says about the endpoint: refused (412) means it honours If-None-Match,
# stored again means it ignores the header, denied means it cannot be told.
_ProbeAnswer = Literal["stored", "refused", "unsupported", "denied"]
_PROBE_VERDICT: dict[_ProbeAnswer, bool | None] = {
    "refused": True,
    "stored": False,
    "unsupported": False,
    "denied": None,
}


def check_bucket(bucket: str) -> str:
    """Refuse bucket names S3 would reject, with a message better than botocore's."""
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise InvalidStoreURLError(
            f"invalid S3 bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.' or '-'"
        )
    return bucket


def check_endpoint(endpoint_url: str) -> str:
    """Accept ``http(s)://host[:port]`` only: no path, and never credentials in the URL."""
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidStoreURLError(
            f"invalid S3 endpoint {endpoint_url!r}: expected http://host[:port] or https://..."
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidStoreURLError(
            "credentials do not belong in the S3 endpoint URL: "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
        )
    if not _HOST_RE.match(parts.hostname):
        raise InvalidStoreURLError(
            f"invalid host {parts.hostname!r} in S3 endpoint {endpoint_url!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidStoreURLError(
            f"invalid S3 endpoint {endpoint_url!r}: the bucket goes after the host, "
            "e.g. s3:http://host:9000/bucket/prefix"
        )
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidStoreURLError(f"invalid port in S3 endpoint {endpoint_url!r}") from None
    return f"{parts.scheme}://{parts.netloc}"


def _region_from_endpoint(endpoint_url: str | None) -> str | None:
    host = urlsplit(endpoint_url).hostname if endpoint_url else None
    match = _AWS_REGION_HOST_RE.match(host or "")
    return match.group(1) if match else None


class S3Store:
    """Objects in one bucket under an optional key prefix.

    Credentials come from the arguments or, when absent, boto3's standard chain
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
    ``AWS_PROFILE``, instance roles ...). Transient failures are retried by
    botocore ("standard" mode); what still fails becomes a StoreError.

    Create-only writes use ``If-None-Match: *`` so the endpoint itself refuses to
    replace an object: append-only then holds in the object store, not just in
    this client. Not every S3-compatible server honours the header; some ignore
    it and overwrite. So by default (``conditional_put=None``) the first
    create-only ``put`` probes the endpoint once (see ``conditional_put``).
    ``True`` trusts the endpoint without probing (a 501 still switches it off);
    ``False`` never sends the header. Without conditional writes ``put`` checks
    with HEAD before writing, which leaves a window in which a concurrent writer
    of the same name can be overwritten. Objects are content-addressed, so such a
    race writes identical bytes in practice, but it is a race.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        session_token: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
        conditional_put: bool | None = None,
    ) -> None:
        self._bucket = check_bucket(bucket)
        prefix = prefix.strip("/")
        if prefix:
            try:
                check_name(prefix)
            except InvalidObjectNameError:
                raise InvalidStoreURLError(f"invalid S3 key prefix {prefix!r}") from None
        self._prefix = prefix
        self._key_prefix = f"{prefix}/" if prefix else ""
        self._endpoint = check_endpoint(endpoint_url) if endpoint_url else None
        if (access_key is None) != (secret_key is None):
            raise StorePermissionError("an S3 access key needs its secret key, and vice versa")
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
        )
        self._region: str = (
            region or _region_from_endpoint(self._endpoint) or session.region_name or "us-east-1"
        )
        custom = self._endpoint is not None and not self._endpoint.endswith(".amazonaws.com")
        config = Config(
            region_name=self._region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max(1, max_attempts)},
            max_pool_connections=32,  # the engine uploads from a thread pool
            # S3-compatible servers rarely resolve bucket.host names; AWS prefers them.
            s3={"addressing_style": "path" if custom else "auto"},
            # Checksum trailers (aws-chunked) break many S3-compatible servers; we send
            # Content-MD5 ourselves, which every implementation verifies.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: S3Client = session.client("s3", endpoint_url=self._endpoint, config=config)
        self._max_attempts = max(1, max_attempts)
        self._conditional_put = conditional_put
        self._probe_lock = threading.Lock()

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The key prefix (no leading or trailing slash), or ``""``."""
        return self._prefix

    @property
    def conditional_put(self) -> bool | None:
        """Whether the endpoint refuses to replace an object on ``If-None-Match: *``.

        Found out once per store, on first use: a scratch object is created
        twice with the header, and only a 412 for the second write counts as
        support (a server that ignores the header answers 200 and overwrites).
        The scratch object has a reserved ``.tmp-`` name, so it is never listed
        even when an append-only credential cannot delete it afterwards. None
        when the endpoint refused the scratch write itself (e.g. a policy that
        allows only some key names); it is tried again on the next write.
        Raises the StoreError of a failed write when the endpoint is
        unreachable, unavailable or has no such bucket.
        """
        return self._conditional_put_for(None)

    def _conditional_put_for(self, name: str | None) -> bool | None:
        """``conditional_put``, with errors naming the object whose write needed the answer."""
        if self._conditional_put is None:
            with self._probe_lock:
                if self._conditional_put is None:
                    self._conditional_put = self._probe_conditional_put(name)
        return self._conditional_put

    @property
    def location(self) -> str:
        """``s3:<endpoint>/<bucket>[/<prefix>]``, the URL form ``open_store`` reads back."""
        endpoint = self._endpoint or AWS_HOST
        tail = f"/{self._prefix}" if self._prefix else ""
        return f"s3:{endpoint}/{self._bucket}{tail}"

    @property
    def reads_cheaply(self) -> bool:
        """Every read is a request over the network."""
        return False

    @property
    def reads_in_place(self) -> bool:
        """botocore returns each body as new bytes."""
        return False

    @property
    def leaves_no_cycles(self) -> bool:
        """An HTTP request can stay in a reference cycle with its body."""
        return False

    def __repr__(self) -> str:
        return f"S3Store({self.location!r})"

    def __enter__(self) -> S3Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- setup -------------------------------------------------------------------------------

    def create_bucket_if_missing(self) -> bool:
        """Create the bucket for ``init``; returns whether it was created now."""
        try:
            self._client.head_bucket(Bucket=self._bucket)
            return False
        except ClientError as exc:
            if _status(exc) != 404:
                raise self._client_error(exc, None, "checking") from exc
        except BotoCoreError as exc:
            raise self._transport_error(exc, None, "checking") from exc
        try:
            if self._region == "us-east-1":
                self._client.create_bucket(Bucket=self._bucket)
            else:
                self._client.create_bucket(
                    Bucket=self._bucket,
                    CreateBucketConfiguration={"LocationConstraint": self._region},  # type: ignore[typeddict-item]
                )
        except ClientError as exc:
            code = _code(exc)
            if code == "BucketAlreadyOwnedByYou":
                return False
            if code == "BucketAlreadyExists":
                raise StorePermissionError(
                    f"bucket {self._bucket!r} at {self.location} belongs to another account"
                ) from exc
            raise self._client_error(exc, None, "creating") from exc
        except BotoCoreError as exc:
            raise self._transport_error(exc, None, "creating") from exc
        return True

    # -- Store protocol ----------------------------------------------------------------------

    def put(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        """Upload with Content-MD5; create-only unless ``overwrite`` (see the class docstring).

        A view is copied first: the HTTP client may hold the body after the call.
        """
        data = bytes(data)
        key = self._key(name)
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        md5 = base64.b64encode(digest).decode("ascii")
        # Undecided (None) still sends the header: the endpoint's answer to this
        # write then reports whatever made the probe fail, naming the object.
        if not overwrite and self._conditional_put_for(name) is False and self.exists(name):
            raise self._exists(name)
        for attempt in range(3):
            conditional = not overwrite and self._conditional_put is not False
            try:
                if conditional:
                    self._client.put_object(
                        Bucket=self._bucket, Key=key, Body=data, ContentMD5=md5, IfNoneMatch="*"
                    )
                else:
                    self._client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentMD5=md5)
                return
            except ClientError as exc:
                code, status = _code(exc), _status(exc)
                if conditional and (code == "PreconditionFailed" or status == 412):
                    if _retried(exc) and self._etag(key) == digest.hex():
                        return  # our own first attempt landed; the retry saw it
                    raise self._exists(name) from exc
                if conditional and code == "ConditionalRequestConflict" and attempt < 2:
                    continue  # a concurrent conditional write is in flight: ask again
                if conditional and (code == "NotImplemented" or status == 501):
                    self._conditional_put = False  # endpoint has no conditional writes
                    if self.exists(name):
                        raise self._exists(name) from exc
                    continue
                raise self._client_error(exc, name, "writing") from exc
            except BotoCoreError as exc:
                raise self._transport_error(exc, name, "writing") from exc
        raise StoreUnavailableError(
            f"could not write object {name!r} to {self.location}: concurrent writers kept conflicting"
        )

    def get(self, name: str) -> bytes:
        """Download the whole object."""
        return self._download(name, self._key(name), None)[0]

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        """Fetch a byte range with a Range header; past the end yields fewer bytes, not an error."""
        if offset < 0 or length < 0:
            raise ValueError(f"offset and length must be >= 0, got {offset} and {length}")
        key = self._key(name)
        if length == 0:
            self._head(name, key)
            return b""
        data, status = self._download(name, key, f"bytes={offset}-{offset + length - 1}")
        if status == 200:
            data = data[offset : offset + length]  # the server ignored Range and sent it all
        return data

    def put_file(self, name: str, source: Path) -> None:
        """Upload the file's bytes, create-only."""
        self.put(name, source.read_bytes())

    def read_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """A range read copied into ``buffer``."""
        return read_into_by_range(self, name, offset, buffer)

    def exists(self, name: str) -> bool:
        """HEAD the object; a missing bucket also reads as "no such object" here."""
        key = self._key(name)
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
            return True
        except ClientError as exc:
            if _status(exc) == 404 or _code(exc) in _NOT_FOUND:
                return False
            raise self._client_error(exc, name, "checking") from exc
        except BotoCoreError as exc:
            raise self._transport_error(exc, name, "checking") from exc

    def size(self, name: str) -> int:
        """The object's ContentLength from HEAD."""
        return int(self._head(name, self._key(name))["ContentLength"])

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Page through ListObjectsV2; keys that are not valid names (foreign objects) are skipped."""
        check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        start = len(self._key_prefix)
        with self._mapped(None, "listing"):
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._key_prefix + prefix):
                for obj in page.get("Contents", []):
                    name = obj["Key"][start:]
                    try:
                        check_name(name)
                    except InvalidObjectNameError:
                        continue
                    yield StoredObject(name, int(obj["Size"]))

    def delete(self, name: str) -> None:
        """HEAD then DELETE: S3 deletes are idempotent, so HEAD supplies the not-found error.

        A concurrent delete between the two calls goes unnoticed; both callers succeed.
        """
        key = self._key(name)
        self._head(name, key)
        with self._mapped(name, "deleting"):
            self._client.delete_object(Bucket=self._bucket, Key=key)

    def holds_anything(self) -> bool:
        """Whether any object is under the prefix."""
        return holds_any_object(self)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # -- helpers -----------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self._key_prefix + check_name(name)

    def _head(self, name: str, key: str) -> dict[str, Any]:
        """HEAD the object; a 404 is told apart as missing object or missing bucket."""
        try:
            return dict(self._client.head_object(Bucket=self._bucket, Key=key))
        except ClientError as exc:
            if _status(exc) == 404 and not self._bucket_exists():
                raise self._missing_bucket() from exc
            raise self._client_error(exc, name, "checking") from exc
        except BotoCoreError as exc:
            raise self._transport_error(exc, name, "checking") from exc

    def _download(self, name: str, key: str, byte_range: str | None) -> tuple[bytes, int]:
        """GET and read the body, starting over when the body is cut off mid-stream.

        botocore retries the request but not the body read, which is where a
        dropped connection shows up on large objects. A range starting past the
        end (HTTP 416) is returned as empty: the object exists but is shorter.
        """
        for attempt in range(self._max_attempts):
            try:
                if byte_range is None:
                    response = self._client.get_object(Bucket=self._bucket, Key=key)
                else:
                    response = self._client.get_object(
                        Bucket=self._bucket, Key=key, Range=byte_range
                    )
            except ClientError as exc:
                if byte_range is not None and (_code(exc) == "InvalidRange" or _status(exc) == 416):
                    return b"", 416
                raise self._client_error(exc, name, "reading") from exc
            except BotoCoreError as exc:
                raise self._transport_error(exc, name, "reading") from exc
            body = response["Body"]
            try:
                return body.read(), response["ResponseMetadata"]["HTTPStatusCode"]
            except (HTTPClientError, IncompleteReadError) as exc:
                if attempt + 1 >= self._max_attempts:
                    raise self._transport_error(exc, name, "reading") from exc
            finally:
                body.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _probe_conditional_put(self, name: str | None) -> bool | None:
        """Create a scratch object twice with ``If-None-Match: *``; True if the second is refused."""
        key = f"{self._key_prefix}{TEMP_PREFIX}conditional-put-probe-{secrets.token_hex(8)}"
        first = self._probe_write(key, name)
        if first != "stored":  # refused at once: only a retry of a write that had landed
            return _PROBE_VERDICT[first]
        try:
            return _PROBE_VERDICT[self._probe_write(key, name)]
        finally:
            with suppress(ClientError, BotoCoreError):  # an append-only credential may not
                self._client.delete_object(Bucket=self._bucket, Key=key)

    def _probe_write(self, key: str, name: str | None) -> _ProbeAnswer:
        """One conditional create of the scratch object, and what the endpoint made of it."""
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=b"probe", IfNoneMatch="*")
            return "stored"
        except ClientError as exc:
            code, status = _code(exc), _status(exc)
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
                return "refused"
            if code == "NotImplemented" or status == 501:
                return "unsupported"
            error = self._client_error(exc, name, "writing")
            if isinstance(error, RepositoryNotFoundError | StoreUnavailableError):
                raise error from exc  # the write that asked would fail the same way
            return "denied"
        except BotoCoreError as exc:
            raise self._transport_error(exc, name, "writing") from exc

    def _etag(self, key: str) -> str | None:
        try:
            return self._client.head_object(Bucket=self._bucket, Key=key)["ETag"].strip('"')
        except (ClientError, BotoCoreError):
            return None

    def _bucket_exists(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self._bucket)
            return True
        except ClientError as exc:
            return _status(exc) != 404
        except BotoCoreError:
            return True  # cannot tell; let the original error stand

    @contextmanager
    def _mapped(self, name: str | None, action: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc, name, action) from exc
        except BotoCoreError as exc:
            raise self._transport_error(exc, name, action) from exc

    def _exists(self, name: str) -> ObjectExistsError:
        return ObjectExistsError(f"object {name!r} already exists in {self.location}")

    def _missing_bucket(self) -> RepositoryNotFoundError:
        return RepositoryNotFoundError(
            f"no repository at {self.location}: bucket {self._bucket!r} does not exist"
        )

    def _client_error(self, exc: ClientError, name: str | None, action: str) -> StoreError:
        """Map an S3 error response to the StoreError a caller can act on."""
        code, status = _code(exc), _status(exc)
        what = f"object {name!r}" if name is not None else "the repository"
        where = self.location
        message = exc.response.get("Error", {}).get("Message") or code or f"HTTP {status}"
        if code == "NoSuchBucket":
            return self._missing_bucket()
        if code in _NOT_FOUND or status == 404:
            if name is None:
                return self._missing_bucket()
            return ObjectNotFoundError(f"object {name!r} not found in {where}")
        if code == "PreconditionFailed" or status == 412:
            return self._exists(name or "")
        if code in _DENIED or status == 403:
            return StorePermissionError(f"permission denied {action} {what} in {where}: {message}")
        if code in _FULL or status == 507:
            return StoreFullError(f"no space left in {where} while {action} {what}: {message}")
        if code in _BUSY or status >= 500:
            return StoreUnavailableError(
                f"{where} is unavailable ({action} {what}): {code or status}: {message}"
            )
        return StoreError(f"S3 error {action} {what} in {where}: {code or status}: {message}")

    def _transport_error(self, exc: BotoCoreError, name: str | None, action: str) -> StoreError:
        """Map connection-level failures; only those worth retrying become StoreUnavailableError."""
        what = f"object {name!r}" if name is not None else "the repository"
        where = self.location
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StorePermissionError(
                f"no S3 credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if isinstance(exc, SSLError):
            return StoreError(f"TLS error talking to {where}: {exc}")
        if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
            return StoreUnavailableError(f"cannot reach {where} ({action} {what}): {exc}")
        return StoreError(f"error {action} {what} in {where}: {exc}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _retried(exc: ClientError) -> bool:
    return int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) > 0
