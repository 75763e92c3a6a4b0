"""Which problem each domain error is on the wire: its HTTP status, slug and title.

The engine, the store and the catalog raise plain domain errors and know
nothing of HTTP; this table is the one place that says what they mean to a
client. A class is looked up along its MRO, so a subclass without an entry of
its own answers as its nearest listed ancestor. Errors of packages above the
gateway, which it may not import, still carry an ``http_status`` of their own
and keep a slug derived from their class name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

from vaultwatch.catalog import errors as catalog
from vaultwatch.catalog.agent_reports import JobConflictError
from vaultwatch.catalog.users import UserExistsError
from vaultwatch.engine import errors as engine
from vaultwatch.engine.restore import RestoreTargetFullError
from vaultwatch.gateway.manifests import ManifestRefusedError, SnapshotWithoutManifestError
from vaultwatch.gateway.tls import CertificateError
from vaultwatch.gateway.vault import (
    ContentMismatchError,
    InvalidCursorError,
    ObjectNamingError,
    UploadTooLargeError,
)
from vaultwatch.protocol import ProblemSlug as S
from vaultwatch.store import errors as store

DEFAULT_STATUS = 400


@dataclass(frozen=True)
class Problem:
    """How one kind of error is answered; ``title`` defaults to the status's reason phrase."""

    status: int
    slug: str
    title: str | None = None

    @property
    def heading(self) -> str:
        """The problem document's ``title``."""
        return self.title or status_phrase(self.status)


PROBLEMS: dict[type[BaseException], Problem] = {
    # The backup engine.
    engine.EngineError: Problem(400, S.ENGINE),
    engine.WrongPassphraseError: Problem(401, S.WRONG_PASSPHRASE),
    engine.IntegrityError: Problem(400, S.INTEGRITY),
    engine.SnapshotNotFoundError: Problem(404, S.SNAPSHOT_NOT_FOUND),
    engine.AmbiguousSnapshotError: Problem(400, S.AMBIGUOUS_SNAPSHOT),
    engine.RepositoryLockedError: Problem(409, S.REPOSITORY_LOCKED),
    engine.RepositoryExistsError: Problem(409, S.REPOSITORY_EXISTS),
    engine.UnsafePathError: Problem(400, S.UNSAFE_PATH),
    engine.KeySlotError: Problem(400, S.KEY_SLOT),
    engine.PathNotFoundError: Problem(404, S.PATH_NOT_FOUND),
    engine.PolicyError: Problem(400, S.POLICY),
    engine.PruneRefusedError: Problem(400, S.PRUNE_REFUSED),
    engine.CheckFailedError: Problem(400, S.CHECK_FAILED),
    engine.InvalidSubsetError: Problem(400, S.INVALID_SUBSET),
    engine.LockLostError: Problem(400, S.LOCK_LOST),
    engine.CancelledError: Problem(400, S.CANCELLED),
    RestoreTargetFullError: Problem(507, S.RESTORE_TARGET_FULL),
    # The vault's storage. A bare StoreError on the server is a fault of the
    # storage behind the gateway, not of the request: a 502 the client may retry.
    store.StoreError: Problem(502, S.STORE),
    store.ObjectNotFoundError: Problem(404, S.OBJECT_NOT_FOUND),
    store.ObjectExistsError: Problem(409, S.OBJECT_EXISTS),
    store.InvalidObjectNameError: Problem(400, S.INVALID_OBJECT_NAME),
    store.StorePermissionError: Problem(403, S.STORE_PERMISSION),
    store.StoreFullError: Problem(507, S.STORE_FULL),
    store.StoreUnavailableError: Problem(503, S.STORE_UNAVAILABLE),
    store.RepositoryNotFoundError: Problem(404, S.REPOSITORY_NOT_FOUND),
    store.InvalidStoreURLError: Problem(400, S.INVALID_STORE_URL),
    # The catalog.
    catalog.CatalogError: Problem(400, S.CATALOG),
    catalog.CatalogSchemaError: Problem(503, S.CATALOG_SCHEMA),
    catalog.ValidationError: Problem(400, S.VALIDATION),
    catalog.TenantExistsError: Problem(409, S.TENANT_EXISTS),
    catalog.TenantNotFoundError: Problem(404, S.TENANT_NOT_FOUND),
    catalog.TenantScopeError: Problem(403, S.TENANT_SCOPE),
    catalog.TenantSuspendedError: Problem(403, S.TENANT_SUSPENDED),
    catalog.TenantDeletedError: Problem(403, S.TENANT_DELETED),
    catalog.TenantStateError: Problem(409, S.TENANT_STATE),
    catalog.EnrollmentError: Problem(401, S.ENROLLMENT),
    catalog.EnrollmentTokenUnknownError: Problem(401, S.ENROLLMENT_TOKEN_UNKNOWN),
    catalog.EnrollmentTokenUsedError: Problem(409, S.ENROLLMENT_TOKEN_USED),
    catalog.EnrollmentTokenExpiredError: Problem(410, S.ENROLLMENT_TOKEN_EXPIRED),
    catalog.EnrollmentTokenRevokedError: Problem(410, S.ENROLLMENT_TOKEN_REVOKED),
    catalog.EnrollmentTokenNotFoundError: Problem(404, S.ENROLLMENT_TOKEN_NOT_FOUND),
    catalog.InvalidCredentialError: Problem(401, S.INVALID_CREDENTIAL),
    catalog.AgentNotFoundError: Problem(404, S.AGENT_NOT_FOUND),
    catalog.AgentRetiredError: Problem(409, S.AGENT_RETIRED),
    JobConflictError: Problem(409, S.JOB_CONFLICT),
    UserExistsError: Problem(409, S.USER_EXISTS),
    # The gateway's own checks.
    UploadTooLargeError: Problem(413, S.UPLOAD_TOO_LARGE),
    ContentMismatchError: Problem(422, S.CONTENT_MISMATCH),
    ObjectNamingError: Problem(422, S.OBJECT_NAMING),
    InvalidCursorError: Problem(400, S.INVALID_CURSOR),
    ManifestRefusedError: Problem(422, S.MANIFEST_REFUSED),
    SnapshotWithoutManifestError: Problem(422, S.SNAPSHOT_WITHOUT_MANIFEST),
    CertificateError: Problem(400, S.CERTIFICATE),
}


def problem_for(exc_type: type[BaseException]) -> Problem:
    """The problem an error of ``exc_type`` is answered with.

    The nearest class along the MRO that is listed here, or that declares an
    ``http_status`` of its own, decides.
    """
    for klass in exc_type.__mro__:
        listed = PROBLEMS.get(klass)
        if listed is not None:
            return listed
        declared = klass.__dict__.get("http_status")
        if isinstance(declared, int):
            return Problem(_bounded(declared), derived_slug(exc_type))
    return Problem(DEFAULT_STATUS, derived_slug(exc_type))


def derived_slug(exc_type: type[BaseException]) -> str:
    """``AlarmNotFoundError`` -> ``alarm-not-found``: the slug of an error this table does not list."""
    name = exc_type.__name__.removesuffix("Error") or exc_type.__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def status_phrase(status: int) -> str:
    """The reason phrase of an HTTP status, ``Error`` for a code HTTP does not name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _bounded(status: int) -> int:
    """A declared status outside the error range is a mistake: answer 500, not a success."""
    return status if 400 <= status <= 599 else 500
