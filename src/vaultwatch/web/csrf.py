"""CSRF protection for the web pages: every form POST and state-changing fetch carries a token.

A signed-in page's token is an HMAC of the session id under the server's
token key, so it needs no storage, dies with the session, and cannot be
made by another site (which sees neither the HttpOnly cookie nor the key).
The login form, before any session exists, uses a double-submit nonce: a
random value in a SameSite=Strict cookie whose HMAC the form must echo.
Tokens arrive as the ``csrf_token`` form field or the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

from vaultwatch.errors import VaultwatchError

FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
LOGIN_COOKIE = "vw_login_csrf"


class CsrfError(VaultwatchError):
    """The request carries no valid CSRF token: it may come from another site."""

    http_status = 403


def _mac(key: bytes, purpose: bytes, value: str) -> str:
    return hmac.new(
        key, b"vaultwatch-csrf:" + purpose + b":" + value.encode(), hashlib.sha256
    ).hexdigest()


def session_token(session_id: str, key: bytes) -> str:
    """The CSRF token of a signed-in session."""
    return _mac(key, b"session", session_id)


def new_login_nonce() -> str:
    """A fresh random value for the login form's cookie."""
    return secrets.token_urlsafe(32)


def login_token(nonce: str, key: bytes) -> str:
    """The token the login form echoes for its cookie's nonce."""
    return _mac(key, b"login", nonce)


async def submitted_token(request: Request) -> str:
    """The token a request carries: its header, or its form's field."""
    header = request.headers.get(HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(FORM_FIELD)
        if isinstance(value, str):
            return value
    return ""


def check(expected: str, submitted: str) -> None:
    """Refuse (403) unless `submitted` is `expected`; compared in constant time."""
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfError(
            "this form has expired or did not come from this site: reload the page and try again"
        )
