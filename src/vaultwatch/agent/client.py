"""The agent's side of the gateway's control API: enrollment, heartbeats and job reports.

Every call tries the gateways in turn, starting with the one that answered
last. A transport failure on all of them is a NetworkDown (the caller waits
and retries with backoff); an answer that refuses the request is an
ApiError with the server's own message. The credential travels only in the
Authorization header and never appears in a message or log line.
"""

from __future__ import annotations

import random
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from vaultwatch import __version__
from vaultwatch.backoff import full_jitter
from vaultwatch.errors import VaultwatchError
from vaultwatch.protocol import API_PREFIX


class NetworkDown(VaultwatchError):
    """No gateway could be reached; retrying later may succeed."""


class ApiError(VaultwatchError):
    """A gateway answered and refused the request; `detail` is its problem's explanation."""

    def __init__(self, message: str, status: int, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or message


class Backoff:
    """Exponential backoff with full jitter: each delay is uniform in [0, min(max, initial * 2**n)].

    Full jitter keeps a fleet of agents that lost the same gateway from
    coming back in lockstep.
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0
        self._rand = rand

    def next_delay(self) -> float:
        """The delay before the next try (grows with each call); never under 50 ms, no busy loop."""
        delay = full_jitter(self.attempt, self.initial, self.maximum, self._rand, minimum=0.05)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Success: the next outage starts from a short delay again."""
        self.attempt = 0


def tls_context(ca_cert: Path | None) -> ssl.SSLContext:
    """Verify gateways against the service's own CA when given, else the system's store."""
    if ca_cert is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        raise VaultwatchError(f"cannot use the CA certificate {ca_cert}: {exc}") from None


def _problem(response: httpx.Response) -> str:
    """The server's message from a problem-details (or any JSON) body."""
    try:
        doc = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(doc, dict):
        for key in ("detail", "title", "message", "error"):
            value = doc.get(key)
            if isinstance(value, str) and value:
                return value
    return response.reason_phrase


CA_HINT = (
    "the service's CA certificate is DATA_DIR/tls/ca.pem on the server; compare its SHA-256 "
    "fingerprint (shown by `vaultwatch admin token create`) with "
    "`openssl x509 -in ca.pem -noout -fingerprint -sha256`"
)


def _enroll_transport_message(url: str, exc: httpx.TransportError, ca_cert: Path | None) -> str:
    """Why enrollment could not talk to ``url``, with what to do about the usual causes."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        if ca_cert is None:
            return (
                f"cannot verify the certificate of {url}: pass the service's CA with "
                f"--ca-cert ca.pem ({CA_HINT})"
            )
        return f"the certificate of {url} is not signed by the CA in {ca_cert} ({CA_HINT})"
    if url.startswith("http://"):
        return (
            f"cannot talk to {url}: the server speaks HTTPS only, "
            f"use https://{url.removeprefix('http://')}"
        )
    return f"cannot reach {url}: {exc}"


def enroll(
    url: str,
    token: str,
    *,
    hostname: str,
    platform: str,
    ca_cert: Path | None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Redeem an enrollment token; returns the server's answer (agent id, credential, tenant)."""
    body = {
        "token": token,
        "hostname": hostname,
        "agent_version": __version__,
        "platform": platform,
    }
    try:
        with httpx.Client(verify=tls_context(ca_cert), timeout=timeout) as client:
            response = client.post(url.rstrip("/") + API_PREFIX + "/enroll", json=body)
    except httpx.TransportError as exc:
        raise NetworkDown(_enroll_transport_message(url, exc, ca_cert)) from None
    if response.status_code not in (200, 201):
        raise ApiError(
            f"enrollment refused by {url}: {_problem(response)} (HTTP {response.status_code})",
            response.status_code,
        )
    doc = response.json()
    if not isinstance(doc, dict) or not doc.get("credential") or not doc.get("agent_id"):
        raise ApiError(f"enrollment answer from {url} lacks an agent id or credential", 502)
    return doc


class GatewayClient:
    """Authenticated JSON calls to the first gateway that answers."""

    def __init__(
        self,
        urls: list[str],
        credential: str,
        ca_cert: Path | None,
        *,
        timeout: float = 30.0,
    ) -> None:
        if not urls:
            raise ValueError("at least one gateway URL is needed")
        self.urls = list(urls)
        self._preferred = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(
            verify=tls_context(ca_cert),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={
                "Authorization": f"Bearer {credential}",
                "User-Agent": f"vaultwatch-agent/{__version__}",
            },
        )

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def _order(self) -> list[int]:
        with self._lock:
            first = self._preferred
        return [first] + [i for i in range(len(self.urls)) if i != first]

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call, each gateway tried once; NetworkDown when none answered."""
        failures = []
        for i in self._order():
            url = self.urls[i]
            try:
                response = self._client.request(method, url + API_PREFIX + path, json=body)
            except httpx.TransportError as exc:
                failures.append(f"{url}: {type(exc).__name__}")
                continue
            if response.status_code in (502, 503, 504):
                failures.append(f"{url}: HTTP {response.status_code}")
                continue
            with self._lock:
                self._preferred = i
            if response.status_code >= 400:
                detail = _problem(response)
                raise ApiError(
                    f"{method} {path} refused: {detail} (HTTP {response.status_code})",
                    response.status_code,
                    detail,
                )
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                return None
        raise NetworkDown("no gateway reachable (" + "; ".join(failures) + ")")

    def probe(self, url: str, timeout: float = 5.0) -> bool:
        """Whether one gateway answers HTTP at all (for the heartbeat's reachability map)."""
        try:
            self._client.get(url + "/healthz", timeout=timeout)
        except httpx.TransportError:
            return False
        return True

    def heartbeat(self, payload: dict[str, Any]) -> Any:
        """POST /heartbeat."""
        return self.request("POST", "/heartbeat", payload)

    def report_job(self, job_uid: str, body: dict[str, Any]) -> Any:
        """PUT /jobs/{uid}: create or update the job (idempotent)."""
        return self.request("PUT", f"/jobs/{job_uid}", body)
