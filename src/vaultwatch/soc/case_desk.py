"""The case queue as staff work it: owners, the queue with tenant names, one case whole.

The life of a case (escalate, assign, notes, outside tickets, resolve,
close) is in `vaultwatch.soc.cases`; this gathers what the staff pages show.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vaultwatch.catalog.models import Tenant
from vaultwatch.catalog.soc_models import CaseEntry, CaseState, SupportCase
from vaultwatch.soc import cases

MAX_OWNER = 200
MAX_QUEUE = 200


@dataclass(frozen=True)
class CaseView:
    """A case, its tenant's name and its whole history (internal notes included)."""

    case: SupportCase
    tenant_name: str
    history: list[CaseEntry]


def tenant_names(session: Session, tenant_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Tenant names by id, for lists that show many tenants' rows."""
    if not tenant_ids:
        return {}
    return dict(
        session.execute(select(Tenant.id, Tenant.name).where(Tenant.id.in_(tenant_ids))).all()
    )


def case_queue(
    session: Session, *, state: CaseState | None = None, owner_team: str | None = None
) -> tuple[list[SupportCase], dict[uuid.UUID, str]]:
    """The queue (newest first) and the names of the tenants in it."""
    rows = cases.list_cases(session, state=state, owner_team=owner_team, limit=MAX_QUEUE)
    return rows, tenant_names(session, {c.tenant_id for c in rows})


def case_view(session: Session, case_id: int) -> CaseView:
    """One case's page (404 for an unknown case)."""
    case = cases.get_case(session, case_id)
    names = tenant_names(session, {case.tenant_id})
    return CaseView(
        case, names.get(case.tenant_id, str(case.tenant_id)), cases.history(session, case.id)
    )
