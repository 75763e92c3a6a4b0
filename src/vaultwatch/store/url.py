"""Repository URLs, in restic's forms, turned into Stores.

- ``/srv/vault``, ``vault`` or ``local:/srv/vault``: a directory (LocalStore).
- ``s3:http://host:9000/bucket[/prefix]`` or ``s3:https://...``: an S3-compatible
  endpoint at that URL.
- ``s3:host[:port]/bucket[/prefix]``: HTTPS on that host; for AWS
  ``s3:s3.amazonaws.com/bucket[/prefix]``.
- ``vw+https://host:port``: the tenant's vault behind a Vaultwatch gateway
  (GatewayStore), for agents.

``s3:bucket/prefix`` is refused: the first part is always the host, as in
restic, so a bucket cannot silently be taken for a host or the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from vaultwatch.store.base import Store, check_name
from vaultwatch.store.errors import InvalidObjectNameError, InvalidStoreURLError
from vaultwatch.store.local import LocalStore

Opener = Callable[[str, bool], Store]
"""Builds a Store from the URL's text after ``scheme:``, creating it when asked."""

# Restic's other schemes: named so they get a clear "not supported" instead of being
# taken for a local directory called "sftp:host:/path".
_UNSUPPORTED = frozenset({"sftp", "rest", "b2", "azure", "gs", "swift", "rclone"})


def _open_local(rest: str, create: bool) -> Store:
    if not rest:
        raise InvalidStoreURLError("local: needs a path, e.g. local:/srv/vault")
    store = LocalStore(Path(rest))
    if create:
        store.create_if_missing()
    return store


#: A tenant's vault behind a gateway: ``vw+https://HOST:PORT[,HOST2:PORT2]``.
GATEWAY_SCHEME = "vw+https"


def _open_gateway(rest: str, create: bool) -> Store:
    # Imported here: httpx is not needed by the many commands that use a local vault.
    from vaultwatch.store.http import open_gateway_url

    return open_gateway_url(rest, create)


def parse_s3(rest: str) -> tuple[str | None, str, str]:
    """Split the text after ``s3:`` into (endpoint URL or None for AWS, bucket, prefix)."""
    from vaultwatch.store.s3 import AWS_HOST, check_bucket, check_endpoint  # boto3 only when used

    endpoint: str | None
    if rest.startswith(("http://", "https://")):
        parts = urlsplit(rest)
        if parts.query or parts.fragment:
            raise InvalidStoreURLError(f"s3:{rest} has a query or fragment, which is not allowed")
        endpoint = check_endpoint(f"{parts.scheme}://{parts.netloc}")
        path = parts.path
    elif rest.startswith("//"):
        raise InvalidStoreURLError(
            f"s3:{rest} is not a repository URL: use s3:{AWS_HOST}/BUCKET[/PREFIX] for AWS or "
            "s3:https://HOST[:PORT]/BUCKET[/PREFIX] for another endpoint"
        )
    elif "://" in rest:
        raise InvalidStoreURLError(f"s3:{rest}: the endpoint must be http:// or https://")
    else:
        host, _, path = rest.partition("/")
        path = "/" + path
        hostname, colon, port = host.rpartition(":") if ":" in host else (host, "", "")
        if colon and not port.isdigit():
            raise InvalidStoreURLError(f"invalid port {port!r} in s3:{rest}")
        if not hostname or ("." not in hostname and ":" not in host and host != "localhost"):
            raise InvalidStoreURLError(
                f"s3:{rest} is ambiguous: the first part must be the endpoint host, "
                f"e.g. s3:{AWS_HOST}/BUCKET[/PREFIX] or s3:https://HOST[:PORT]/BUCKET"
            )
        endpoint = None if host == AWS_HOST else check_endpoint(f"https://{host}")
    bucket, _, prefix = path[1:].partition("/")
    if not bucket:
        raise InvalidStoreURLError(f"s3:{rest} names no bucket: expected .../BUCKET[/PREFIX]")
    check_bucket(bucket)
    prefix = prefix.rstrip("/")
    if prefix:
        try:
            check_name(prefix)
        except InvalidObjectNameError:
            raise InvalidStoreURLError(
                f"invalid S3 key prefix {prefix!r} in s3:{rest}: use letters, digits, '-', '_', "
                "'.' and single slashes"
            ) from None
    return endpoint, bucket, prefix


def _open_s3(rest: str, create: bool) -> Store:
    from vaultwatch.store.s3 import S3Store

    endpoint, bucket, prefix = parse_s3(rest)
    store = S3Store(bucket, prefix, endpoint_url=endpoint)
    if create:
        store.create_bucket_if_missing()
    return store


STORE_OPENERS: dict[str, Opener] = {
    "local": _open_local,
    "s3": _open_s3,
    # Agents reaching their vault through a gateway: vw+https://HOST:PORT[,HOST2:PORT2]
    # (credential and CA file from VAULTWATCH_AGENT_CREDENTIAL and VAULTWATCH_CA_CERT).
    GATEWAY_SCHEME: _open_gateway,
}
"""Scheme (the text before the first ``:``) -> opener. Anything else is a local path."""


def names_managed_vault(url: str) -> bool:
    """Whether ``url`` reaches a tenant's vault through a gateway, where the service applies retention.

    Whoever writes snapshots there must write their reference manifests too
    (:class:`vaultwatch.engine.managed.ManagedRepository`).
    """
    scheme, colon, _ = url.partition(":")
    return bool(colon) and scheme == GATEWAY_SCHEME


def open_store(url: str, *, create: bool = False) -> Store:
    """Open the Store a repository URL names; with ``create`` make the directory or bucket.

    Without ``create`` nothing is checked here: the first operation on a missing
    repository raises RepositoryNotFoundError.
    """
    if not url or not url.strip():
        raise InvalidStoreURLError("empty repository URL")
    if "\0" in url:
        raise InvalidStoreURLError("repository URL contains a NUL character")
    scheme, colon, rest = url.partition(":")
    if colon and scheme in STORE_OPENERS:
        return STORE_OPENERS[scheme](rest, create)
    if colon and scheme.lower() in _UNSUPPORTED:
        raise InvalidStoreURLError(f"{scheme}: repositories are not supported (in {url!r})")
    if colon and rest.startswith("//"):
        raise InvalidStoreURLError(
            f"unsupported repository URL {url!r}: use a path, local:PATH or s3:..."
        )
    return _open_local(url, create)
