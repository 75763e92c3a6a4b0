"""Errors as RFC 7807 problem details, for every failure the API can produce.

Clients (the agent's GatewayStore above all) act on ``type``, not on the
wording: each VaultwatchError subclass has its own type URI, derived from its
class name, and its ``http_status``. The type also travels in the
``X-Vaultwatch-Problem`` header, because a HEAD response has no body.
Unexpected exceptions become a 500 problem without details; the traceback
goes to the server log only.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vaultwatch.errors import VaultwatchError
from vaultwatch.store.errors import StoreError

PROBLEM_JSON = "application/problem+json"
PROBLEM_HEADER = "X-Vaultwatch-Problem"
TYPE_PREFIX = "urn:vaultwatch:problem:"

log = logging.getLogger("vaultwatch.gateway")


def problem_slug(exc_type: type[BaseException]) -> str:
    """``ObjectNotFoundError`` -> ``object-not-found``."""
    name = exc_type.__name__.removesuffix("Error") or exc_type.__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def problem_type(slug: str) -> str:
    """The type URI of a problem slug."""
    return f"{TYPE_PREFIX}{slug}"


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json response; without a slug the type is ``about:blank`` (RFC 7807 3.1)."""
    phrase = _phrase(status)
    body: dict[str, Any] = {
        "type": problem_type(slug) if slug else "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update(extra)
    all_headers = dict(headers or {})
    all_headers[PROBLEM_HEADER] = slug or "about:blank"
    return JSONResponse(body, status_code=status, headers=all_headers, media_type=PROBLEM_JSON)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def status_of(exc: VaultwatchError) -> int:
    """The HTTP status for a domain error.

    A bare StoreError on the server is a fault of the storage behind the
    gateway, not of the request, so it is a 502 the client may retry.
    """
    if type(exc) is StoreError:
        return 502
    status = int(getattr(exc, "http_status", 400))
    return status if 400 <= status <= 599 else 500


async def _vaultwatch_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VaultwatchError)
    status = status_of(exc)
    if status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return problem_response(status, str(exc), slug=problem_slug(type(exc)), headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such resource: {request.method} {request.url.path}"
    if exc.status_code == 405:
        detail = f"method {request.method} is not allowed on {request.url.path}"
    headers = dict(exc.headers or {})
    return problem_response(exc.status_code, detail, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err.get("loc", ()))
        errors.append({"location": loc, "message": str(err.get("msg", "invalid"))})
    summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
    return problem_response(
        422,
        f"the request is invalid: {summary}" if summary else "the request is invalid",
        slug="invalid-request",
        extra={"errors": errors[:50]},
    )


async def _catalog_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A lost or refused catalog connection: the client should retry, the operator should look."""
    assert isinstance(exc, OperationalError)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    # The driver's message only: SQLAlchemy's own text would carry the statement's parameters.
    log.warning("%s %s: the catalog is unavailable: %s", request.method, request.url.path, reason)
    return problem_response(
        503,
        "the catalog database is unavailable; retry shortly",
        slug="catalog-unavailable",
        headers={"Retry-After": "5"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500, "the server hit an unexpected error; it has been logged", slug="internal"
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a problem+json response."""
    app.add_exception_handler(VaultwatchError, _vaultwatch_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _catalog_unavailable)
    app.add_exception_handler(Exception, _unexpected)
