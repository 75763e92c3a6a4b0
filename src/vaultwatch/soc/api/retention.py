"""Retention over HTTP for operators: parse, authorize, call `vaultwatch.retention`.

A dry run is open to every operations-center role; changing policies and
running retention for real needs a SOC supervisor or an administrator.
A run works in the request (a worker thread): on a large fleet, name the
tenant, or leave it to the scheduled duty.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from vaultwatch.catalog.models import BackupSet, Role
from vaultwatch.engine.errors import PolicyError
from vaultwatch.retention.policy import RetentionError, set_operator_retention, set_policy
from vaultwatch.retention.run import RunOptions, run_retention
from vaultwatch.soc.api.auth import CatalogDep, Staff

router = APIRouter(tags=["retention"])

_DECIDERS = (Role.SOC_SUPERVISOR, Role.ADMINISTRATOR)


class RetentionRunIn(BaseModel):
    """Which vaults to run on; `dry_run` (the default) changes nothing."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: uuid.UUID | None = None
    backup_set: str | None = Field(default=None, min_length=1, max_length=200)
    dry_run: bool = True


class PolicyIn(BaseModel):
    """An operator policy for a backup set; `policy: null` goes back to the default."""

    model_config = ConfigDict(extra="forbid")

    policy: dict[str, Any] | None = Field(
        description='keep rules: {"within": "2d", "last": 10, "hourly": 48, "daily": 30, '
        '"weekly": 12, "monthly": 24, "yearly": 5} (-1: unlimited)'
    )


class PolicyOut(BaseModel):
    """The policy a backup set is judged by."""

    backup_set_id: uuid.UUID
    backup_set: str
    floor: dict[str, Any]
    source: str
    requested: dict[str, Any] | None
    describe: str

    @classmethod
    def of(cls, row: BackupSet) -> PolicyOut:
        """The API form of a set's policy."""
        policy = set_policy(row)
        doc = policy.to_dict()
        return cls(
            backup_set_id=row.id,
            backup_set=row.name,
            floor=doc["floor"],
            source=doc["source"],
            requested=doc["requested"],
            describe=policy.describe(),
        )


@router.post("/retention/runs")
def run(body: RetentionRunIn, principal: Staff, catalog: CatalogDep) -> dict[str, Any]:
    """Run retention now (or show what it would do): per vault, sets, snapshots, data."""
    if not body.dry_run:
        principal.require(*_DECIDERS)
    options = RunOptions(
        tenant_id=body.tenant_id,
        backup_set=body.backup_set,
        dry_run=body.dry_run,
        actor=principal.actor,
    )
    return run_retention(catalog.session, options).to_dict()


SetId = Annotated[uuid.UUID, Path(description="The backup set's id")]


def _backup_set(session: Session, set_id: uuid.UUID) -> BackupSet:
    row = session.get(BackupSet, set_id)
    if row is None:
        raise RetentionError(f"no backup set {set_id}")
    return row


@router.get("/backup-sets/{set_id}/retention")
def get_policy(set_id: SetId, principal: Staff, catalog: CatalogDep) -> PolicyOut:
    """The set's policy: the floor (operator's or default) and what its agent adds."""
    with catalog.session() as session:
        return PolicyOut.of(_backup_set(session, set_id))


@router.put("/backup-sets/{set_id}/retention")
def put_policy(set_id: SetId, body: PolicyIn, principal: Staff, catalog: CatalogDep) -> PolicyOut:
    """Set (or, with null, clear) the operator policy of one backup set."""
    principal.require(*_DECIDERS)
    with catalog.session() as session:
        row = _backup_set(session, set_id)
        try:
            set_operator_retention(session, [row], body.policy, actor=principal.actor)
        except PolicyError as exc:
            raise PolicyRefusedError(str(exc)) from None
        session.refresh(row)
        return PolicyOut.of(row)


class PolicyRefusedError(RetentionError):
    """The policy does not parse, or would keep nothing."""

    http_status = 422
