"""Each tenant's vault: where its repository lives, recorded once in the catalog.

The location is fixed when the vault is first provisioned and read back from
the catalog afterwards, so changing the server's default vault storage later
never moves (or loses track of) an existing tenant's data.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vaultwatch.catalog import audit
from vaultwatch.catalog.models import Repository
from vaultwatch.catalog.tenants import get_tenant

VAULT_NAME = "vault"
"""The name of a tenant's primary repository (one per tenant)."""


def get_tenant_vault(session: Session, tenant_id: uuid.UUID) -> Repository | None:
    """The tenant's vault row, if it was provisioned."""
    return session.execute(
        select(Repository).where(Repository.tenant_id == tenant_id, Repository.name == VAULT_NAME)
    ).scalar_one_or_none()


def register_tenant_vault(
    session: Session, tenant_id: uuid.UUID, location: str, *, actor: str
) -> Repository:
    """Record the tenant's vault at ``location`` (or return the one already recorded).

    Two gateways provisioning the same tenant at once both end with the same
    row: the unique constraint decides, the loser reads the winner's.
    """
    existing = get_tenant_vault(session, tenant_id)
    if existing is not None:
        return existing
    get_tenant(session, tenant_id)
    vault = Repository(
        id=uuid.uuid4(), tenant_id=tenant_id, name=VAULT_NAME, primary_location=location
    )
    try:
        with session.begin_nested():
            session.add(vault)
            session.flush()
    except IntegrityError:
        existing = get_tenant_vault(session, tenant_id)
        if existing is None:
            raise
        return existing
    audit.record(
        session,
        actor,
        "vault.create",
        tenant_id,
        target=f"repository:{vault.id}",
        details={"location": location},
    )
    return vault


def record_vault_id(session: Session, tenant_id: uuid.UUID, vault_id: str) -> bool:
    """Remember the id the tenant's repository gave itself (from its ``config``), once.

    Returns whether it was recorded now. A later, different id is ignored:
    the first repository initialised in the vault is the one the catalog
    describes, and a rebuilt catalog matches vaults by this id.
    """
    vault = get_tenant_vault(session, tenant_id)
    if vault is None or vault.vault_id is not None:
        return False
    vault.vault_id = vault_id[:64]
    session.flush()
    return True
