"""Deterministic generator of the benchmark data set, and the ~1 % change applied to it.

Every tool in a run, and every run with the same seed, must see byte-identical data, so
everything here comes from one seeded numpy generator and sorted file lists. The mix
imitates a server worth backing up: thousands of small compressible text files (source
code and logs) in nested directories, large incompressible and semi-compressible binary
files, and duplicates (copied trees, copied large files, copies with small edits).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

TEXT_SHARE = 0.40
BINARY_SHARE = 0.45
# The rest (~15 %) is duplicates.

BLOCK = 8 * MIB
PAGE = 4 * KIB

SOURCE_DIR = "src"
LOG_DIR = "logs"
DATA_DIR = "data"
COPY_DIR = "copies"

TEXT_KINDS = ("source", "log")
BINARY_KINDS = ("binary-random", "binary-semi")
DUPLICATE_KINDS = ("dup-files", "dup-large", "dup-modified")

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": 1024 * GIB}


def parse_size(text: str) -> int:
    """Parse '1G', '200M', '5MiB', '512k' or plain bytes; units are binary (1G = 1 GiB)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 1G, 200M, 5MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(n: float) -> str:
    """Human-readable binary size, for progress lines and reports."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass
class KindStats:
    """Files and bytes of one kind of content."""

    files: int = 0
    bytes: int = 0


@dataclass
class Dataset:
    """What generate() wrote, so results can say what the tools were measured on."""

    root: str
    seed: int
    requested_bytes: int
    total_bytes: int = 0
    files: int = 0
    dirs: int = 0
    seconds: float = 0.0
    kinds: dict[str, KindStats] = field(default_factory=dict)

    def category_bytes(self) -> dict[str, int]:
        """Bytes per category: text, binary, duplicate."""
        groups = {"text": TEXT_KINDS, "binary": BINARY_KINDS, "duplicate": DUPLICATE_KINDS}
        return {
            name: sum(self.kinds[k].bytes for k in kinds if k in self.kinds)
            for name, kinds in groups.items()
        }

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form including the category shares."""
        data = asdict(self)
        cats = self.category_bytes()
        data["categories"] = {
            name: {"bytes": b, "share": b / self.total_bytes if self.total_bytes else 0.0}
            for name, b in cats.items()
        }
        return data


@dataclass
class Mutation:
    """Exactly what mutate() changed; changed_bytes counts every byte written."""

    seed: int
    fraction: float
    dataset_bytes: int
    overwritten_bytes: int = 0
    overwrites: int = 0
    overwritten_files: int = 0
    appended_bytes: int = 0
    appended_files: int = 0
    edited_bytes: int = 0
    edited_files: int = 0
    new_bytes: int = 0
    new_files: int = 0
    deleted_bytes: int = 0
    deleted_files: int = 0

    @property
    def changed_bytes(self) -> int:
        return self.overwritten_bytes + self.appended_bytes + self.edited_bytes + self.new_bytes

    @property
    def changed_fraction(self) -> float:
        return self.changed_bytes / self.dataset_bytes if self.dataset_bytes else 0.0

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = dict(asdict(self))
        data["changed_bytes"] = self.changed_bytes
        data["changed_fraction"] = self.changed_fraction
        return data


# --------------------------------------------------------------------------- content


_SYLLABLES = [
    "get",
    "set",
    "load",
    "save",
    "user",
    "data",
    "file",
    "path",
    "index",
    "chunk",
    "pack",
    "tree",
    "node",
    "hash",
    "key",
    "value",
    "cache",
    "lock",
    "read",
    "write",
    "sync",
    "queue",
    "job",
    "task",
    "event",
    "alarm",
    "meta",
    "size",
    "count",
    "item",
    "list",
    "map",
    "buf",
    "conn",
    "sock",
    "http",
    "json",
    "parse",
    "dump",
    "token",
    "auth",
    "store",
    "vault",
    "blob",
    "agent",
    "snap",
    "scan",
    "retry",
    "limit",
    "config",
    "state",
    "error",
]
_WORDS = [
    "the",
    "a",
    "backup",
    "server",
    "restore",
    "request",
    "failed",
    "completed",
    "started",
    "queue",
    "worker",
    "client",
    "session",
    "timeout",
    "retry",
    "connection",
    "database",
    "record",
    "update",
    "value",
    "changed",
    "missing",
    "found",
    "user",
    "file",
    "directory",
    "snapshot",
    "upload",
    "download",
    "pending",
    "because",
    "while",
    "after",
    "before",
    "with",
]


class _Text:
    """Pools of source and log lines; joining random picks is fast and compresses ~3-5x."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        # The pools need many scalar draws, which the stdlib generator makes far faster.
        self.pick_rng = random.Random(int(rng.integers(1 << 62)))
        idents = [self._ident() for _ in range(900)]
        classes = ["".join(p.capitalize() for p in i.split("_")) for i in idents[:200]]
        self.source = [self._source_line(idents, classes) for _ in range(6000)]
        self.source_avg = sum(map(len, self.source)) / len(self.source)
        services = [f"{i}-{n}" for i in idents[:12] for n in range(4)]
        # Each message starts with "Z " so it completes the ISO timestamp placed before it.
        self.messages = [self._message(idents, services) for _ in range(8000)]
        self.message_avg = sum(map(len, self.messages)) / len(self.messages) + 23

    def _pick(self, seq: list[str] | tuple[str, ...]) -> str:
        return self.pick_rng.choice(seq)

    def _ident(self) -> str:
        return "_".join(self.pick_rng.choices(_SYLLABLES, k=self.pick_rng.randrange(1, 4)))

    def _words(self, lo: int, hi: int) -> str:
        return " ".join(self.pick_rng.choices(_WORDS, k=self.pick_rng.randrange(lo, hi)))

    def _source_line(self, idents: list[str], classes: list[str]) -> bytes:
        r = self.pick_rng
        i, j, k = r.choices(idents, k=3)
        c = r.choice(classes)
        n = r.randrange(4096)
        templates = (
            f"def {i}({j}, {k}=None):",
            f"return {i}.{j}({k}, {n})",
            f"# {self._words(3, 12)}",
            f"import {i}",
            f"from {i}.{j} import {c}",
            f"class {c}({self._pick(classes)}):",
            f"if {i} is None or {j} > {n}:",
            f'raise {c}Error("{self._words(2, 7)}")',
            f"{i} = {j}[{n}]",
            f"for {i} in {j}.{k}():",
            f"self.{i} = {j}",
            f'log.info("{self._words(2, 8)} %s", {i})',
            "",
        )
        text = r.choice(templates)
        indent = "    " * r.randrange(4) if text else ""
        return f"{indent}{text}\n".encode()

    def _message(self, idents: list[str], services: list[str]) -> bytes:
        r = self.pick_rng
        level = r.choice(("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"))
        return (
            f"Z {level:<5} [{self._pick(services)}] {self._words(3, 10)} "
            f"id={r.getrandbits(40):010x} took={r.randrange(1, 5000)}ms "
            f"path=/{self._pick(idents)}/{self._pick(idents)}\n"
        ).encode()

    def source_file(self, size: int) -> bytes:
        """Code-like text of exactly size bytes."""
        n = int(size / self.source_avg) + 16
        data = b"".join(map(self.source.__getitem__, self.rng.integers(len(self.source), size=n)))
        while len(data) < size:
            data += data[: size - len(data)]
        return data[: size - 1] + b"\n" if size else b""

    def log_lines(self, size: int, start_ms: int) -> tuple[bytes, int]:
        """Timestamped log lines of exactly size bytes, and the last timestamp written."""
        n = int(size / self.message_avg) + 16
        steps = self.rng.integers(1, 4000, size=n, dtype=np.int64)
        stamps = start_ms + np.cumsum(steps)
        texts = np.datetime_as_string(stamps.astype("datetime64[ms]"), unit="ms")
        parts: list[bytes] = [b""] * (2 * n)
        parts[0::2] = [t.encode() for t in texts.tolist()]
        parts[1::2] = map(self.messages.__getitem__, self.rng.integers(len(self.messages), size=n))
        data = b"".join(parts)
        while len(data) < size:
            data += data[: size - len(data)]
        return (data[: size - 1] + b"\n" if size else b""), int(stamps[-1])


def _random_block(rng: np.random.Generator, n: int) -> bytes:
    """Incompressible bytes (numpy's integer path is ~1.5x faster than Generator.bytes)."""
    words = rng.integers(0, 1 << 63, size=(n + 7) // 8, dtype=np.uint64)
    # Bit 63 is always 0 from the range above; flip it from other bits so no byte is biased.
    words ^= (words << np.uint64(1)) & np.uint64(1 << 63)
    return words.tobytes()[:n]


def _semi_block(rng: np.random.Generator, n: int) -> bytes:
    """Database-like pages: some mostly empty, some low-entropy records, some random."""
    pages = (n + PAGE - 1) // PAGE
    data = np.frombuffer(bytearray(_random_block(rng, pages * PAGE)), dtype=np.uint8)
    data = data.reshape(pages, PAGE)
    kind = rng.random(pages)
    data[kind < 0.3, 256:] = 0
    records = (kind >= 0.3) & (kind < 0.7)
    data[records] = (data[records] & 0x1F) | 0x40
    return data.tobytes()[:n]


# --------------------------------------------------------------------------- generator


class _Writer:
    """Writes files under root and keeps the per-kind tally."""

    def __init__(self, root: Path, dataset: Dataset) -> None:
        self.root = root
        self.dataset = dataset
        self.dirs: set[Path] = set()

    def _mkdir(self, path: Path) -> None:
        if path not in self.dirs:
            path.mkdir(parents=True, exist_ok=True)
            self.dirs.add(path)

    def write(self, rel: str, kind: str, blocks: Iterator[bytes] | bytes) -> int:
        path = self.root / rel
        self._mkdir(path.parent)
        written = 0
        with open(path, "wb") as fh:
            for block in [blocks] if isinstance(blocks, bytes) else blocks:
                fh.write(block)
                written += len(block)
        stats = self.dataset.kinds.setdefault(kind, KindStats())
        stats.files += 1
        stats.bytes += written
        return written


def _sizes(rng: np.random.Generator, budget: int, median: float, lo: int, hi: int) -> list[int]:
    """Log-normal file sizes in [lo, hi] summing exactly to budget."""
    sizes: list[int] = []
    remaining = budget
    while remaining > 0:
        size = int(np.clip(rng.lognormal(np.log(median), 1.0), lo, hi))
        if remaining - size < lo:
            size = remaining
        sizes.append(size)
        remaining -= size
    return sizes


def _uniform_sizes(rng: np.random.Generator, budget: int, lo: int, hi: int) -> list[int]:
    """Large-file sizes in [lo, hi] summing exactly to budget."""
    sizes: list[int] = []
    remaining = budget
    while remaining > 0:
        size = int(rng.integers(lo, hi + 1))
        if remaining - size < lo:
            size = remaining
        sizes.append(size)
        remaining -= size
    return sizes


def _dir_tree(rng: np.random.Generator, top: str, n_dirs: int, max_depth: int = 4) -> list[str]:
    """Nested directory names: each new one goes under a random earlier one."""
    n_projects = max(1, n_dirs // 40)
    dirs = [(f"{top}/project_{p:02d}", 1) for p in range(n_projects)]
    while len(dirs) < n_dirs:
        parent, depth = dirs[int(rng.integers(len(dirs)))]
        if depth >= max_depth:
            continue
        dirs.append(
            (f"{parent}/{_SYLLABLES[int(rng.integers(len(_SYLLABLES)))]}_{len(dirs)}", depth + 1)
        )
    return [d for d, _ in dirs]


def _stream(rng: np.random.Generator, size: int, semi: bool) -> Iterator[bytes]:
    """Large-file content in BLOCK-sized pieces, so memory stays flat."""
    make = _semi_block if semi else _random_block
    done = 0
    while done < size:
        n = min(BLOCK, size - done)
        yield make(rng, n)
        done += n


def generate(root: Path | str, size: int = GIB, seed: int = 1) -> Dataset:
    """Write the data set under root (which must not exist or be empty) and describe it."""
    start = time.perf_counter()
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dataset = Dataset(root=str(root), seed=seed, requested_bytes=size)
    out = _Writer(root, dataset)
    text = _Text(rng)

    text_budget = int(size * TEXT_SHARE)
    binary_budget = int(size * BINARY_SHARE)
    dup_budget = size - text_budget - binary_budget

    # Small text: 60 % source-like files, 40 % logs.
    source_budget = int(text_budget * 0.6)
    source_sizes = _sizes(rng, source_budget, 6 * KIB, 64, min(256 * KIB, source_budget))
    source_dirs = _dir_tree(rng, SOURCE_DIR, max(1, len(source_sizes) // 12))
    # No .py/.js: linters and type checkers run over the work tree must not see them.
    exts = (".c", ".c", ".h", ".cc", ".go", ".rs", ".java", ".rb", ".md", ".txt")
    source_files: list[str] = []
    for i, fsize in enumerate(source_sizes):
        folder = source_dirs[int(rng.integers(len(source_dirs)))]
        rel = f"{folder}/{_SYLLABLES[i % len(_SYLLABLES)]}_{i}{exts[int(rng.integers(len(exts)))]}"
        out.write(rel, "source", text.source_file(fsize))
        source_files.append(rel)

    log_budget = text_budget - source_budget
    log_hi = max(4 * KIB, min(4 * MIB, log_budget // 8))
    log_sizes = _sizes(rng, log_budget, min(128 * KIB, log_hi / 2), min(4 * KIB, log_hi), log_hi)
    n_services = max(1, len(log_sizes) // 10)
    day0 = np.datetime64("2024-03-01T00:00:00", "ms").astype(np.int64)
    for i, fsize in enumerate(log_sizes):
        service = f"svc{i % n_services:02d}"
        day = np.datetime64(int(day0) + (i // n_services) * 86_400_000, "ms")
        data, _ = text.log_lines(fsize, int(day.astype(np.int64)))
        out.write(f"{LOG_DIR}/{service}/{service}-{str(day)[:10]}.log", "log", data)

    # Large binaries: 55 % incompressible (media, archives), 45 % database-like.
    hi = int(np.clip(size // 16, 64 * KIB, 128 * MIB))
    lo = hi // 4
    random_budget = int(binary_budget * 0.55)
    large: list[tuple[str, int]] = []
    for i, fsize in enumerate(_uniform_sizes(rng, random_budget, lo, hi)):
        rel = f"{DATA_DIR}/media/clip_{i:03d}.mp4"
        out.write(rel, "binary-random", _stream(rng, fsize, semi=False))
        large.append((rel, fsize))
    for i, fsize in enumerate(_uniform_sizes(rng, binary_budget - random_budget, lo, hi)):
        rel = f"{DATA_DIR}/db/table_{i:03d}.db"
        out.write(rel, "binary-semi", _stream(rng, fsize, semi=True))
        large.append((rel, fsize))

    _duplicates(rng, root, out, source_files, large, dup_budget)

    dataset.total_bytes = sum(k.bytes for k in dataset.kinds.values())
    dataset.files = sum(k.files for k in dataset.kinds.values())
    dataset.dirs = len({d for p in out.dirs for d in [p, *p.parents] if root in d.parents})
    dataset.seconds = time.perf_counter() - start
    return dataset


def _duplicates(
    rng: np.random.Generator,
    root: Path,
    out: _Writer,
    source_files: list[str],
    large: list[tuple[str, int]],
    budget: int,
) -> None:
    """A third each: a copied subtree of small files, copied large files, edited copies."""
    files_budget = budget // 3
    large_budget = budget // 3
    modified_budget = budget - files_budget - large_budget

    done = 0
    for idx in rng.permutation(len(source_files)):
        if done >= files_budget:
            break
        rel = source_files[int(idx)]
        data = (root / rel).read_bytes()[: files_budget - done]
        done += out.write(f"{COPY_DIR}/{rel}", "dup-files", data)

    order = [large[int(i)] for i in rng.permutation(len(large))]
    done = 0
    while done < large_budget and order:
        rel, fsize = order.pop()
        n = min(fsize, large_budget - done)
        done += out.write(f"{COPY_DIR}/{rel}.bak", "dup-large", _copy(root / rel, n))

    done = 0
    order = order or [large[int(i)] for i in rng.permutation(len(large))]
    while done < modified_budget and order:
        rel, fsize = order.pop()
        n = min(fsize, modified_budget - done)
        copy = bytearray((root / rel).read_bytes()[:n])
        for _ in range(int(rng.integers(2, 6))):  # a few KiB overwritten here and there
            length = min(len(copy), int(rng.integers(KIB, 8 * KIB)))
            at = int(rng.integers(0, len(copy) - length + 1))
            copy[at : at + length] = _random_block(rng, length)
        if len(copy) > 2 * KIB:  # a small insertion shifts everything after it
            at = int(rng.integers(0, len(copy) // 2))
            insert = _random_block(rng, int(rng.integers(16, 512)))
            copy[at:at] = insert
            del copy[n:]  # keep the budget exact
        done += out.write(f"{COPY_DIR}/{rel}.v2", "dup-modified", bytes(copy))


def _copy(path: Path, n: int) -> Iterator[bytes]:
    """First n bytes of path, in blocks."""
    with open(path, "rb") as fh:
        while n > 0:
            block = fh.read(min(BLOCK, n))
            if not block:
                return
            n -= len(block)
            yield block


# --------------------------------------------------------------------------- mutation


def _files_under(root: Path, top: str) -> list[tuple[str, int]]:
    """(relative path, size) of every file under root/top, sorted for determinism."""
    found: list[tuple[str, int]] = []
    base = root / top
    if not base.is_dir():
        return found
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            path = Path(dirpath) / name
            found.append((path.relative_to(root).as_posix(), path.stat().st_size))
    found.sort()
    return found


def tree_bytes(root: Path | str) -> int:
    """Total size of the regular files under root."""
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def mutate(root: Path | str, fraction: float = 0.01, seed: int = 1) -> Mutation:
    """Change ~fraction of a generated tree the way a day on a server changes files.

    Of the bytes written: 40 % small in-place overwrites (1-8 KiB each, 8 KiB-aligned, about
    one per 64 KiB) inside hot regions of 0.5-2 MiB in a quarter of the large files, as
    database pages change; 30 % log lines appended to a tenth of the logs; 10 % lines
    replaced in the middle of small files (so later bytes shift); 20 % new small files.
    A few small files are deleted as well (counted separately).
    """
    root = Path(root)
    rng = np.random.default_rng([seed, 0x6D75])
    text = _Text(rng)
    total = tree_bytes(root)
    result = Mutation(seed=seed, fraction=fraction, dataset_bytes=total)
    budget = max(1, int(total * fraction))

    large = _files_under(root, DATA_DIR)
    logs = _files_under(root, LOG_DIR)
    small = _files_under(root, SOURCE_DIR)

    # In-place overwrites in hot regions of some large files.
    overwrite_budget = int(budget * 0.40)
    if large:
        chosen = sorted(
            int(p) for p in rng.permutation(len(large))[: max(1, round(len(large) / 4))]
        )
        slot = 8 * KIB
        # Hot regions of 512 KiB - 2 MiB, enough of them for about one edit per 64 KiB.
        wanted_slots = 8 * overwrite_budget // (4 * KIB + KIB // 2)
        regions: list[tuple[str, int, int]] = []  # (file, first slot, slot count)
        have = tries = 0
        while have < wanted_slots and tries < 100 * len(chosen) + 1000:
            rel, fsize = large[chosen[tries % len(chosen)]]
            tries += 1
            span = min(fsize // slot, int(rng.integers(64, 257)))
            if span < 1:
                continue
            first = int(rng.integers(0, fsize // slot - span + 1))
            regions.append((rel, first, span))
            have += span
        used: set[tuple[str, int]] = set()
        edits: dict[str, list[tuple[int, int]]] = {}
        attempts = 0
        while regions and result.overwritten_bytes < overwrite_budget and attempts < 100_000:
            attempts += 1
            rel, first, span = regions[int(rng.integers(len(regions)))]
            s = first + int(rng.integers(span))
            if (rel, s) in used:
                continue
            used.add((rel, s))
            length = min(
                int(rng.integers(KIB, slot + 1)), overwrite_budget - result.overwritten_bytes
            )
            length = max(1, length)
            edits.setdefault(rel, []).append((s * slot, length))
            result.overwritten_bytes += length
            result.overwrites += 1
        for rel, spots in sorted(edits.items()):
            with open(root / rel, "r+b") as fh:
                for offset, length in sorted(spots):
                    fh.seek(offset)
                    fh.write(_random_block(rng, length))
        result.overwritten_files = len(edits)

    # Appends to some logs.
    append_budget = int(budget * 0.30)
    if logs:
        picks = sorted(int(p) for p in rng.permutation(len(logs))[: max(1, len(logs) // 10)])
        share = append_budget // len(picks)
        for n, i in enumerate(picks):
            amount = share + (append_budget - share * len(picks) if n == len(picks) - 1 else 0)
            if amount <= 0:
                continue
            data, _ = text.log_lines(
                amount, int(np.datetime64("2024-06-01", "ms").astype(np.int64))
            )
            with open(root / logs[i][0], "ab") as fh:
                fh.write(data)
            result.appended_bytes += len(data)
            result.appended_files += 1

    # A few edited small files: some lines in the middle replaced by new ones.
    edit_budget = int(budget * 0.10)
    pending = [int(p) for p in rng.permutation(len(small))]
    while small and result.edited_bytes < edit_budget and pending:
        i = pending.pop()
        path = root / small[i][0]
        data = path.read_bytes()
        at = int(rng.integers(0, len(data) // 2 + 1))
        cut = int(rng.integers(0, min(4 * KIB, len(data) - at) + 1))
        new = text.source_file(
            min(int(rng.integers(KIB, 8 * KIB)), edit_budget - result.edited_bytes)
        )
        path.write_bytes(data[:at] + new + data[at + cut :])
        result.edited_bytes += len(new)
        result.edited_files += 1

    # New small files, some in a new directory, some beside existing ones.
    new_budget = budget - overwrite_budget - append_budget - edit_budget
    existing = sorted({rel.rsplit("/", 1)[0] for rel, _ in small}) or [SOURCE_DIR]
    n = 0
    while result.new_bytes < new_budget:
        fsize = min(int(rng.integers(512, 24 * KIB)), new_budget - result.new_bytes)
        folder = (
            f"{SOURCE_DIR}/new_feature" if n % 2 else existing[int(rng.integers(len(existing)))]
        )
        path = root / folder / f"added_{seed}_{n}.c"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.source_file(fsize))
        result.new_bytes += fsize
        result.new_files += 1
        n += 1

    # A few deletions.
    for i in pending[: max(1, len(small) // 500)]:
        path = root / small[i][0]
        result.deleted_bytes += path.stat().st_size
        result.deleted_files += 1
        path.unlink()
    return result


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Generate (and optionally mutate) a data set by hand, e.g. to inspect it."""
    parser = argparse.ArgumentParser(prog="python -m bench.datagen", description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--size", default="1G", help="total size, e.g. 1G or 200M")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mutate", type=float, metavar="FRACTION", help="then change this share")
    args = parser.parse_args(argv)
    report: dict[str, object] = {
        "dataset": generate(args.root, parse_size(args.size), args.seed).to_dict()
    }
    if args.mutate:
        report["mutation"] = mutate(args.root, args.mutate, args.seed).to_dict()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
