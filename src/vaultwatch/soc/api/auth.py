"""Who is calling the SOC and portal API: API keys as bearer tokens, turned into a Principal.

`Caller` is any valid key; `Staff` is a key of the operations center's roles.
`scoped_session` opens a transaction that a customer's key confines to its
tenant, so every query in a handler is tenant-scoped by construction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vaultwatch.catalog import Catalog, CatalogSession
from vaultwatch.soc.apikeys import (
    ForbiddenError,
    InvalidApiKeyError,
    Principal,
    authenticate_api_key,
    is_api_key_shaped,
)

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (vwk_...) made with `vaultwatch admin apikey create` or by logging in.",
)


def catalog_of(request: Request) -> Catalog:
    """The app's catalog."""
    catalog: Catalog = request.app.state.catalog
    return catalog


def token_key_of(request: Request) -> bytes:
    """The server secret that keys token digests, read once per process."""
    key: bytes | None = getattr(request.app.state, "token_key", None)
    if key is None:
        key = request.app.state.settings.token_key()
        request.app.state.token_key = key
    return key


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from its bearer API key (401 problem otherwise)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidApiKeyError("an API key is required: Authorization: Bearer vwk_…")
    if not is_api_key_shaped(credentials.credentials):
        raise InvalidApiKeyError("invalid API key")
    with catalog_of(request).session() as session:
        return authenticate_api_key(session, credentials.credentials, key=token_key_of(request))


Caller = Annotated[Principal, Depends(current_principal)]


def staff_principal(principal: Caller) -> Principal:
    """The caller, who must work in the operations center (403 otherwise)."""
    if not principal.is_staff:
        raise ForbiddenError("this needs an operations center role")
    return principal


Staff = Annotated[Principal, Depends(staff_principal)]
CatalogDep = Annotated[Catalog, Depends(catalog_of)]


@contextmanager
def scoped_session(catalog: Catalog, principal: Principal) -> Iterator[CatalogSession]:
    """A transaction that sees only the principal's tenant, unless the principal is staff."""
    tenant = None if principal.is_staff else principal.tenant_id
    if not principal.is_staff and tenant is None:
        raise ForbiddenError("this key belongs to no tenant and no operations center role")
    with catalog.session(tenant_id=tenant) as session:
        yield session
