"""What several repository commands share: snapshot arguments, the snapshot filters, tags.

restic's filters mean the same on every command: ``--host`` any of these
hosts, ``--path`` snapshots that include every one of these paths, ``--tag
a,b`` snapshots carrying both a and b (repeated: any of the groups). They
choose the snapshots a listing or a policy works on and which one ``latest``
is.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from vaultwatch.engine.repository import Repository
from vaultwatch.engine.retention import select_snapshots
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.snapshot_select import SnapshotFilter, resolve_snapshot

SnapshotArg = Annotated[
    str, typer.Argument(metavar="SNAPSHOT", help="Snapshot id (a unique prefix) or 'latest'")
]
HostFilter = Annotated[
    list[str] | None,
    typer.Option("--host", "-H", metavar="HOST", help="Only snapshots of this host (repeatable)"),
]
PathFilter = Annotated[
    list[str] | None,
    typer.Option(
        "--path", metavar="PATH", help="Only snapshots that include this path (repeatable)"
    ),
]
TagFilter = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        metavar="TAG[,TAG]",
        help="Only snapshots carrying all these tags (repeatable: any of the groups)",
    ),
]
LongOpt = Annotated[
    bool, typer.Option("--long", "-l", help="Long format: permissions, owner, size, time")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", "-n", help="Only show what would be done")]


def abs_paths(paths: list[str] | None) -> list[str] | None:
    """Snapshot paths are absolute; let people type them relative to where they are."""
    return [os.path.abspath(p) for p in paths] if paths else None


def snapshot_filter(
    hosts: list[str] | None, paths: list[str] | None, tags: list[str] | None
) -> SnapshotFilter:
    """The filter the --host, --path and --tag options describe."""
    return SnapshotFilter(hosts=hosts or None, paths=abs_paths(paths), tags=tags or None)


def select(
    repository: Repository,
    hosts: list[str] | None,
    paths: list[str] | None,
    tags: list[str] | None,
) -> list[Snapshot]:
    """The snapshots the filters select, oldest first."""
    f = snapshot_filter(hosts, paths, tags)
    return select_snapshots(repository.snapshots(), hosts=f.hosts, paths=f.paths, tags=f.tags)


def find(
    repository: Repository,
    ref: str,
    hosts: list[str] | None,
    paths: list[str] | None,
    tags: list[str] | None,
) -> Snapshot:
    """An id prefix, or ``latest`` among the snapshots the filters select."""
    return resolve_snapshot(repository, ref, snapshot_filter(hosts, paths, tags))


def split_tags(values: list[str] | None) -> list[str]:
    """``--tag a,b --tag c`` -> [a, b, c], as restic accepts both forms."""
    tags: list[str] = []
    for value in values or []:
        for tag in value.split(","):
            if tag.strip() and tag.strip() not in tags:
                tags.append(tag.strip())
    return tags
