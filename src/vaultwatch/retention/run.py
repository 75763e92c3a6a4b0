"""One retention run over tenants' vaults: forget, rescue, collect, purge.

For each vault, under a per-vault catalog lease (so two nodes, or the duty
and an operator, never work on one vault at once):

1. **Forget**: each backup set's snapshots (grouped by the agent that the
   gateway stamped on the manifest, never by what the manifest claims) are
   judged by the set's policy; held snapshots stay. A removed snapshot's
   object, then its manifest, go to ``trash/``. Snapshots retention cannot
   attribute to a known set are kept.
2. **Rescue**: a trashed pack that a kept manifest names is put back.
3. **Collect**: garbage is every pack in ``data/`` that no kept snapshot's
   manifest (nor a recent manifest whose snapshot has not arrived) names.
   Garbage is first *announced* in ``retention/state``; it is moved to the
   trash only once every backup that held a lock at the announcement has
   finished (later backups read the announcement after taking their lock
   and never deduplicate against it). Packs that only the snapshots
   forgotten in this run named are announced at once; packs no manifest
   names may be a running backup's, so they are watched first
   (:mod:`vaultwatch.retention.suspects`). Nothing is collected while any
   snapshot has no readable manifest: what it needs is unknown.
4. **Purge**: trash older than the grace period is deleted for good (a pack
   a kept snapshot needs is put back instead).

A dry run reads only and reports what a run would do.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vaultwatch.catalog import audit
from vaultwatch.catalog.leases import acquire_lease, release_lease
from vaultwatch.catalog.models import BackupSet, Repository, Tenant, TrashState, VaultTrash
from vaultwatch.catalog.vaults import VAULT_NAME
from vaultwatch.engine.manifest import Manifest
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.errors import VaultwatchError
from vaultwatch.retention.policy import RetentionError, is_held, judge, set_policy
from vaultwatch.retention.suspects import read_suspects, write_suspects
from vaultwatch.retention.vault import (
    ORPHAN_MANIFEST_AGE,
    VaultContents,
    live_locks,
    move_to_trash,
    pack_object,
    purge_from_trash,
    read_contents,
    read_state,
    restore_from_trash,
    trash_name,
    trusted_time,
    write_state,
)
from vaultwatch.soc.ransomware import open_holds
from vaultwatch.store.base import Store
from vaultwatch.store.url import open_store

log = logging.getLogger("vaultwatch.retention")

DEFAULT_GRACE = timedelta(days=7)
"""How long removed objects stay in the vault's trash before they are deleted."""
LEASE_TTL = timedelta(minutes=30)
SYSTEM_ACTOR = audit.system_actor("retention")

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class RunOptions:
    """What to run on, and how."""

    tenant_id: uuid.UUID | None = None
    backup_set: str | None = None
    dry_run: bool = False
    grace: timedelta = DEFAULT_GRACE
    tz: tzinfo | None = UTC
    """The calendar hourly/daily/... buckets follow."""
    actor: str = SYSTEM_ACTOR
    now: datetime | None = None


@dataclass
class SnapshotLine:
    """One snapshot's verdict, for the table and ``--json``."""

    snapshot: str
    time: datetime
    action: str
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "time": self.time.isoformat()}


@dataclass
class SetOutcome:
    """One backup set's verdict."""

    backup_set: str
    hostname: str
    policy: str
    lines: list[SnapshotLine] = field(default_factory=list)

    @property
    def kept(self) -> int:
        """How many snapshots stay."""
        return sum(1 for line in self.lines if line.action == "keep")

    @property
    def removed(self) -> int:
        """How many snapshots go (or would go)."""
        return sum(1 for line in self.lines if line.action == "remove")

    @property
    def held(self) -> int:
        """How many snapshots a hold keeps."""
        return sum(1 for line in self.lines if "held" in line.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "backup_set": self.backup_set,
            "hostname": self.hostname,
            "policy": self.policy,
            "kept": self.kept,
            "removed": self.removed,
            "held": self.held,
            "snapshots": [line.to_dict() for line in self.lines],
        }


@dataclass
class VaultOutcome:
    """What a run did (or, dry, would do) in one tenant's vault."""

    tenant_id: uuid.UUID
    tenant: str
    dry_run: bool
    sets: list[SetOutcome] = field(default_factory=list)
    snapshots_removed: int = 0
    unattributed: int = 0
    packs_garbage: int = 0
    bytes_garbage: int = 0
    packs_trashed: int = 0
    bytes_trashed: int = 0
    packs_waiting: int = 0
    packs_unconfirmed: int = 0
    """Packs no manifest names that a later run announces if they stay unused."""
    packs_restored: int = 0
    objects_purged: int = 0
    bytes_purged: int = 0
    collection: str = "done"
    messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        doc = {k: v for k, v in asdict(self).items() if k != "sets"}
        doc["tenant_id"] = str(self.tenant_id)
        doc["sets"] = [s.to_dict() for s in self.sets]
        return doc


@dataclass
class RetentionReport:
    """Every vault of one run."""

    dry_run: bool
    vaults: list[VaultOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"dry_run": self.dry_run, "vaults": [v.to_dict() for v in self.vaults]}


@dataclass
class _Target:
    tenant_id: uuid.UUID
    tenant: str
    repository_id: uuid.UUID
    location: str
    sets: list[BackupSet]
    holds: dict[uuid.UUID, list[datetime]]
    """Per set: the instants of its open holds (snapshots made before one are held)."""


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def _targets(session: Session, options: RunOptions) -> list[_Target]:
    query = (
        select(Repository, Tenant)
        .join(Tenant, Tenant.id == Repository.tenant_id)
        .where(Repository.name == VAULT_NAME)
        .order_by(Tenant.name)
    )
    if options.tenant_id is not None:
        query = query.where(Tenant.id == options.tenant_id)
    targets = []
    for repo, tenant in session.execute(query).all():
        if getattr(tenant, "purged_at", None) is not None:
            continue  # the tenant's data is gone
        sets = list(
            session.execute(select(BackupSet).where(BackupSet.repository_id == repo.id)).scalars()
        )
        holds = {bs.id: [h.held_before for h in open_holds(session, bs.id)] for bs in sets}
        for row in sets:
            session.expunge(row)
        targets.append(_Target(tenant.id, tenant.name, repo.id, repo.primary_location, sets, holds))
    if options.backup_set is not None and not any(
        s.name == options.backup_set for t in targets for s in t.sets
    ):
        raise RetentionError(f"no backup set named {options.backup_set!r}")
    return targets


def run_retention(
    session: SessionFactory,
    options: RunOptions,
    *,
    progress: Callable[[str, str], None] | None = None,
) -> RetentionReport:
    """Run retention on the chosen vaults; ``progress(tenant, phase)`` is told what happens."""
    with session() as s:
        targets = _targets(s, options)
        now = options.now or datetime.now(UTC)
    report = RetentionReport(options.dry_run)
    for target in targets:
        if progress is not None:
            progress(target.tenant, "reading the vault")
        try:
            outcome = _run_vault(session, target, options, now, progress)
        except VaultwatchError as exc:
            outcome = VaultOutcome(target.tenant_id, target.tenant, options.dry_run)
            outcome.collection = "failed"
            outcome.messages.append(str(exc))
            log.warning("retention of %s failed: %s", target.tenant, exc)
        report.vaults.append(outcome)
    return report


@contextmanager
def _vault_lease(session: SessionFactory, target: _Target, dry_run: bool) -> Iterator[bool]:
    if dry_run:
        yield True
        return
    name, holder = f"retention:{target.repository_id}", _holder()
    with session() as s:
        won = acquire_lease(s, name, holder, LEASE_TTL)
    try:
        yield won
    finally:
        if won:
            with session() as s:
                release_lease(s, name, holder)


def _run_vault(
    session: SessionFactory,
    target: _Target,
    options: RunOptions,
    now: datetime,
    progress: Callable[[str, str], None] | None,
) -> VaultOutcome:
    outcome = VaultOutcome(target.tenant_id, target.tenant, options.dry_run)
    with _vault_lease(session, target, options.dry_run) as won:
        if not won:
            outcome.collection = "skipped"
            outcome.messages.append("another retention run is working on this vault")
            return outcome
        store = open_store(target.location)
        try:
            _Run(session, store, target, options, now, outcome, progress).run()
        finally:
            store.close()
    return outcome


class _Run:
    """The steps for one vault (see the module docstring)."""

    def __init__(
        self,
        session: SessionFactory,
        store: Store,
        target: _Target,
        options: RunOptions,
        now: datetime,
        outcome: VaultOutcome,
        progress: Callable[[str, str], None] | None,
    ) -> None:
        self.session = session
        self.store = store
        self.target = target
        self.options = options
        self.now = now
        self.outcome = outcome
        self._progress = progress
        self.trash_rows: list[VaultTrash] = []
        self.row_updates: dict[int, TrashState] = {}

    def phase(self, text: str) -> None:
        if self._progress is not None:
            self._progress(self.target.tenant, text)

    def run(self) -> None:
        # Before the manifests are read: a writer gone by now stored its manifest before.
        live_at_start = set(live_locks(self.store))
        contents = read_contents(self.store)
        removed = self.forget(contents)
        kept = {sid: m for sid, m in contents.live.items() if sid not in removed}
        refs = self.references(kept, contents)
        released = {p for sid in removed for p in contents.live[sid].packs} - refs
        trashed = self.trashed_rows()
        self.rescue(trashed, refs)
        blocked = self.blocking(contents)
        if blocked:
            self.outcome.collection = "skipped"
            self.outcome.messages.append(blocked)
        else:
            self.collect(contents, refs, released, live_at_start)
        self.purge(trashed, refs, blocked=bool(blocked))
        if not self.options.dry_run:
            self.record()

    # -- 1. forget ------------------------------------------------------------------------

    def forget(self, contents: VaultContents) -> set[str]:
        self.phase("judging snapshots")
        by_key = {(str(s.agent_id), s.name): s for s in self.target.sets}
        groups: dict[uuid.UUID, list[Manifest]] = {}
        for manifest in contents.live.values():
            row = None
            if manifest.received is not None and manifest.backup_set is not None:
                row = by_key.get((manifest.received.agent_id, manifest.backup_set))
            if row is None:
                self.outcome.unattributed += 1
                continue
            groups.setdefault(row.id, []).append(manifest)
        doomed: list[Manifest] = []
        sets = {s.id: s for s in self.target.sets}
        for set_id, members in sorted(groups.items(), key=lambda kv: sets[kv[0]].name):
            row = sets[set_id]
            if self.options.backup_set is not None and row.name != self.options.backup_set:
                continue
            doomed.extend(self.judge_set(row, members))
        if self.options.dry_run:
            return {m.snapshot for m in doomed}
        if doomed:
            self.phase(f"removing {len(doomed)} snapshots")
        removed = set()
        for manifest in doomed:
            # The snapshot first: a crash between leaves a manifest without its snapshot,
            # which only protects packs a little longer.
            size = move_to_trash(self.store, f"snapshots/{manifest.snapshot}")
            if size is not None:
                self.add_trash(
                    f"snapshots/{manifest.snapshot}", "snapshot", size, manifest.snapshot
                )
            msize = move_to_trash(self.store, manifest.name)
            if msize is not None:
                self.add_trash(manifest.name, "manifest", msize, manifest.snapshot)
            removed.add(manifest.snapshot)
        self.outcome.snapshots_removed = len(removed)
        return removed

    def judge_set(self, row: BackupSet, members: list[Manifest]) -> list[Manifest]:
        policy = set_policy(row)
        snaps = [
            Snapshot(
                time=trusted_time(m),
                tree=b"",
                paths=m.paths,
                hostname=m.hostname,
                tags=m.tags,
                id=m.snapshot,
            )
            for m in members
        ]
        instants = self.target.holds.get(row.id, [])
        held = [
            m.snapshot
            for m in members
            if is_held(m.time, m.received.at if m.received else None, instants)
        ]
        verdict = judge(snaps, policy, held=held, tz=self.options.tz)
        hostname = members[0].hostname
        outcome = SetOutcome(row.name, hostname, policy.describe())
        for snap in sorted(snaps, key=lambda s: (s.time, s.id), reverse=True):
            reasons = verdict.reasons.get(snap.id, [])
            outcome.lines.append(
                SnapshotLine(snap.id, snap.time, "keep" if reasons else "remove", reasons)
            )
        self.outcome.sets.append(outcome)
        gone = {s.id for s in verdict.remove}
        return [m for m in members if m.snapshot in gone]

    # -- 2. references and rescue -------------------------------------------------------------

    def references(self, kept: dict[str, Manifest], contents: VaultContents) -> set[str]:
        """Packs still needed: by kept snapshots, and by recent manifests still waiting for theirs."""
        refs: set[str] = set()
        for manifest in kept.values():
            refs.update(manifest.packs)
        for manifest in contents.orphans.values():
            written = manifest.received.at if manifest.received else manifest.time
            if self.now - written < ORPHAN_MANIFEST_AGE:
                refs.update(manifest.packs)
            elif not self.options.dry_run:
                size = move_to_trash(self.store, manifest.name)
                if size is not None:
                    self.add_trash(manifest.name, "manifest", size, manifest.snapshot)
        return refs

    def trashed_rows(self) -> list[VaultTrash]:
        with self.session() as s:
            rows = list(
                s.execute(
                    select(VaultTrash).where(
                        VaultTrash.repository_id == self.target.repository_id,
                        VaultTrash.state == TrashState.TRASHED,
                    )
                ).scalars()
            )
            for row in rows:
                s.expunge(row)
        return rows

    def rescue(self, trashed: list[VaultTrash], refs: set[str]) -> None:
        for row in trashed:
            if row.kind != "pack" or row.name.rsplit("/", 1)[-1] not in refs:
                continue
            if not self.options.dry_run:
                restore_from_trash(self.store, row.name)
                self.row_updates[row.id] = TrashState.RESTORED
            self.outcome.packs_restored += 1

    # -- 3. collect -----------------------------------------------------------------------------

    def blocking(self, contents: VaultContents) -> str | None:
        missing = contents.unmanifested
        if not missing:
            return None
        sample = ", ".join(sid[:8] for sid in missing[:5])
        return (
            f"no data collected: {len(missing)} snapshots have no readable reference manifest "
            f"({sample}; made outside the agent or before retention existed), so what they "
            "need is unknown"
        )

    def collect(
        self,
        contents: VaultContents,
        refs: set[str],
        released: set[str],
        live_at_start: set[str],
    ) -> None:
        """Announce garbage, then trash what every backup running at its announcement left alone.

        Packs only the snapshots forgotten in this run named are announced at
        once; packs no manifest ever named may belong to a backup still
        running, so they are announced only once :mod:`suspects` confirms them.
        """
        garbage = {p for p in contents.packs if p not in refs}
        self.outcome.packs_garbage = len(garbage)
        self.outcome.bytes_garbage = sum(contents.packs[p] for p in garbage)
        if self.options.dry_run:
            self.outcome.collection = "done" if not garbage else "would collect"
            return
        state = read_state(self.store)
        watched = read_suspects(self.store)
        now_live = set(live_locks(self.store))
        confirmed, suspects = watched.sift(
            garbage - released - state.doomed, live_at_start, now_live
        )
        if suspects != watched:
            write_suspects(self.store, suspects, self.now)
        self.outcome.packs_unconfirmed = len(suspects.packs)
        if suspects.groups:
            self.outcome.messages.append(
                f"{self.outcome.packs_unconfirmed} packs no snapshot names yet are watched: a run "
                "after the backups running when they were first seen have finished collects "
                "those still unused"
            )
        if not (released | confirmed) and not state.doomed:
            return
        self.phase("collecting unused data")
        still = state.doomed & garbage
        alive = set(state.waiting_for_locks) & now_live
        to_trash = set() if alive else still
        fresh = (released | confirmed) - state.doomed
        waiting = alive
        if fresh:
            state.doomed = still | fresh
            state.generation = max(state.generation, 0) + 1
            state.waiting_for_locks = sorted(alive)
            write_state(self.store, state, self.now)  # announce before looking at the locks
            present = set(live_locks(self.store))
            waiting = alive | present
            if not waiting:
                to_trash = still | fresh
        for pack in sorted(to_trash):
            size = move_to_trash(self.store, pack_object(pack))
            if size is not None:
                self.add_trash(pack_object(pack), "pack", size, None)
                self.outcome.packs_trashed += 1
                self.outcome.bytes_trashed += size
        state.doomed = (still | fresh) - to_trash
        state.waiting_for_locks = sorted(waiting) if state.doomed else []
        write_state(self.store, state, self.now)
        self.outcome.packs_waiting = len(state.doomed)
        if state.doomed:
            self.outcome.collection = "waiting"
            self.outcome.messages.append(
                f"{len(state.doomed)} unused packs wait for {len(waiting)} backups that were "
                "running when they were announced; the next run collects them"
            )

    # -- 4. purge ---------------------------------------------------------------------------------

    def purge(self, trashed: list[VaultTrash], refs: set[str], *, blocked: bool) -> None:
        due = [r for r in trashed if r.purge_after <= self.now and r.id not in self.row_updates]
        if due:
            self.phase("emptying the trash")
        for row in due:
            if row.kind == "pack" and (blocked or row.name.rsplit("/", 1)[-1] in refs):
                continue  # rescued above, or unknown needs: keep it in the trash
            if not self.options.dry_run:
                purge_from_trash(self.store, row.name)
                self.row_updates[row.id] = TrashState.PURGED
            self.outcome.objects_purged += 1
            self.outcome.bytes_purged += row.size

    # -- bookkeeping ------------------------------------------------------------------------------

    def add_trash(self, name: str, kind: str, size: int, snapshot: str | None) -> None:
        self.trash_rows.append(
            VaultTrash(
                tenant_id=self.target.tenant_id,
                repository_id=self.target.repository_id,
                name=name,
                trash_name=trash_name(name),
                kind=kind,
                size=size,
                snapshot=snapshot,
                state=TrashState.TRASHED,
                trashed_at=self.now,
                purge_after=self.now + self.options.grace,
            )
        )

    def record(self) -> None:
        o = self.outcome
        changed = self.trash_rows or self.row_updates
        with self.session() as s:
            s.add_all(self.trash_rows)
            for row_id, state in self.row_updates.items():
                row = s.get(VaultTrash, row_id)
                if row is not None:
                    row.state = state
                    row.done_at = self.now
            if changed:
                audit.record(
                    s,
                    self.options.actor,
                    "retention.run",
                    self.target.tenant_id,
                    target=f"repository:{self.target.repository_id}",
                    details={
                        "snapshots_removed": o.snapshots_removed,
                        "packs_trashed": o.packs_trashed,
                        "bytes_trashed": o.bytes_trashed,
                        "packs_restored": o.packs_restored,
                        "objects_purged": o.objects_purged,
                        "backup_set": self.options.backup_set,
                    },
                )
