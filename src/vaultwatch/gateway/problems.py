"""Errors as RFC 7807 problem details, for every failure the API can produce.

Clients (the agent's GatewayStore above all) act on ``type``, not on the
wording: each error is answered with the status and stable slug that
``problem_types`` lists for it. The type also travels in the
``X-Vaultwatch-Problem`` header, because a HEAD response has no body.
Unexpected exceptions become a 500 problem without details; the traceback
goes to the server log only.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from vaultwatch.errors import VaultwatchError
from vaultwatch.gateway.problem_types import problem_for, status_phrase
from vaultwatch.protocol import PROBLEM_HEADER, PROBLEM_JSON, ProblemSlug, problem_type

log = logging.getLogger("vaultwatch.gateway")

_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


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
    body: dict[str, Any] = {
        "type": problem_type(slug) if slug else "about:blank",
        "title": title or status_phrase(status),
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update(extra)
    all_headers = dict(headers or {})
    all_headers[PROBLEM_HEADER] = str(slug) if slug else "about:blank"
    return JSONResponse(body, status_code=status, headers=all_headers, media_type=PROBLEM_JSON)


def status_of(exc: VaultwatchError) -> int:
    """The HTTP status a domain error is answered with."""
    return problem_for(type(exc)).status


async def _vaultwatch_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VaultwatchError)
    problem = problem_for(type(exc))
    if problem.status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc)
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return problem_response(
        problem.status, str(exc), slug=problem.slug, title=problem.heading, headers=headers
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else status_phrase(exc.status_code)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such resource: {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        detail = f"method {request.method} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(exc.status_code, detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method the app serves at the request's path, for a 405's ``Allow`` (RFC 9110 15.5.6).

    FastAPI makes one route per method and names only the first matching
    route's methods, which would leave out the others (``DELETE``, ``PUT`` ...
    of an object), so each method is tried against the app's routes. Mounts
    (static files) match every method and say nothing about the API.
    """
    allowed = []
    for method in _METHODS:
        probe = {
            "type": "http",
            "method": method,
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "headers": [],
            "query_string": b"",
        }
        if any(
            not isinstance(route, Mount) and route.matches(probe)[0] is Match.FULL
            for route in request.app.router.routes
        ):
            allowed.append(method)
    return allowed


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
        slug=ProblemSlug.INVALID_REQUEST,
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
        slug=ProblemSlug.CATALOG_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500, "the server hit an unexpected error; it has been logged", slug=ProblemSlug.INTERNAL
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a problem+json response."""
    app.add_exception_handler(VaultwatchError, _vaultwatch_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _catalog_unavailable)
    app.add_exception_handler(Exception, _unexpected)
