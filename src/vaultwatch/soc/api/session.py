"""Logging in with a password: a short-lived API key for the CLI and the console."""

from __future__ import annotations

from fastapi import APIRouter, Request

from vaultwatch.soc.api.auth import CatalogDep, token_key_of
from vaultwatch.soc.api.schemas import LoginIn, LoginOut
from vaultwatch.soc.apikeys import login

router = APIRouter(tags=["auth"])


@router.post("/auth/login", response_model=LoginOut, summary="Log in with email and password")
def post_login(body: LoginIn, request: Request, catalog: CatalogDep) -> LoginOut:
    """A key valid for 12 hours; a wrong email or password is one 401 either way."""
    issued = login(catalog, body.email, body.password, key=token_key_of(request))
    return LoginOut(api_key=issued.plaintext, expires_at=issued.expires_at)
