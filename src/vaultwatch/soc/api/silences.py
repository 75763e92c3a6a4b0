"""Silences and maintenance windows over HTTP: parse, authorize (staff), call `vaultwatch.soc.silences`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.soc_models import Silence
from vaultwatch.soc import silences
from vaultwatch.soc.api.auth import CatalogDep, Staff, scoped_session

router = APIRouter(tags=["silences"])


class MatcherIn(BaseModel):
    """One condition on an alarm field."""

    model_config = ConfigDict(extra="forbid")

    field: Literal[
        "node",
        "entity",
        "alert_group",
        "alert_key",
        "tenant_id",
        "severity",
        "alarm_class",
        "source",
    ]
    op: Literal["=", "!=", "=~"] = "="
    value: str = Field(max_length=silences.MAX_VALUE)


class SilenceIn(BaseModel):
    """A one-off silence: mute matching alarms from `starts_at` (default now) to `ends_at`."""

    model_config = ConfigDict(extra="forbid")

    matchers: list[MatcherIn] = Field(min_length=1, max_length=silences.MAX_MATCHERS)
    comment: str = Field(min_length=1, max_length=silences.MAX_COMMENT)
    starts_at: datetime | None = None
    ends_at: datetime
    tenant_id: uuid.UUID | None = None


class MaintenanceIn(SilenceIn):
    """A maintenance window: one-off, or recurring (cron, UTC) for `duration_seconds` each time."""

    recurrence: str | None = Field(default=None, max_length=100)
    duration_seconds: int | None = Field(default=None, ge=60, le=86400)


class SilenceOut(BaseModel):
    """A silence or maintenance window and its state now."""

    id: int
    kind: str
    state: str
    tenant_id: uuid.UUID | None
    matchers: list[dict[str, str]]
    comment: str
    created_by: str
    created_at: datetime
    starts_at: datetime
    ends_at: datetime
    recurrence: str | None
    duration_seconds: int | None
    reminded_at: datetime | None
    cancelled_at: datetime | None
    muted_alarms: int

    @classmethod
    def of(cls, silence: Silence, now: datetime, muted: int) -> SilenceOut:
        """The API form of a silence row."""
        return cls(
            id=silence.id,
            kind=silence.kind,
            state=silences.state_of(silence, now),
            tenant_id=silence.tenant_id,
            matchers=list(silence.matchers),
            comment=silence.comment,
            created_by=silence.created_by,
            created_at=silence.created_at,
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
            recurrence=silence.recurrence,
            duration_seconds=silence.duration_seconds,
            reminded_at=silence.reminded_at,
            cancelled_at=silence.cancelled_at,
            muted_alarms=muted,
        )


def _create(body: SilenceIn, kind: str, principal: Staff, catalog: CatalogDep) -> SilenceOut:
    recurrence = body.recurrence if isinstance(body, MaintenanceIn) else None
    duration = body.duration_seconds if isinstance(body, MaintenanceIn) else None
    with scoped_session(catalog, principal) as session:
        now = database_now(session)
        silence = silences.create_silence(
            session,
            actor=principal.actor,
            comment=body.comment,
            matchers=[m.model_dump() for m in body.matchers],
            starts_at=body.starts_at or now,
            ends_at=body.ends_at,
            kind=kind,
            recurrence=recurrence,
            duration_seconds=duration,
            tenant_id=body.tenant_id,
            now=now,
        )
        return SilenceOut.of(silence, now, silences.muted_count(session, silence.id))


@router.post("/silences", response_model=SilenceOut, status_code=201, summary="Create a silence")
def create_silence(body: SilenceIn, principal: Staff, catalog: CatalogDep) -> SilenceOut:
    """Mute matching alarms (open ones at once, new ones as they arrive) until `ends_at`."""
    return _create(body, "silence", principal, catalog)


@router.post(
    "/maintenance-windows",
    response_model=SilenceOut,
    status_code=201,
    summary="Create a maintenance window",
)
def create_window(body: MaintenanceIn, principal: Staff, catalog: CatalogDep) -> SilenceOut:
    """A one-off window, or a recurring one (`recurrence` cron in UTC + `duration_seconds`)."""
    return _create(body, "maintenance", principal, catalog)


@router.get("/silences", response_model=list[SilenceOut], summary="Silences and windows")
def list_silences(
    principal: Staff,
    catalog: CatalogDep,
    include_ended: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[SilenceOut]:
    """Silences and maintenance windows, newest first (ended ones with `include_ended`)."""
    with scoped_session(catalog, principal) as session:
        now = database_now(session)
        rows = silences.list_silences(
            session, now=now, include_ended=include_ended, limit=limit, offset=offset
        )
        return [SilenceOut.of(s, now, silences.muted_count(session, s.id)) for s in rows]


@router.get("/silences/{silence_id}", response_model=SilenceOut, summary="One silence")
def get_silence(silence_id: int, principal: Staff, catalog: CatalogDep) -> SilenceOut:
    """A silence or maintenance window and how many open alarms it mutes."""
    with scoped_session(catalog, principal) as session:
        now = database_now(session)
        silence = silences.get_silence(session, silence_id)
        return SilenceOut.of(silence, now, silences.muted_count(session, silence_id))


@router.delete("/silences/{silence_id}", response_model=SilenceOut, summary="Cancel a silence")
def cancel_silence(silence_id: int, principal: Staff, catalog: CatalogDep) -> SilenceOut:
    """End a silence or window now; the alarms it muted page again unless another mutes them."""
    with scoped_session(catalog, principal) as session:
        now = database_now(session)
        silence = silences.cancel_silence(session, silence_id, principal.actor, now=now)
        return SilenceOut.of(silence, now, silences.muted_count(session, silence_id))
