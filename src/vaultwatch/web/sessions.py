"""Browser sessions: the login form, the session cookie, lockout and logout.

A session is an API key row named "web session" that lives 12 hours (see
`vaultwatch.soc.apikeys`): its id is 256 random bits that only the cookie
holds, the catalog keeps a keyed digest, and revocation, expiry and a
disabled user end it exactly as they end a key (an administrator revokes a
session like any key). Logging in always makes a new session and revokes
the one the browser brought, so a session id planted before login is
worthless after it. Five failed logins of one email within 15 minutes lock
that email until the window has passed (the failures are the
``login.failed`` audit rows, so every server node sees the same count).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from vaultwatch.catalog import AuditEntry, Catalog, audit
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.models import Role, User
from vaultwatch.errors import VaultwatchError
from vaultwatch.soc.api.auth import catalog_of, token_key_of
from vaultwatch.soc.apikeys import (
    LOGIN_KEY_LIFETIME,
    ForbiddenError,
    InvalidApiKeyError,
    LoginFailedError,
    Principal,
    authenticate_api_key,
    check_password,
    create_api_key,
    is_api_key_shaped,
    revoke_api_key,
)
from vaultwatch.web import csrf
from vaultwatch.web.render import render

COOKIE = "vw_session"
SESSION_NAME = "web session"
SESSION_LIFETIME = LOGIN_KEY_LIFETIME
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
HOME = "/console"
#: Where a role lands after login when it was not going anywhere in particular.
ROLE_HOMES = {
    Role.DC_TECHNICIAN: "/datacenter",
    Role.CUSTOMER_ADMIN: "/portal",
    Role.CUSTOMER_VIEWER: "/portal",
}


def home_of(role: Role) -> str:
    """Where a user of `role` lands: the console, the portal or the data-center view."""
    return ROLE_HOMES.get(role, HOME)


class LoginLockedError(VaultwatchError):
    """Too many failed logins of this email recently: wait, then try again."""

    http_status = 429


class LoginRequiredError(VaultwatchError):
    """The page needs a signed-in session (web pages answer with a redirect to the login form)."""

    http_status = 401


@dataclass(frozen=True)
class WebSession:
    """A new session: the id goes into the cookie and nowhere else."""

    session_id: str
    principal: Principal
    expires_at: datetime


def recent_failures(session: Session, email: str) -> int:
    """Failed logins of `email` in the lockout window, since its last successful login."""
    wanted = email.strip().lower()[:320]
    now = database_now(session)
    since = now - LOCKOUT_WINDOW
    last_login = session.scalar(select(User.last_login_at).where(func.lower(User.email) == wanted))
    if last_login is not None and last_login > since:
        since = last_login
    count = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(
            AuditEntry.action == "login.failed",
            AuditEntry.occurred_at > since,
            AuditEntry.details["email"].as_string() == wanted,
        )
    )
    return int(count or 0)


def open_session(
    catalog: Catalog, email: str, password: str, *, key: bytes, replaces: str | None = None
) -> WebSession:
    """Check the password (unless the email is locked out) and start a new session.

    `replaces` is the session id the browser already had: it is revoked, so
    no id known before the login is valid after it.
    """
    with catalog.session() as session:
        failures = recent_failures(session, email)
        if failures >= LOCKOUT_FAILURES:
            audit.record(
                session,
                audit.system_actor("login"),
                "login.locked",
                None,
                details={"email": email.strip().lower()[:320]},
            )
    if failures >= LOCKOUT_FAILURES:
        minutes = int(LOCKOUT_WINDOW.total_seconds() // 60)
        raise LoginLockedError(
            f"too many failed logins for this account: try again in {minutes} minutes"
        )
    principal = check_password(catalog, email, password)
    if replaces:
        close_session(catalog, replaces, key=key)
    with catalog.session() as session:
        user = session.get(User, principal.user_id)
        if user is None:
            raise LoginFailedError("wrong email or password")
        issued = create_api_key(
            session, user, SESSION_NAME, key=key, actor=principal.actor, lifetime=SESSION_LIFETIME
        )
    assert issued.expires_at is not None
    return WebSession(issued.plaintext, principal, issued.expires_at)


def session_principal(catalog: Catalog, session_id: str, *, key: bytes) -> Principal:
    """Who a session id acts as; LoginRequiredError when it is unknown, revoked or expired."""
    if not is_api_key_shaped(session_id):
        raise LoginRequiredError("please sign in")
    try:
        with catalog.session() as session:
            return authenticate_api_key(session, session_id, key=key)
    except InvalidApiKeyError:
        raise LoginRequiredError("your session has ended: please sign in again") from None


def close_session(catalog: Catalog, session_id: str, *, key: bytes) -> bool:
    """Revoke a session (logout); False when it was no valid session anyway."""
    try:
        principal = session_principal(catalog, session_id, key=key)
    except LoginRequiredError:
        return False
    if principal.key_id is None:
        return False
    with catalog.session() as session:
        revoke_api_key(session, str(principal.key_id), actor=principal.actor)
    return True


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, web: WebSession) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over HTTPS, gone when the session is."""
    response.set_cookie(
        COOKIE,
        web.session_id,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    """Tell the browser to forget its session."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))


# -- dependencies --------------------------------------------------------------------------------


def signed_in(request: Request) -> Principal:
    """The principal of the request's session cookie (the page redirects to the login form otherwise)."""
    session_id = request.cookies.get(COOKIE, "")
    key = token_key_of(request)
    principal = session_principal(catalog_of(request), session_id, key=key)
    request.state.principal = principal
    request.state.session_id = session_id
    request.state.csrf_token = csrf.session_token(session_id, key)
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]


def staff(principal: SignedIn) -> Principal:
    """A signed-in member of the operations center (403 page for anyone else)."""
    if not principal.is_staff:
        raise ForbiddenError("the console is for the operations center's staff")
    return principal


async def staff_with_csrf(
    request: Request, principal: Annotated[Principal, Depends(staff)]
) -> Principal:
    """Staff sending a state-changing request that carries the session's CSRF token."""
    csrf.check(request.state.csrf_token, await csrf.submitted_token(request))
    return principal


Staff = Annotated[Principal, Depends(staff)]
StaffAction = Annotated[Principal, Depends(staff_with_csrf)]


# -- routes --------------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME
    return target


def login_url(request: Request) -> str:
    """The login form, returning to the page asked for."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(target, safe="")


def _login_page(
    request: Request, *, error: str = "", email: str = "", next_url: str = HOME, status: int = 200
) -> Response:
    nonce = request.cookies.get(csrf.LOGIN_COOKIE) or csrf.new_login_nonce()
    response = render(
        request,
        "login.html",
        {
            "error": error,
            "email": email,
            "next_url": safe_next(next_url),
            "login_token": csrf.login_token(nonce, token_key_of(request)),
        },
        status=status,
    )
    response.set_cookie(
        csrf.LOGIN_COOKIE,
        nonce,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login")
def get_login(request: Request, next: str | None = None) -> Response:
    """The login form."""
    return _login_page(request, next_url=safe_next(next))


@router.post("/login")
def post_login(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = HOME,
) -> Response:
    """Sign in: a new session cookie and a redirect to where the user was going."""
    key = token_key_of(request)
    nonce = request.cookies.get(csrf.LOGIN_COOKIE, "")
    csrf.check(csrf.login_token(nonce, key) if nonce else "", csrf_token)
    try:
        web = open_session(
            catalog_of(request),
            email,
            password,
            key=key,
            replaces=request.cookies.get(COOKIE) or None,
        )
    except (LoginFailedError, LoginLockedError) as exc:
        status = exc.http_status
        return _login_page(request, error=str(exc), email=email, next_url=next, status=status)
    target = safe_next(next)
    if target == HOME:
        target = home_of(web.principal.role)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, web)
    response.delete_cookie(csrf.LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def post_logout(request: Request, principal: SignedIn) -> Response:
    """Sign out: the session is revoked, not just forgotten by the browser."""
    csrf.check(request.state.csrf_token, await csrf.submitted_token(request))
    await run_in_threadpool(
        close_session, catalog_of(request), request.state.session_id, key=token_key_of(request)
    )
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, request)
    return response
