"""The duty runner: the work that must run once in the cluster, under a catalog lease.

Every server node runs a `DutyRunner`. One of them holds the lease (named
`DEFAULT_LEASE`) and runs the leased duties (monitors, probes, timers); the
others are standbys that try to take the lease whenever it is free or has
expired. Duties that are not leased (a node reporting its own health) run on
every node.

Two threads keep apart what must not wait on each other: the lease thread
renews every third of the TTL whatever the duties are doing, and the duty
thread runs each duty at its own interval. A failed renewal stops the duties
at once; the lease thread then tries again as a standby. A clean stop
releases the lease so a standby takes over without waiting for expiry.

A holder can be paused (a long garbage collection, a frozen VM) past its
lease and wake up still believing it holds it. So every transaction a
leased duty commits is fenced: `DutyContext.session` checks, in that very
transaction and just before it commits, that the lease still has this
holder, its epoch and time left (`fenced`). On PostgreSQL the lease row is
locked (SELECT ... FOR UPDATE), so a takeover waits for the commit; on
SQLite the writer lock already serializes the check with any takeover.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.db import CatalogSession, database_now
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.leases import acquire_lease, get_lease, release_lease, renew_lease
from vaultwatch.catalog.models import Lease
from vaultwatch.catalog.soc_models import AlarmClass, EventSource, EventType, Severity
from vaultwatch.soc.clock import Clock, SystemClock
from vaultwatch.soc.events import Event
from vaultwatch.soc.pipeline import process_events

log = logging.getLogger("vaultwatch.soc.duties")

DEFAULT_LEASE = "soc-duties"
DEFAULT_TTL = timedelta(seconds=30)
DUTY_FAILED = "duty.failed"

#: How often a standby asks for a lease held by another node.
STANDBY_POLL_SECONDS = 1.0

#: The duty thread sleeps at most this long, so a stop or a newly won lease is seen soon.
MAX_IDLE_SECONDS = 1.0


class LeaseLostError(CatalogError):
    """The lease changed hands (or expired): this node may no longer write for its duties."""

    http_status = 409


def fenced(
    session: Session,
    lease_name: str,
    holder: str,
    epoch: int,
    *,
    now: datetime | None = None,
) -> None:
    """Refuse the transaction unless `holder` still holds `lease_name` at `epoch`.

    Call it inside the duty's transaction after its writes and right before
    the commit; LeaseLostError rolls the whole transaction back.
    """
    row = session.execute(
        select(Lease.holder, Lease.epoch, Lease.expires_at)
        .where(Lease.name == lease_name)
        .with_for_update()
    ).one_or_none()
    now = now or database_now(session)
    if row is None or row.holder != holder or row.epoch != epoch:
        raise LeaseLostError(f"lease {lease_name!r} is no longer held by {holder} (epoch {epoch})")
    if row.expires_at <= now:
        raise LeaseLostError(f"lease {lease_name!r} of {holder} expired at {row.expires_at}")


@dataclass(frozen=True)
class DutyContext:
    """What a duty gets for one run: the catalog, and fenced transactions when leased."""

    catalog: Catalog
    node_name: str
    holder: str
    lease_name: str
    epoch: int | None
    """The lease epoch this run was started under; None for a duty every node runs."""
    clock_now: datetime | None = None
    """The instant of a test clock; None means "the database's clock"."""

    @contextmanager
    def session(self) -> Iterator[CatalogSession]:
        """A transaction that commits only if this node still holds the lease."""
        with self.catalog.session() as session:
            yield session
            if self.epoch is not None:
                fenced(session, self.lease_name, self.holder, self.epoch, now=self.clock_now)

    def now(self, session: Session) -> datetime:
        """The instant monitors judge by: the test clock's, else the database's."""
        return self.clock_now or database_now(session)


DutyFunction = Callable[[DutyContext], object]


@dataclass(frozen=True)
class Duty:
    """A named piece of work run every `interval` seconds."""

    name: str
    interval: float
    run: DutyFunction
    leased: bool = True
    """True: runs on the lease holder only. False: every node runs it (about itself)."""

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 100:
            raise ValidationError("a duty name must be 1 to 100 characters")
        if self.interval <= 0:
            raise ValidationError(f"duty {self.name}: the interval must be positive")


@dataclass
class _Schedule:
    duty: Duty
    due: float = 0.0
    failed: bool | None = None
    """Whether the last run failed; None while unknown (first run, or after a takeover)."""
    runs: int = field(default=0)


def default_holder(node_name: str | None = None) -> str:
    """A holder name unique to this process: node, process id and a random suffix."""
    node = node_name or socket.gethostname()
    return f"{node}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]


class DutyRunner:
    """Runs `duties` while holding the lease (or always, for unleased ones).

    Use `start()` and `stop()` for the background threads; `tick()` does one
    round by hand (tests with a ManualClock).
    """

    def __init__(
        self,
        catalog: Catalog,
        duties: list[Duty],
        *,
        node_name: str | None = None,
        holder: str | None = None,
        lease_name: str = DEFAULT_LEASE,
        ttl: timedelta = DEFAULT_TTL,
        clock: Clock | None = None,
    ) -> None:
        names = [d.name for d in duties]
        if len(set(names)) != len(names):
            raise ValidationError("duty names must be unique")
        if ttl <= timedelta(0):
            raise ValidationError("the lease TTL must be positive")
        self.catalog = catalog
        self.node_name = node_name or socket.gethostname()
        self.holder = holder or default_holder(self.node_name)
        self.lease_name = lease_name
        self.ttl = ttl
        self._test_clock = clock
        self._clock: Clock = clock or SystemClock()
        self._schedules = [_Schedule(d) for d in duties]
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._held_until = 0.0  # monotonic: past this the duties stop even without news
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- state ---------------------------------------------------------------------------------

    @property
    def epoch(self) -> int | None:
        """The epoch of the lease while this runner holds it, else None."""
        with self._lock:
            if self._epoch is not None and self._clock.monotonic() < self._held_until:
                return self._epoch
            return None

    @property
    def is_leader(self) -> bool:
        """True while this runner holds the lease."""
        return self.epoch is not None

    def runs(self, duty_name: str) -> int:
        """How many times this runner has run `duty_name` (for status pages and tests)."""
        for schedule in self._schedules:
            if schedule.duty.name == duty_name:
                return schedule.runs
        raise KeyError(duty_name)

    def _lost(self, reason: str) -> None:
        with self._lock:
            had = self._epoch
            self._epoch = None
        if had is not None:
            log.warning("lost lease %s (epoch %d): %s", self.lease_name, had, reason)

    def _now(self) -> datetime | None:
        return self._test_clock.now() if self._test_clock is not None else None

    # -- the lease -----------------------------------------------------------------------------

    def maintain_lease(self) -> float:
        """Renew the lease if held, else try to take it; returns seconds until the next try."""
        third = self.ttl.total_seconds() / 3
        started = self._clock.monotonic()
        now = self._now()
        with self._lock:
            holding = self._epoch
        try:
            with self.catalog.session() as session:
                if holding is not None:
                    if renew_lease(session, self.lease_name, self.holder, self.ttl, now=now):
                        self._held(holding, started)
                        return third
                    self._lost("renewal refused: the lease expired or has another holder")
                    return third
                if acquire_lease(session, self.lease_name, self.holder, self.ttl, now=now):
                    info = get_lease(session, self.lease_name)
                    assert info is not None
                    self._won(info.epoch, started)
                    return third
                info = get_lease(session, self.lease_name)
                moment = now or database_now(session)
        except Exception as exc:
            log.exception("lease %s: catalog error", self.lease_name)
            self._lost(f"catalog error: {exc}")
            return third
        if info is None:
            return third
        left = (info.expires_at - moment).total_seconds()
        # A standby asks again soon (one cheap statement), so a released lease is taken at
        # once, and right at expiry when the holder died.
        return min(max(left, 0.05), third, STANDBY_POLL_SECONDS)

    def _held(self, epoch: int, started: float) -> None:
        with self._lock:
            self._epoch = epoch
            self._held_until = started + self.ttl.total_seconds()

    def _won(self, epoch: int, started: float) -> None:
        self._held(epoch, started)
        log.info("took lease %s as %s (epoch %d)", self.lease_name, self.holder, epoch)
        for schedule in self._schedules:
            if schedule.duty.leased:
                schedule.due = self._clock.monotonic()  # a new holder runs everything at once
                schedule.failed = None
        self._wake.set()

    def release(self) -> bool:
        """Give the lease up now (a clean stop); True if this runner held it."""
        with self._lock:
            had = self._epoch
            self._epoch = None
        if had is None:
            return False
        try:
            with self.catalog.session() as session:
                released = release_lease(session, self.lease_name, self.holder, now=self._now())
        except Exception:
            log.exception("lease %s: could not release", self.lease_name)
            return False
        if released:
            log.info("released lease %s (epoch %d)", self.lease_name, had)
        return released

    # -- the duties ----------------------------------------------------------------------------

    def run_due(self) -> float:
        """Run every duty that is due; returns seconds until the next one is."""
        waits: list[float] = []
        for schedule in self._schedules:
            if self._stop.is_set():
                break
            epoch = self.epoch if schedule.duty.leased else None
            if schedule.duty.leased and epoch is None:
                continue
            now = self._clock.monotonic()
            if now >= schedule.due:
                schedule.due = now + schedule.duty.interval
                self._run_one(schedule, epoch)
            waits.append(schedule.due - self._clock.monotonic())
        return min([MAX_IDLE_SECONDS, *waits])

    def _context(self, epoch: int | None) -> DutyContext:
        return DutyContext(
            catalog=self.catalog,
            node_name=self.node_name,
            holder=self.holder,
            lease_name=self.lease_name,
            epoch=epoch,
            clock_now=self._now(),
        )

    def _run_one(self, schedule: _Schedule, epoch: int | None) -> None:
        duty = schedule.duty
        context = self._context(epoch)
        try:
            duty.run(context)
        except LeaseLostError as exc:
            self._lost(f"duty {duty.name} was fenced off: {exc}")
            return
        except Exception as exc:
            log.exception("duty %s failed", duty.name)
            schedule.runs += 1
            schedule.failed = True
            self._report(context, duty, exc)
            return
        schedule.runs += 1
        if schedule.failed is not False:
            self._report(context, duty, None)  # clears a failure raised earlier (maybe elsewhere)
        schedule.failed = False

    def _report(self, context: DutyContext, duty: Duty, error: BaseException | None) -> None:
        """Raise (or clear) the duty's `duty.failed` alarm; never lets an error escape."""
        identifier = f"{DUTY_FAILED}|{duty.name}"
        if not duty.leased:
            identifier = f"{DUTY_FAILED}|{duty.name}|{self.node_name}"
        text = f"{type(error).__name__}: {error}" if error is not None else ""
        event = Event(
            node=self.node_name,
            alert_group=DUTY_FAILED,
            alert_key=duty.name,
            identifier=identifier,
            summary=(
                f"duty {duty.name} failed on {self.node_name}: {text}"
                if error is not None
                else f"duty {duty.name} runs again on {self.node_name}"
            ),
            severity=Severity.MAJOR if error is not None else Severity.CLEAR,
            type=EventType.PROBLEM if error is not None else EventType.RESOLUTION,
            source=EventSource.INTERNAL,
            alarm_class=AlarmClass.SOFTWARE,
            occurrence_key=text[:200] if error is not None else None,
            attributes={"duty": duty.name, "holder": self.holder},
        )
        try:
            with context.session() as session:
                process_events(session, [event], now=context.clock_now)
        except LeaseLostError as exc:
            self._lost(str(exc))
        except Exception:
            log.exception("duty %s: could not record its state as an alarm", duty.name)

    def tick(self) -> None:
        """One round by hand: keep or take the lease, then run what is due."""
        self.maintain_lease()
        self.run_due()

    # -- threads -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the lease and duty threads (daemon threads; `stop()` ends them)."""
        if self._threads:
            raise RuntimeError("the duty runner is already started")
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._lease_loop, name="vw-duty-lease", daemon=True),
            threading.Thread(target=self._duty_loop, name="vw-duties", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, *, release: bool = True, timeout: float = 30.0) -> None:
        """Stop the threads (letting a running duty finish), then release the lease.

        `release=False` leaves the lease to expire, as a crashed node would.
        """
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        if release:
            self.release()
        else:
            self._lost("stopped without releasing")

    def _lease_loop(self) -> None:
        while not self._stop.is_set():
            wait = self.maintain_lease()
            if self._stop.wait(wait):
                break

    def _duty_loop(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.run_due()
            except Exception:  # pragma: no cover - run_due already contains every duty error
                log.exception("duty loop error")
                wait = MAX_IDLE_SECONDS
            self._wake.wait(max(wait, 0.0))
            self._wake.clear()
