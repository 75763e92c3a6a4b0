"""Error pages: people in a browser get an HTML page, programs keep their problem JSON.

The app's problem+json handlers stay in charge of ``/api/`` and of any
request that asks for JSON (the console's own fetch calls); everything else
a browser asked for gets the page. A page that needs a session sends the
browser to the login form instead, and comes back after it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vaultwatch.errors import VaultwatchError
from vaultwatch.gateway.problems import status_of
from vaultwatch.protocol import API_PREFIX
from vaultwatch.web.render import render
from vaultwatch.web.sessions import LoginRequiredError, home_of, login_url

log = logging.getLogger("vaultwatch.web")

Handler = Callable[[Request, Exception], Awaitable[Response]]

HANDLED: tuple[type[Exception], ...] = (
    VaultwatchError,
    StarletteHTTPException,
    RequestValidationError,
    OperationalError,
    Exception,
)


def wants_page(request: Request) -> bool:
    """Whether an error should be an HTML page (a browser's request outside the API)."""
    path = request.url.path
    if path.startswith(API_PREFIX.rsplit("/", 1)[0] + "/") or path == "/healthz":
        return False
    accept = request.headers.get("accept", "")
    return not ("json" in accept and "text/html" not in accept)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _describe(request: Request, exc: Exception) -> tuple[int, str]:
    if isinstance(exc, VaultwatchError):
        return status_of(exc), str(exc)
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return 404, f"there is no page at {request.url.path}"
        if exc.status_code == 405:
            return 405, f"{request.method} is not allowed on {request.url.path}"
        detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
        return exc.status_code, detail
    if isinstance(exc, RequestValidationError):
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return 400, "the request is invalid: " + "; ".join(parts)
    if isinstance(exc, OperationalError):
        log.warning("%s %s: the catalog is unavailable", request.method, request.url.path)
        return 503, "the catalog database is unavailable; retry shortly"
    log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return 500, "the server hit an unexpected error; it has been logged"


def error_page(request: Request, exc: Exception) -> Response:
    """The HTML answer to `exc` (a redirect to the login form when a session is missing)."""
    if isinstance(exc, LoginRequiredError) and request.method in ("GET", "HEAD"):
        if request.headers.get("accept", "").startswith("text/event-stream"):
            return Response(status_code=401)
        return RedirectResponse(login_url(request), status_code=303)
    status, message = _describe(request, exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": _phrase(status),
            "message": message,
            "home_of": home_of,
        },
        status=status,
        headers=headers,
    )


def _dispatch(original: Handler | None) -> Handler:
    async def handler(request: Request, exc: Exception) -> Response:
        if original is not None and not wants_page(request):
            return await original(request, exc)
        return error_page(request, exc)

    return handler


def install_error_pages(app: FastAPI) -> None:
    """Put the page in front of each of the app's problem handlers (install those first)."""
    for exc_type in HANDLED:
        original = app.exception_handlers.get(exc_type)
        app.add_exception_handler(exc_type, _dispatch(original))  # type: ignore[arg-type]
