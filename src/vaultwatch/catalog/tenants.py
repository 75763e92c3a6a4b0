"""Tenants: the customers of the service.

Names are unique ignoring case and spacing ("ACME  Corp" is "Acme Corp"),
because two customers that differ only in capitals would be mixed up on the
phone and in the console. The display form keeps the spelling that was given.
"""

from __future__ import annotations

import unicodedata
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vaultwatch.catalog import audit
from vaultwatch.catalog.errors import TenantExistsError, TenantNotFoundError, ValidationError
from vaultwatch.catalog.models import Tenant

MAX_TENANT_NAME_LENGTH = 200


def normalize_tenant_name(name: str) -> tuple[str, str]:
    """`(display, key)`: the name with spacing collapsed, and its case-folded unique key.

    Refuses empty names, names that are too long, and control characters
    (they would corrupt logs, emails and CSV exports).
    """
    display = " ".join(name.split())
    if not display:
        raise ValidationError("tenant name must not be empty")
    if len(display) > MAX_TENANT_NAME_LENGTH:
        raise ValidationError(f"tenant name must be at most {MAX_TENANT_NAME_LENGTH} characters")
    if any(unicodedata.category(char).startswith("C") for char in display):
        raise ValidationError("tenant name must not contain control characters")
    key = unicodedata.normalize("NFKC", display).casefold()
    return display, key


def create_tenant(
    session: Session, name: str, *, actor: str, escrow_allowed: bool = False
) -> Tenant:
    """Create a tenant and audit it; `TenantExistsError` if the name is taken.

    The unique constraint, not the look-up before it, is what decides when
    two requests create the same name at once.
    """
    display, key = normalize_tenant_name(name)
    existing = session.execute(select(Tenant).where(Tenant.name_key == key)).scalar_one_or_none()
    if existing is not None:
        raise TenantExistsError(f"a tenant named {existing.name!r} already exists")
    tenant = Tenant(id=uuid.uuid4(), name=display, name_key=key, escrow_allowed=escrow_allowed)
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as exc:
        if "name_key" in str(exc.orig):
            raise TenantExistsError(f"a tenant named {display!r} already exists") from exc
        raise
    audit.record(
        session,
        actor,
        "tenant.create",
        tenant.id,
        target=f"tenant:{tenant.id}",
        details={"name": display, "escrow_allowed": escrow_allowed},
    )
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    """Every tenant the session may see, by name (a tenant-scoped session sees its own)."""
    return list(session.execute(select(Tenant).order_by(Tenant.name_key)).scalars())


def get_tenant(session: Session, tenant_id: uuid.UUID) -> Tenant:
    """The tenant with this id, or `TenantNotFoundError`."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantNotFoundError(f"no tenant with id {tenant_id}")
    return tenant


def find_tenant(session: Session, name: str) -> Tenant | None:
    """The tenant with this name (ignoring case and spacing), if any."""
    _, key = normalize_tenant_name(name)
    return session.execute(select(Tenant).where(Tenant.name_key == key)).scalar_one_or_none()
