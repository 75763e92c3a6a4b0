"""A Store reached through a Vaultwatch gateway over HTTPS: how agents write to their vault.

The agent's engine runs unchanged on top of it. Network trouble is retried
here (exponential backoff with full jitter, other gateways in turn), so a
backup survives a cut connection and resumes where it stopped; an
``on_state`` callback tells the agent when it is waiting for the network and
when it is back. Answers the gateway gives on purpose (missing object,
append-only refusal ...) become the usual store errors, never retries.

Retrying is safe because every call is idempotent or made so: content is
named by its hash, and a create-only PUT that meets 409 after an attempt
whose outcome was unknown compares the stored bytes with its own.
"""

from __future__ import annotations

import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import blake3
import httpx

from vaultwatch.backoff import full_jitter
from vaultwatch.job_states import JobState
from vaultwatch.protocol import API_PREFIX, PROBLEM_HEADER, PROBLEM_JSON, ProblemSlug, slug_of_type
from vaultwatch.store.base import (
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
from vaultwatch.store.url import GATEWAY_SCHEME

CREDENTIAL_ENV = "VAULTWATCH_AGENT_CREDENTIAL"
CA_CERT_ENV = "VAULTWATCH_CA_CERT"
SCHEME = GATEWAY_SCHEME

_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class RetryPolicy:
    """How long to keep trying when gateways cannot be reached.

    ``max_attempts`` counts requests over all gateways (None: forever, which
    is what a continuous-backup agent wants). Delays grow as
    ``base_delay * 2**round`` up to ``max_delay``, each drawn uniformly from
    zero to that bound (full jitter), so agents that lost the same gateway
    do not all come back at the same moment. ``gateways`` are more base URLs
    tried in turn after the store's own.
    """

    max_attempts: int | None = 6
    base_delay: float = 0.5
    max_delay: float = 60.0
    gateways: Sequence[str] = ()
    on_state: Callable[[str], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, round_: int) -> float:
        """The pause before the next round of attempts."""
        return full_jitter(round_, self.base_delay, self.max_delay, self.rng.random)


class _Ambiguous(Exception):
    """A retryable failure: the request may or may not have taken effect."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _normalize_base(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == SCHEME:
        parts = parts._replace(scheme="https")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidStoreURLError(f"invalid gateway URL {url!r}: expected https://HOST[:PORT]")
    if parts.username or parts.password:
        raise InvalidStoreURLError(
            f"credentials do not belong in the gateway URL: set {CREDENTIAL_ENV}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidStoreURLError(f"invalid gateway URL {url!r}: no path or query expected")
    return f"{parts.scheme}://{parts.netloc}"


class GatewayStore:
    """The tenant's vault behind a gateway; the tenant is whatever the credential belongs to."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        credential: str,
        ca_cert: Path | None,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        on_state: Callable[[str], None] | None = None,
        page_size: int = 1000,
    ) -> None:
        """``base_url`` is one gateway or a list tried in turn (then ``retry.gateways``).

        ``on_state``, when given, replaces the policy's callback.
        """
        if not credential:
            raise StorePermissionError(
                f"no agent credential for the gateway: enroll the agent or set {CREDENTIAL_ENV}"
            )
        self.retry = retry or RetryPolicy()
        if on_state is not None:
            self.retry.on_state = on_state
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise InvalidStoreURLError("at least one gateway URL is needed")
        self._bases = [_normalize_base(u) for u in urls] + [
            _normalize_base(u) for u in self.retry.gateways
        ]
        self._bases = list(dict.fromkeys(self._bases))
        self._current = 0
        self._page_size = page_size
        self._lock = threading.Lock()
        self._waiting = False
        verify: ssl.SSLContext | bool
        if ca_cert is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca_cert))
            except (OSError, ssl.SSLError) as exc:
                raise StoreError(f"cannot load the CA certificate {ca_cert}: {exc}") from None
        else:
            verify = True
        self._client = httpx.Client(
            http2=False,
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            headers={"Authorization": f"Bearer {credential}", "User-Agent": "vaultwatch-agent"},
            follow_redirects=False,
        )

    @property
    def location(self) -> str:
        """``vw+https://HOST:PORT`` of the gateway in use (never the credential)."""
        base = self._bases[self._current]
        return SCHEME + base[len("https") :] if base.startswith("https") else base

    @property
    def gateways(self) -> list[str]:
        """Every gateway base URL, in the order tried."""
        return list(self._bases)

    def __repr__(self) -> str:
        return f"GatewayStore({self.location!r})"

    def __enter__(self) -> GatewayStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- Store protocol ----------------------------------------------------------------------

    @property
    def reads_cheaply(self) -> bool:
        """Every read is a request to a gateway."""
        return False

    @property
    def reads_in_place(self) -> bool:
        """httpx returns each body as new bytes."""
        return False

    @property
    def leaves_no_cycles(self) -> bool:
        """An httpx request stays in a reference cycle with its body."""
        return False

    def put(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        """Upload with the content's BLAKE3; the gateway verifies it before storing.

        A view is copied first: retries and the HTTP client hold the body after the call.
        """
        data = bytes(data)
        check_name(name)
        digest = blake3.blake3(data).hexdigest()
        headers = {"X-Content-Blake3": digest, "Content-Type": "application/octet-stream"}
        params = {"overwrite": "true"} if overwrite else None
        response, retried = self._request(
            lambda base: self._client.put(
                self._object_url(base, name), content=data, headers=headers, params=params
            ),
            name,
            "writing",
        )
        if response.status_code in (200, 201, 204):
            return
        if response.status_code == 409 and retried and self._same_content(name, data):
            return  # an earlier attempt landed before its answer was lost
        raise self._error(response, name, "writing")

    def put_file(self, name: str, source: Path) -> None:
        """Upload the file's bytes, create-only."""
        self.put(name, source.read_bytes())

    def get(self, name: str) -> bytes:
        """The whole object."""
        check_name(name)
        response, _ = self._request(
            lambda base: self._client.get(self._object_url(base, name)), name, "reading"
        )
        if response.status_code == 200:
            return response.content
        raise self._error(response, name, "reading")

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` with a Range request; fewer at the end of the object."""
        if offset < 0 or length < 0:
            raise ValueError(f"offset and length must be >= 0, got {offset} and {length}")
        check_name(name)
        if length == 0:
            self.size(name)  # a missing object is still an error
            return b""
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        response, _ = self._request(
            lambda base: self._client.get(self._object_url(base, name), headers=headers),
            name,
            "reading",
        )
        if response.status_code == 206:
            return response.content[:length]
        if response.status_code == 200:  # the server ignored the range
            return response.content[offset : offset + length]
        if response.status_code == 416:
            return b""
        raise self._error(response, name, "reading")

    def read_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """A range read copied into ``buffer``."""
        return read_into_by_range(self, name, offset, buffer)

    def exists(self, name: str) -> bool:
        """HEAD the object."""
        check_name(name)
        response = self._head(name)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._error(response, name, "checking")

    def size(self, name: str) -> int:
        """Content-Length of a HEAD."""
        check_name(name)
        response = self._head(name)
        if response.status_code == 200:
            try:
                return int(response.headers["content-length"])
            except (KeyError, ValueError):
                raise StoreError(
                    f"the gateway sent no size for {name!r} ({self.location})"
                ) from None
        raise self._error(response, name, "checking")

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Page through the gateway's sorted listing."""
        check_prefix(prefix)
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"prefix": prefix, "limit": self._page_size}
            if cursor:
                params["cursor"] = cursor

            def attempt(base: str, params: dict[str, Any] = params) -> httpx.Response:
                return self._client.get(f"{base}{API_PREFIX}/vault/objects", params=params)

            response, _ = self._request(attempt, None, "listing")
            if response.status_code != 200:
                raise self._error(response, None, "listing")
            try:
                doc = response.json()
                objects = [StoredObject(str(o["name"]), int(o["size"])) for o in doc["objects"]]
                cursor = doc.get("next_cursor")
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"malformed listing from {self.location}: {exc}") from None
            yield from objects
            if not cursor:
                return

    def delete(self, name: str) -> None:
        """DELETE the object (agents may delete locks only)."""
        check_name(name)
        response, retried = self._request(
            lambda base: self._client.delete(self._object_url(base, name)), name, "deleting"
        )
        if response.status_code in (200, 204):
            return
        if (
            response.status_code == 404
            and retried
            and self._problem(response) != ProblemSlug.REPOSITORY_NOT_FOUND
        ):
            return  # an earlier attempt deleted it before its answer was lost
        raise self._error(response, name, "deleting")

    def holds_anything(self) -> bool:
        """Whether the vault holds any object."""
        return holds_any_object(self)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # -- helpers -----------------------------------------------------------------------------

    def _object_url(self, base: str, name: str) -> str:
        return f"{base}{API_PREFIX}/vault/objects/{quote(name, safe='/')}"

    def _head(self, name: str) -> httpx.Response:
        return self._request(
            lambda base: self._client.head(self._object_url(base, name)), name, "checking"
        )[0]

    def _same_content(self, name: str, data: bytes) -> bool:
        try:
            return self.size(name) == len(data) and self.get(name) == data
        except StoreError:
            return False

    def _set_state(self, waiting: bool) -> None:
        with self._lock:
            if self._waiting == waiting:
                return
            self._waiting = waiting
        callback = self.retry.on_state
        if callback is not None:
            callback(JobState.WAITING_FOR_NETWORK if waiting else JobState.RUNNING)

    def _request(
        self,
        send: Callable[[str], httpx.Response],
        name: str | None,
        action: str,
    ) -> tuple[httpx.Response, bool]:
        """Send, moving through the gateways and backing off while they cannot be reached.

        Returns the answer and whether an earlier attempt failed in a way that
        leaves its effect unknown.
        """
        policy = self.retry
        attempts = 0
        round_ = 0
        tried_this_round = 0
        last_error = ""
        while True:
            with self._lock:
                index = self._current
            base = self._bases[index]
            attempts += 1
            try:
                response = send(base)
                if response.status_code in _RETRY_STATUSES:
                    raise _Ambiguous(f"HTTP {response.status_code} from {base}")
                self._set_state(False)
                return response, attempts > 1
            except httpx.TransportError as exc:
                tls = _tls_failure(exc)
                if tls is not None:
                    raise StoreError(
                        f"TLS error talking to {base}: {tls} (is the CA certificate right?)"
                    ) from None
                last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except _Ambiguous as exc:
                last_error = exc.message
            self._set_state(True)
            if policy.max_attempts is not None and attempts >= policy.max_attempts:
                what = f"object {name!r}" if name else "the vault"
                raise StoreUnavailableError(
                    f"cannot reach a gateway ({action} {what}) after {attempts} attempts: {last_error}"
                )
            tried_this_round += 1
            with self._lock:
                if self._current == index:
                    self._current = (index + 1) % len(self._bases)
            if tried_this_round >= len(self._bases):
                policy.sleep(policy.delay(round_))
                round_ += 1
                tried_this_round = 0

    def _problem(self, response: httpx.Response) -> str:
        slug = response.headers.get(PROBLEM_HEADER, "")
        if not slug and response.headers.get("content-type", "").startswith(PROBLEM_JSON):
            try:
                slug = slug_of_type(str(response.json().get("type", "")))
            except ValueError:
                slug = ""
        return str(slug)

    def _error(self, response: httpx.Response, name: str | None, action: str) -> StoreError:
        """Map a gateway's answer to the StoreError the engine acts on."""
        status = response.status_code
        slug = self._problem(response)
        detail = ""
        if response.content and "json" in response.headers.get("content-type", ""):
            try:
                detail = str(response.json().get("detail", ""))
            except ValueError:
                detail = ""
        what = f"object {name!r}" if name is not None else "the vault"
        where = self.location
        reason = detail or f"HTTP {status}"
        if slug == ProblemSlug.REPOSITORY_NOT_FOUND:
            return RepositoryNotFoundError(f"no repository at {where}: {reason}")
        if status == 404:
            return ObjectNotFoundError(f"object {name!r} not found in {where}")
        if status == 409:
            return ObjectExistsError(f"object {name!r} already exists in {where}")
        if status == 400 and slug == ProblemSlug.INVALID_OBJECT_NAME:
            return InvalidObjectNameError(reason)
        if status in (401, 403):
            return StorePermissionError(f"permission denied {action} {what} in {where}: {reason}")
        if status == 507:
            return StoreFullError(f"no space left in {where} while {action} {what}: {reason}")
        if status >= 500:
            return StoreUnavailableError(f"{where} failed {action} {what}: {reason}")
        return StoreError(f"the gateway refused {action} {what} in {where}: {reason}")


def _tls_failure(exc: BaseException) -> str | None:
    """The certificate problem behind a transport error, if that is what it is (not worth retrying)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or str(current)
        text = str(current)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return text
        current = current.__cause__ or current.__context__
    return None


def open_gateway_store(
    url: str,
    *,
    credential: str | None = None,
    ca_cert: Path | str | None = None,
    timeout: float = 60.0,
    retry: RetryPolicy | None = None,
) -> GatewayStore:
    """A GatewayStore from ``vw+https://HOST:PORT[,HOST2:PORT2...]``.

    The credential and CA file come from the arguments or, failing those,
    from ``VAULTWATCH_AGENT_CREDENTIAL`` and ``VAULTWATCH_CA_CERT``; several
    hosts make the list of gateways tried in turn.
    """
    rest = url.split(":", 1)[1] if url.startswith(f"{SCHEME}:") else url
    if not rest.startswith("//") or len(rest) <= 2:
        raise InvalidStoreURLError(f"invalid gateway URL {url!r}: expected {SCHEME}://HOST:PORT")
    hosts = [h.strip() for h in rest[2:].rstrip("/").split(",") if h.strip()]
    if not hosts:
        raise InvalidStoreURLError(f"invalid gateway URL {url!r}: no host")
    bases = [_normalize_base(f"https://{h}") for h in hosts]
    cred = credential or os.environ.get(CREDENTIAL_ENV, "")
    ca_text = ca_cert if ca_cert is not None else os.environ.get(CA_CERT_ENV)
    ca = Path(ca_text) if ca_text else None
    policy = retry or RetryPolicy()
    if len(bases) > 1:
        policy.gateways = [*bases[1:], *policy.gateways]
    return GatewayStore(bases[0], cred, ca, timeout=timeout, retry=policy)


def open_gateway_url(rest: str, create: bool) -> GatewayStore:
    """The ``vw+https`` opener for ``open_store`` (there is nothing to create on a gateway)."""
    return open_gateway_store(f"{SCHEME}:{rest}")
