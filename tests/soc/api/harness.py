"""A SOC API app on a real catalog (SQLite or PostgreSQL), with users and keys of each role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from vaultwatch.catalog import Catalog, Role
from vaultwatch.catalog.tenants import create_tenant
from vaultwatch.catalog.users import create_user
from vaultwatch.server import build_app, init_server
from vaultwatch.soc.apikeys import create_api_key

PASSWORD = "correct horse battery"
ACTOR = "system:test"


@dataclass
class SocApi:
    """A test client of the web role's API and keys for its principals."""

    client: TestClient
    catalog: Catalog
    token_key: bytes
    admin_email: str
    admin_password: str
    operator_key: str
    technician_key: str
    customer_key: str
    other_customer_key: str
    tenant_id: uuid.UUID
    other_tenant_id: uuid.UUID

    def as_(self, key: str) -> dict[str, str]:
        """The header that makes a request act as `key`'s user."""
        return {"Authorization": f"Bearer {key}"}


def add_user_with_key(
    catalog: Catalog, token_key: bytes, email: str, role: Role, tenant_id: uuid.UUID | None = None
) -> str:
    """A user of `role` and an API key acting as it (plaintext)."""
    with catalog.session() as session:
        user = create_user(
            session,
            email=email,
            display_name=email,
            role=role,
            password=PASSWORD,
            actor=ACTOR,
            tenant_id=tenant_id,
        )
        return create_api_key(session, user, "test", key=token_key, actor=ACTOR).plaintext


@contextmanager
def soc_api(tmp_path: Path, catalog_url: URL | None = None) -> Iterator[SocApi]:
    """A data directory (its catalog on `catalog_url` or SQLite) and the web role's app over it."""
    url = catalog_url.render_as_string(hide_password=False) if catalog_url is not None else None
    result = init_server(tmp_path / "data", catalog_url=url)
    settings = result.settings
    catalog = Catalog(settings.catalog_url)
    key = settings.token_key()
    with catalog.session() as session:
        acme = create_tenant(session, "Acme", actor=ACTOR).id
        globex = create_tenant(session, "Globex", actor=ACTOR).id
    api = SocApi(
        client=TestClient(build_app(settings, ("web",), catalog=catalog)),
        catalog=catalog,
        token_key=key,
        admin_email=result.admin_email or "",
        admin_password=result.admin_password or "",
        operator_key=add_user_with_key(catalog, key, "op@soc.example", Role.SOC_OPERATOR),
        technician_key=add_user_with_key(catalog, key, "tech@dc.example", Role.DC_TECHNICIAN),
        customer_key=add_user_with_key(
            catalog, key, "admin@acme.example", Role.CUSTOMER_ADMIN, acme
        ),
        other_customer_key=add_user_with_key(
            catalog, key, "admin@globex.example", Role.CUSTOMER_ADMIN, globex
        ),
        tenant_id=acme,
        other_tenant_id=globex,
    )
    try:
        with api.client:
            yield api
    finally:
        catalog.dispose()
