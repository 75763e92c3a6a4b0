"""What the service and its clients agree on over the wire, defined once for both sides.

Deployed agents match problem slugs as strings, so a slug is a promise: it is
spelled out here rather than derived from an exception's class name, and a
renamed class changes nothing on the wire. Never change a value; add a new
member for a new problem.
"""

from __future__ import annotations

from enum import StrEnum, unique

#: The version prefix of every HTTP API route: the agents', the SOC's and the portal's.
API_PREFIX = "/api/v1"

PROBLEM_JSON = "application/problem+json"
PROBLEM_HEADER = "X-Vaultwatch-Problem"
PROBLEM_TYPE_PREFIX = "urn:vaultwatch:problem:"


@unique
class ProblemSlug(StrEnum):
    """The ``type`` of a problem document, after ``urn:vaultwatch:problem:``."""

    # Requests the server itself could not handle.
    INVALID_REQUEST = "invalid-request"
    CATALOG_UNAVAILABLE = "catalog-unavailable"
    INTERNAL = "internal"

    # The backup engine.
    ENGINE = "engine"
    WRONG_PASSPHRASE = "wrong-passphrase"
    INTEGRITY = "integrity"
    SNAPSHOT_NOT_FOUND = "snapshot-not-found"
    AMBIGUOUS_SNAPSHOT = "ambiguous-snapshot"
    REPOSITORY_LOCKED = "repository-locked"
    REPOSITORY_EXISTS = "repository-exists"
    UNSAFE_PATH = "unsafe-path"
    KEY_SLOT = "key-slot"
    PATH_NOT_FOUND = "path-not-found"
    POLICY = "policy"
    PRUNE_REFUSED = "prune-refused"
    CHECK_FAILED = "check-failed"
    INVALID_SUBSET = "invalid-subset"
    LOCK_LOST = "lock-lost"
    CANCELLED = "cancelled"
    RESTORE_TARGET_FULL = "restore-target-full"

    # The vault's storage.
    STORE = "store"
    OBJECT_NOT_FOUND = "object-not-found"
    OBJECT_EXISTS = "object-exists"
    INVALID_OBJECT_NAME = "invalid-object-name"
    STORE_PERMISSION = "store-permission"
    STORE_FULL = "store-full"
    STORE_UNAVAILABLE = "store-unavailable"
    REPOSITORY_NOT_FOUND = "repository-not-found"
    INVALID_STORE_URL = "invalid-store-u-r-l"

    # The catalog: tenants, enrollment, credentials, agents, jobs, users.
    CATALOG = "catalog"
    CATALOG_SCHEMA = "catalog-schema"
    VALIDATION = "validation"
    TENANT_EXISTS = "tenant-exists"
    TENANT_NOT_FOUND = "tenant-not-found"
    TENANT_SCOPE = "tenant-scope"
    TENANT_SUSPENDED = "tenant-suspended"
    TENANT_DELETED = "tenant-deleted"
    TENANT_STATE = "tenant-state"
    ENROLLMENT = "enrollment"
    ENROLLMENT_TOKEN_UNKNOWN = "enrollment-token-unknown"
    ENROLLMENT_TOKEN_USED = "enrollment-token-used"
    ENROLLMENT_TOKEN_EXPIRED = "enrollment-token-expired"
    ENROLLMENT_TOKEN_REVOKED = "enrollment-token-revoked"
    ENROLLMENT_TOKEN_NOT_FOUND = "enrollment-token-not-found"
    INVALID_CREDENTIAL = "invalid-credential"
    AGENT_NOT_FOUND = "agent-not-found"
    AGENT_RETIRED = "agent-retired"
    JOB_CONFLICT = "job-conflict"
    USER_EXISTS = "user-exists"

    # The gateway's own checks.
    UPLOAD_TOO_LARGE = "upload-too-large"
    CONTENT_MISMATCH = "content-mismatch"
    OBJECT_NAMING = "object-naming"
    INVALID_CURSOR = "invalid-cursor"
    MANIFEST_REFUSED = "manifest-refused"
    SNAPSHOT_WITHOUT_MANIFEST = "snapshot-without-manifest"
    CERTIFICATE = "certificate"


def problem_type(slug: str) -> str:
    """The type URI of a problem slug."""
    return f"{PROBLEM_TYPE_PREFIX}{slug}"


def slug_of_type(type_uri: str) -> str:
    """The slug of a problem type URI; ``about:blank`` (and anything foreign) stays as it is."""
    return type_uri.removeprefix(PROBLEM_TYPE_PREFIX)
