"""The backup benchmark's two data sets, behind one interface.

Each lays its first tree in the source directory, then changes it in place before the
third backup: the generated set (``bench.datagen``) by its seeded ~1 % change, the
kernel set (``bench.kernel_source``) by an upgrade from one release to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench import kernel_source
from bench.anchors import CACHE
from bench.datagen import format_size, generate, mutate, tree_bytes


class DataSet(Protocol):
    """What the benchmark needs of a data set."""

    key: str
    title: str  # how the report names it
    change_title: str  # the third backup's step, e.g. "backup after 1 % change"

    def fetch(self) -> None:
        """Bring whatever it needs into the cache (once, before any run)."""

    def lay(self, source: Path) -> dict[str, Any]:
        """Put the first tree in source; describe it (JSON-ready, with total_bytes)."""

    def change(self, source: Path) -> dict[str, Any]:
        """Change source in place; describe the change (with changed_bytes)."""

    def summary(self, laid: dict[str, Any], changed: dict[str, Any] | None) -> str:
        """One sentence for the report."""


@dataclass
class GeneratedSet:
    """The seeded synthetic mix of text, binaries and duplicates, then ~1 % changed."""

    size: int
    seed: int = 1
    fraction: float = 0.01
    key: str = "generated"
    title: str = "generated"
    change_title: str = field(init=False)

    def __post_init__(self) -> None:
        self.change_title = f"backup after {self.fraction:.0%} change"

    def fetch(self) -> None:
        """Nothing to fetch: the set is generated."""

    def lay(self, source: Path) -> dict[str, Any]:
        dataset = generate(source, self.size, self.seed)
        return {**dataset.to_dict(), "name": self.title}

    def change(self, source: Path) -> dict[str, Any]:
        mutation = mutate(source, self.fraction, self.seed)
        return {
            **mutation.to_dict(),
            "changed_bytes": mutation.changed_bytes,
            "changed_fraction": mutation.changed_fraction,
            "bytes_after": tree_bytes(source),
        }

    def summary(self, laid: dict[str, Any], changed: dict[str, Any] | None) -> str:
        cats = laid["categories"]
        text = (
            f"**generated**: {format_size(laid['total_bytes'])} in {laid['files']:,} files "
            f"(seed {laid['seed']}; text {cats['text']['share']:.0%}, binary "
            f"{cats['binary']['share']:.0%}, duplicates {cats['duplicate']['share']:.0%})"
        )
        if changed:
            text += (
                f"; then {format_size(changed['changed_bytes'])} "
                f"({changed['changed_fraction']:.2%}) changed: {changed['overwrites']} "
                f"overwrites in {changed['overwritten_files']} large files, "
                f"{changed['appended_files']} logs appended, {changed['edited_files']} files "
                f"edited, {changed['new_files']} new, {changed['deleted_files']} deleted"
            )
        return text + "."


@dataclass
class KernelSet:
    """Linux 6.1 source from Debian's package, release A, then upgraded in place to B."""

    releases: tuple[str, str] = kernel_source.RELEASES
    cache: Path = CACHE
    key: str = "kernel"
    title: str = "kernel source"
    change_title: str = "backup after upgrade"
    trees: list[Path] = field(default_factory=list)

    def fetch(self) -> None:
        self.trees = [kernel_source.release_tree(v, self.cache) for v in self.releases]

    def lay(self, source: Path) -> dict[str, Any]:
        if not self.trees:
            self.fetch()
        kernel_source.copy_release(self.trees[0], source)
        return {
            "name": self.title,
            "package": kernel_source.PACKAGE,
            "release": self.releases[0],
            "total_bytes": tree_bytes(source),
            "files": kernel_source.count_files(source),
        }

    def change(self, source: Path) -> dict[str, Any]:
        upgrade = kernel_source.upgrade_in_place(self.trees[1], source)
        return {
            **upgrade.to_dict(),
            "release": self.releases[1],
            "bytes_after": tree_bytes(source),
        }

    def summary(self, laid: dict[str, Any], changed: dict[str, Any] | None) -> str:
        text = (
            f"**kernel source**: Debian's `{laid['package']}` {laid['release']}, "
            f"{format_size(laid['total_bytes'])} in {laid['files']:,} files"
        )
        if changed:
            text += (
                f"; then upgraded in place to {changed['release']}: all {changed['files']:,} "
                f"files rewritten with new mtimes, {changed['changed_files']:,} of them "
                f"({format_size(changed['changed_bytes'])}, "
                f"{changed['changed_fraction']:.1%} of the bytes) new or different, "
                f"{changed['deleted_files']} deleted"
            )
        return text + "."
