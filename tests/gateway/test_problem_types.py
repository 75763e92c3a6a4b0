"""What each domain error is on the wire: status and stable slug, through the real gateway app."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import vaultwatch
from tests.gateway.harness import GatewayServer
from vaultwatch.catalog import errors as catalog
from vaultwatch.engine import errors as engine
from vaultwatch.engine.restore import RestoreTargetFullError
from vaultwatch.errors import VaultwatchError
from vaultwatch.gateway.problem_types import PROBLEMS, problem_for
from vaultwatch.protocol import ProblemSlug
from vaultwatch.server import build_app
from vaultwatch.soc.alarms import AlarmNotFoundError
from vaultwatch.soc.notify.email import SmtpSettingsError
from vaultwatch.store import errors as store


class _DeeperSnapshotNotFoundError(engine.SnapshotNotFoundError):
    """A subclass the table does not list: it answers as its listed ancestor."""


class _SomeEngineError(engine.EngineError):
    """An engine error of no more specific kind."""


# (error, status, slug): engine errors above all, whose statuses moved out of the engine.
ANSWERS: list[tuple[type[VaultwatchError], int, str]] = [
    (engine.WrongPassphraseError, 401, "wrong-passphrase"),
    (engine.SnapshotNotFoundError, 404, "snapshot-not-found"),
    (engine.PathNotFoundError, 404, "path-not-found"),
    (engine.RepositoryLockedError, 409, "repository-locked"),
    (engine.RepositoryExistsError, 409, "repository-exists"),
    (engine.IntegrityError, 400, "integrity"),
    (engine.LockLostError, 400, "lock-lost"),
    (RestoreTargetFullError, 507, "restore-target-full"),
    (_DeeperSnapshotNotFoundError, 404, "snapshot-not-found"),
    (_SomeEngineError, 400, "engine"),
    (store.StoreError, 502, "store"),
    (store.StoreUnavailableError, 503, "store-unavailable"),
    (store.RepositoryNotFoundError, 404, "repository-not-found"),
    (catalog.EnrollmentTokenExpiredError, 410, "enrollment-token-expired"),
    (catalog.TenantSuspendedError, 403, "tenant-suspended"),
    (AlarmNotFoundError, 404, "alarm-not-found"),
    (SmtpSettingsError, 400, "smtp-settings"),
]
_BY_NAME = {kind.__name__: kind for kind, _, _ in ANSWERS}


@pytest.fixture(scope="module")
def app_client(gateway: GatewayServer) -> Iterator[TestClient]:
    """The gateway's own app, with one more route that raises the error it is named."""
    app: FastAPI = build_app(gateway.settings, ("gateway",), catalog=gateway.catalog)

    @app.get("/api/v1/raise/{name}")
    def raise_named(name: str) -> None:
        raise _BY_NAME[name](f"{name} raised for the test")

    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    ("kind", "status", "slug"), ANSWERS, ids=lambda v: getattr(v, "__name__", None)
)
def test_each_error_is_answered_with_its_status_and_slug(
    app_client: TestClient, kind: type[VaultwatchError], status: int, slug: str
) -> None:
    r = app_client.get(f"/api/v1/raise/{kind.__name__}")
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-vaultwatch-problem"] == slug
    assert r.json() == {
        "type": f"urn:vaultwatch:problem:{slug}",
        "title": r.reason_phrase,
        "status": status,
        "detail": f"{kind.__name__} raised for the test",
    }
    assert ("www-authenticate" in r.headers) == (status == 401)


def test_the_three_enrollment_refusals_have_distinct_statuses() -> None:
    kinds = [
        catalog.EnrollmentTokenUnknownError,
        catalog.EnrollmentTokenUsedError,
        catalog.EnrollmentTokenExpiredError,
    ]
    assert [problem_for(kind).status for kind in kinds] == [401, 409, 410]


def test_the_table_speaks_only_in_pinned_slugs_and_uses_them_all() -> None:
    listed = {problem.slug for problem in PROBLEMS.values()}
    handlers = {ProblemSlug.INVALID_REQUEST, ProblemSlug.CATALOG_UNAVAILABLE, ProblemSlug.INTERNAL}
    assert all(isinstance(slug, ProblemSlug) for slug in listed)
    assert listed | handlers == set(ProblemSlug)


def test_domain_errors_carry_no_http_status() -> None:
    for kind in PROBLEMS:
        assert not hasattr(kind, "http_status"), kind


# Every error the code base defines, as (slug, status). Classes above the gateway
# still derive their slug from their name: renaming one shows up here.
EMITTED = {
    ("admin", 400),
    ("admin-only", 403),
    ("agent-not-found", 404),
    ("agent-retired", 409),
    ("alarm-not-found", 404),
    ("ambiguous-snapshot", 400),
    ("api", 400),
    ("api-key-not-found", 404),
    ("backup-set-choice", 400),
    ("cancelled", 400),
    ("case-not-found", 404),
    ("case-state", 409),
    ("catalog", 400),
    ("catalog-schema", 503),
    ("certificate", 400),
    ("check-failed", 400),
    ("cli", 400),
    ("config", 400),
    ("content-mismatch", 422),
    ("csrf", 403),
    ("customer-update-not-found", 404),
    ("customer-update-state", 409),
    ("delivery", 502),
    ("demo", 400),
    ("diagnosis-target-not-found", 404),
    ("engine", 400),
    ("enrollment", 401),
    ("enrollment-token-expired", 410),
    ("enrollment-token-not-found", 404),
    ("enrollment-token-revoked", 410),
    ("enrollment-token-unknown", 401),
    ("enrollment-token-used", 409),
    ("forbidden", 403),
    ("hold-not-found", 404),
    ("hold-released", 409),
    ("incident-not-found", 404),
    ("incident-state", 409),
    ("integrity", 400),
    ("invalid-api-key", 401),
    ("invalid-credential", 401),
    ("invalid-cursor", 400),
    ("invalid-object-name", 400),
    ("invalid-store-u-r-l", 400),
    ("invalid-subset", 400),
    ("job-conflict", 409),
    ("join-refused", 400),
    ("key-slot", 400),
    ("lease-lost", 409),
    ("lock-lost", 400),
    ("login-failed", 401),
    ("login-locked", 429),
    ("login-required", 401),
    ("manifest-refused", 422),
    ("network-down", 400),
    ("object-exists", 409),
    ("object-naming", 422),
    ("object-not-found", 404),
    ("passphrase-file", 400),
    ("path-not-found", 404),
    ("policy", 400),
    ("policy-exists", 409),
    ("policy-not-found", 404),
    ("policy-refused", 422),
    ("prune-refused", 400),
    ("repository-exists", 409),
    ("repository-locked", 409),
    ("repository-not-found", 404),
    ("restore-target-full", 507),
    ("retention", 404),
    ("saved-view-not-found", 404),
    ("server-config", 400),
    ("silence-not-found", 404),
    ("silence-state", 409),
    ("smtp-settings", 400),
    ("snapshot-not-found", 404),
    ("snapshot-without-manifest", 422),
    ("snmp-listen", 503),
    ("soc-auth", 400),
    ("soc-cli", 400),
    ("soc-client", 400),
    ("soc-connection", 400),
    ("soc-not-found", 400),
    ("soc-request", 400),
    ("staff-on-portal", 403),
    ("status-not-found", 404),
    ("store", 502),
    ("store-full", 507),
    ("store-permission", 403),
    ("store-unavailable", 503),
    ("support-mail-listen", 503),
    ("syslog-listen", 503),
    ("tenant-deleted", 403),
    ("tenant-exists", 409),
    ("tenant-not-found", 404),
    ("tenant-scope", 403),
    ("tenant-state", 409),
    ("tenant-suspended", 403),
    ("too-many-alerts", 413),
    ("unsafe-path", 400),
    ("unsupported-webhook-version", 422),
    ("upload-too-large", 413),
    ("user-exists", 409),
    ("validation", 400),
    ("vaultwatch", 400),
    ("wrong-passphrase", 401),
}


def _all_errors() -> set[type[VaultwatchError]]:
    for module in pkgutil.walk_packages(vaultwatch.__path__, "vaultwatch."):
        if ".migrations." not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: set[type[VaultwatchError]] = {VaultwatchError}
    todo = [VaultwatchError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found and sub.__module__.startswith("vaultwatch."):
                found.add(sub)
                todo.append(sub)
    return found


def test_every_emitted_slug_and_status_is_pinned() -> None:
    emitted = {(problem_for(kind).slug, problem_for(kind).status) for kind in _all_errors()}
    assert emitted - EMITTED == set(), "new or changed problems: pin them if meant"
    assert EMITTED - emitted == set(), "problems gone or renamed: clients match these slugs"
