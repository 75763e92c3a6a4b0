"""What depends on what: agent -> gateway -> node -> site, store -> site.

Correlation walks these edges upwards from an alarm's entity to find a root
cause, and downwards from a root to find its symptoms. Entities are named
``kind:name`` (``agent:<uuid>``, ``gateway:gw1``, ``node:gw1``, ``store:s3-1``,
``site:dc1``). The graph is kept acyclic (an edge that would close a cycle is
refused) and every walk is bounded in depth and remembers what it has seen,
so bad data can never make a walk run away.

The walks use the core table, not the ORM entity: topology is service-wide,
and a tenant's session that raises an event must still see its gateway.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, insert, select, update
from sqlalchemy.orm import Session

from vaultwatch.catalog.db import database_now, one_of
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import ServerNode, TopologyEdge

#: How many levels a walk climbs or descends at most (agent, gateway, node, site and margin).
MAX_DEPTH = 8
MAX_ENTITY = 300

_EDGES = cast(Table, TopologyEdge.__table__)
_NODES = cast(Table, ServerNode.__table__)


def kind_of(entity: str) -> str:
    """The part before the first colon: ``gateway`` for ``gateway:gw1``."""
    return entity.split(":", 1)[0]


def _check(entity: str) -> str:
    cleaned = entity.strip() if isinstance(entity, str) else ""
    kind, _, name = cleaned.partition(":")
    if not kind or not name or len(cleaned) > MAX_ENTITY or not cleaned.isprintable():
        raise ValidationError(f"topology entity {entity!r} must be kind:name (e.g. gateway:gw1)")
    return cleaned


def parents_of(session: Session, entity: str) -> list[str]:
    """The entities `entity` depends on directly."""
    return list(session.scalars(select(_EDGES.c.parent).where(_EDGES.c.child == entity)))


def link(
    session: Session,
    child: str,
    parent: str,
    *,
    exclusive: bool = True,
    now: datetime | None = None,
) -> bool:
    """Record that `child` depends on `parent`; returns whether anything changed.

    With `exclusive` (the default) the child's other parents of the same kind
    are dropped: an agent uses one gateway at a time, a gateway sits at one
    site. Cheap when nothing changed (one read), so a heartbeat may call it.
    """
    child, parent = _check(child), _check(parent)
    if child == parent:
        raise ValidationError(f"{child} cannot depend on itself")
    current = parents_of(session, child)
    stale = [p for p in current if exclusive and p != parent and kind_of(p) == kind_of(parent)]
    if parent in current and not stale:
        return False
    if parent not in current and child in ancestors(session, parent):
        raise ValidationError(f"{child} -> {parent} would make a dependency cycle")
    now = now or database_now(session)
    if stale:
        session.execute(delete(_EDGES).where(_EDGES.c.child == child, _EDGES.c.parent.in_(stale)))
    if parent in current:
        session.execute(
            update(_EDGES)
            .where(_EDGES.c.child == child, _EDGES.c.parent == parent)
            .values(updated_at=now)
        )
    else:
        session.execute(insert(_EDGES).values(child=child, parent=parent, updated_at=now))
    return True


def unlink(session: Session, child: str, parent: str | None = None) -> int:
    """Forget that `child` depends on `parent` (on anything, without one); returns edges removed."""
    stmt = delete(_EDGES).where(_EDGES.c.child == _check(child))
    if parent is not None:
        stmt = stmt.where(_EDGES.c.parent == _check(parent))
    result = cast(CursorResult[Any], session.execute(stmt))
    return result.rowcount or 0


def link_agent(session: Session, agent_id: uuid.UUID, gateway: str) -> bool:
    """The agent `agent_id` reaches the service through gateway node `gateway`."""
    return link(session, f"agent:{agent_id}", f"gateway:{gateway}")


def link_store(session: Session, store: str, site: str) -> bool:
    """The store `store` lives at `site`."""
    return link(session, f"store:{store}", f"site:{site}")


def sync_nodes(session: Session) -> int:
    """Edges from ``server_nodes``: ``gateway:<name>`` -> ``node:<name>`` -> ``site:<site>``.

    Run when a node registers or its site changes; returns how many edges changed.
    """
    changed = 0
    for name, site, roles in session.execute(select(_NODES.c.name, _NODES.c.site, _NODES.c.roles)):
        changed += link(session, f"node:{name}", f"site:{site or 'default'}")
        if "gateway" in (roles or []):
            changed += link(session, f"gateway:{name}", f"node:{name}")
    return changed


def _walk(session: Session, starts: Iterable[str], upwards: bool, depth: int) -> dict[str, int]:
    """Every entity reachable from `starts` with its distance (1 = direct), bounded and cycle-safe."""
    near, far = (_EDGES.c.child, _EDGES.c.parent) if upwards else (_EDGES.c.parent, _EDGES.c.child)
    seen = set(starts)
    found: dict[str, int] = {}
    frontier = set(seen)
    for level in range(1, depth + 1):
        if not frontier:
            break
        rows = session.execute(select(far).where(one_of(session, near, sorted(frontier)))).scalars()
        frontier = {entity for entity in rows if entity not in seen}
        seen |= frontier
        for entity in frontier:
            found[entity] = level
    return found


def ancestors(session: Session, entity: str, *, max_depth: int = MAX_DEPTH) -> list[str]:
    """What `entity` depends on, directly or not, nearest first (at most `max_depth` levels up)."""
    found = _walk(session, [entity], True, max_depth)
    return sorted(found, key=lambda e: (found[e], e))


def descendants(session: Session, entity: str, *, max_depth: int = MAX_DEPTH) -> list[str]:
    """What depends on `entity`, directly or not, nearest first."""
    found = _walk(session, [entity], False, max_depth)
    return sorted(found, key=lambda e: (found[e], e))


def ancestor_map(
    session: Session, entities: Iterable[str], *, max_depth: int = MAX_DEPTH
) -> dict[str, dict[str, int]]:
    """For each of `entities`, its ancestors with their distance; one query per level for all.

    Correlation calls this for a whole batch of alarms at once.
    """
    wanted = set(entities)
    parents: dict[str, set[str]] = {}
    frontier = set(wanted)
    seen = set(wanted)
    for _ in range(max_depth):
        if not frontier:
            break
        rows = session.execute(
            select(_EDGES.c.child, _EDGES.c.parent).where(
                one_of(session, _EDGES.c.child, sorted(frontier))
            )
        ).all()
        frontier = set()
        for child, parent in rows:
            parents.setdefault(child, set()).add(parent)
            if parent not in seen:
                seen.add(parent)
                frontier.add(parent)
    result: dict[str, dict[str, int]] = {}
    for entity in wanted:
        found: dict[str, int] = {}
        level_set = {entity}
        visited = {entity}
        for level in range(1, max_depth + 1):
            level_set = {p for e in level_set for p in parents.get(e, ()) if p not in visited}
            if not level_set:
                break
            visited |= level_set
            for p in level_set:
                found[p] = level
        result[entity] = found
    return result
