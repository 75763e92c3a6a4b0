"""Leases: named duties that exactly one node runs at a time.

A node holds a lease until `expires_at` and keeps it by renewing well before
then (a third of the TTL is a good rhythm). When it dies, the lease expires and
a standby takes it over. Every change is one conditional statement, so the
database decides races: on PostgreSQL the row lock makes a concurrent UPDATE
re-check its WHERE clause after the winner commits; on SQLite writers are
serialized. The first acquisition inserts with ON CONFLICT DO NOTHING, so two
nodes creating the same lease at once cannot both win.

Expiry is judged by the database's clock by default, so nodes with skewed
clocks still agree; tests and simulations pass `now` instead.

A holder must stop the duty when renewal fails: by then another node may own
it. `epoch` increases at every change of holder and can fence late writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import Lease

MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class LeaseInfo:
    """A lease as it stands in the catalog."""

    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime
    epoch: int

    def is_held(self, now: datetime) -> bool:
        """True while the lease has not expired."""
        return self.expires_at > now


def _check(name: str, holder: str, ttl: timedelta | None = None) -> None:
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValidationError(f"lease name must be 1 to {MAX_NAME_LENGTH} characters")
    if not holder or len(holder) > MAX_NAME_LENGTH:
        raise ValidationError(f"lease holder must be 1 to {MAX_NAME_LENGTH} characters")
    if ttl is not None and ttl <= timedelta(0):
        raise ValidationError("lease TTL must be positive")


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return result.rowcount


def acquire_lease(
    session: Session,
    name: str,
    holder: str,
    ttl: timedelta,
    *,
    now: datetime | None = None,
) -> bool:
    """Take or keep the lease `name` for `ttl`; True if `holder` now holds it.

    Succeeds when the lease is free, expired, or already held by `holder`
    (then it is extended, like `renew_lease`). Commit the session for the
    lease to count; until then other nodes cannot see it.
    """
    _check(name, holder, ttl)
    now = now or database_now(session)
    expires_at = now + ttl
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name)
        .where((Lease.expires_at <= now) | (Lease.holder == holder))
        .values(
            holder=holder,
            expires_at=expires_at,
            acquired_at=case((Lease.holder == holder, Lease.acquired_at), else_=now),
            epoch=case((Lease.holder == holder, Lease.epoch), else_=Lease.epoch + 1),
        )
        .execution_options(synchronize_session=False)
    )
    if _rowcount(taken) == 1:
        return True
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    created = session.execute(
        insert(Lease)
        .values(name=name, holder=holder, acquired_at=now, expires_at=expires_at, epoch=1)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(Lease.name)
    )
    return created.first() is not None


def renew_lease(
    session: Session,
    name: str,
    holder: str,
    ttl: timedelta,
    *,
    now: datetime | None = None,
) -> bool:
    """Extend a lease `holder` still holds; False if it expired or someone else has it.

    Unlike `acquire_lease`, an expired lease is not revived: once it has
    expired another node may have started the duty, so the holder must stop
    and acquire again.
    """
    _check(name, holder, ttl)
    now = now or database_now(session)
    result = session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder, Lease.expires_at > now)
        .values(expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def release_lease(session: Session, name: str, holder: str, *, now: datetime | None = None) -> bool:
    """Give up a lease at once (clean shutdown), so a standby need not wait for expiry.

    Returns False when `holder` did not hold it. The row stays, keeping the epoch.
    """
    _check(name, holder)
    now = now or database_now(session)
    result = session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder, Lease.expires_at > now)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def get_lease(session: Session, name: str) -> LeaseInfo | None:
    """The lease row, held or expired, or None if it was never taken."""
    row = session.execute(
        select(Lease.name, Lease.holder, Lease.acquired_at, Lease.expires_at, Lease.epoch).where(
            Lease.name == name
        )
    ).one_or_none()
    if row is None:
        return None
    return LeaseInfo(
        name=row.name,
        holder=row.holder,
        acquired_at=row.acquired_at,
        expires_at=row.expires_at,
        epoch=row.epoch,
    )


def current_holder(session: Session, name: str, *, now: datetime | None = None) -> str | None:
    """Who holds the lease right now, or None if nobody does."""
    lease = get_lease(session, name)
    if lease is None:
        return None
    return lease.holder if lease.is_held(now or database_now(session)) else None
