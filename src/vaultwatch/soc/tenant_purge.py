"""The purge duty: a deleted tenant's data goes once its grace period is over.

In three steps, each safe to repeat: mark the purge as begun (from then on
the tenant cannot be undeleted), empty its vaults (primary and secondary),
then remove its catalog records. A node that dies half-way leaves records
behind, so the next run finds the tenant again and finishes the job.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from vaultwatch.catalog import audit
from vaultwatch.catalog.tenant_lifecycle import (
    begin_tenant_purge,
    purge_tenant_records,
    tenants_due_for_purge,
)
from vaultwatch.soc.duties import DutyContext
from vaultwatch.store.errors import ObjectNotFoundError, RepositoryNotFoundError
from vaultwatch.store.url import open_store

log = logging.getLogger("vaultwatch.soc.tenant_purge")
PURGE_ACTOR = audit.system_actor("tenants.purge")


@dataclass(frozen=True)
class PurgedTenant:
    """What one purge removed."""

    tenant_id: uuid.UUID
    objects_deleted: int
    records: dict[str, int]


def empty_vault(location: str) -> int:
    """Delete every object of the store at `location`; returns how many (0 if it is gone)."""
    store = open_store(location)
    deleted = 0
    try:
        try:
            names = [obj.name for obj in store.list()]
        except RepositoryNotFoundError:
            return 0
        for name in names:
            try:
                store.delete(name)
            except ObjectNotFoundError:
                continue
            deleted += 1
    finally:
        store.close()
    return deleted


def purge_due_tenants(context: DutyContext) -> list[PurgedTenant]:
    """Purge every deleted tenant whose grace period is over (see the module's steps)."""
    with context.session() as session:
        due = [t.id for t in tenants_due_for_purge(session, context.now(session))]
    purged: list[PurgedTenant] = []
    for tenant_id in due:
        with context.session() as session:
            locations = begin_tenant_purge(
                session, tenant_id, actor=PURGE_ACTOR, now=context.now(session)
            )
        deleted = sum(empty_vault(location) for location in locations)
        with context.session() as session:
            records = purge_tenant_records(
                session, tenant_id, actor=PURGE_ACTOR, now=context.now(session)
            )
        log.info("purged deleted tenant %s: %d vault objects", tenant_id, deleted)
        purged.append(PurgedTenant(tenant_id, deleted, records))
    return purged
