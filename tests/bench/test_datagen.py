"""The benchmark's data generator: deterministic, the promised size and mix, a real 1 % change.

The benchmark's figures only mean something if every tool sees the same data and the
change really is the size it claims, so these properties are checked on a small tree.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest
from bench.datagen import (
    COPY_DIR,
    DATA_DIR,
    LOG_DIR,
    MIB,
    SOURCE_DIR,
    Dataset,
    generate,
    mutate,
    parse_size,
    tree_bytes,
)

SIZE = 5 * MIB


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def ratio(data: bytes) -> float:
    return len(zlib.compress(data, 6)) / len(data)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset]:
    root = tmp_path_factory.mktemp("gen") / "data"
    return root, generate(root, SIZE, seed=3)


def test_parse_size() -> None:
    assert parse_size("1G") == 1 << 30
    assert parse_size("200M") == 200 << 20
    assert parse_size("5MiB") == 5 << 20
    assert parse_size("512k") == 512 << 10
    assert parse_size("1234") == 1234
    with pytest.raises(ValueError):
        parse_size("lots")


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", SIZE, seed=11)
    generate(tmp_path / "b", SIZE, seed=11)
    generate(tmp_path / "c", SIZE, seed=12)
    a = digests(tmp_path / "a")
    assert a == digests(tmp_path / "b")
    assert a != digests(tmp_path / "c")


def test_refuses_a_non_empty_root(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate(tmp_path, SIZE)


@pytest.mark.parametrize("size", [SIZE, 3 * MIB + 12345])
def test_size_within_five_percent(tmp_path: Path, size: int) -> None:
    dataset = generate(tmp_path / "d", size, seed=1)
    on_disk = tree_bytes(tmp_path / "d")
    assert dataset.total_bytes == on_disk
    assert abs(on_disk - size) <= 0.05 * size


def test_composition(tree: tuple[Path, Dataset]) -> None:
    root, dataset = tree
    cats = dataset.category_bytes()
    total = dataset.total_bytes
    assert cats["text"] / total == pytest.approx(0.40, abs=0.03)
    assert cats["binary"] / total == pytest.approx(0.45, abs=0.03)
    assert cats["duplicate"] / total == pytest.approx(0.15, abs=0.03)

    sources = [p for p in (root / SOURCE_DIR).rglob("*") if p.is_file()]
    assert len(sources) >= 50, "many small files"
    assert sorted(p.stat().st_size for p in sources)[len(sources) // 2] < 16 * 1024
    assert max(len(p.relative_to(root).parts) for p in sources) >= 4, "nested directories"
    text = b"".join(p.read_bytes() for p in sources[:200])
    assert ratio(text) < 0.5, "source-like text compresses"
    logs = sorted((root / LOG_DIR).rglob("*.log"))
    assert logs
    assert ratio(logs[0].read_bytes()) < 0.5, "logs compress"
    assert logs[0].read_bytes()[:4].isdigit(), "log lines start with a timestamp"

    media = sorted((root / DATA_DIR / "media").iterdir())
    db = sorted((root / DATA_DIR / "db").iterdir())
    assert media and db
    median_source = sorted(p.stat().st_size for p in sources)[len(sources) // 2]
    assert min(p.stat().st_size for p in media + db) > 8 * median_source, "large files"
    assert ratio(media[0].read_bytes()) > 0.99, "random binaries do not compress"
    assert 0.3 < ratio(db[0].read_bytes()) < 0.9, "database-like files compress partly"


def test_duplicates_really_duplicate(tree: tuple[Path, Dataset]) -> None:
    root, _ = tree
    copies = root / COPY_DIR
    small = [p for p in (copies / SOURCE_DIR).rglob("*") if p.is_file()]
    assert small
    for copy in small:
        original = root / copy.relative_to(copies)
        assert original.read_bytes().startswith(copy.read_bytes())
    backups = sorted(copies.rglob("*.bak"))
    assert backups
    for copy in backups:
        original = root / copy.relative_to(copies).with_suffix("")
        assert original.read_bytes().startswith(copy.read_bytes())
    edited = sorted(copies.rglob("*.v2"))
    assert edited
    for copy in edited:
        source = (root / copy.relative_to(copies).with_suffix("")).read_bytes()
        data = copy.read_bytes()
        assert data != source[: len(data)], "edited copies differ"
        pieces = [data[i : i + 256] for i in range(0, len(data) - 256, 8192)]
        found = sum(source.find(p) >= 0 for p in pieces)
        assert found >= 0.8 * len(pieces), "but mostly hold the original's bytes"


def test_mutate_changes_about_the_requested_fraction(tmp_path: Path) -> None:
    root = tmp_path / "m"
    generate(root, SIZE, seed=5)
    before = {rel: (root / rel).read_bytes() for rel in digests(root)}
    change = mutate(root, fraction=0.01, seed=5)
    after = {rel: (root / rel).read_bytes() for rel in digests(root)}

    assert change.dataset_bytes == SIZE
    assert change.changed_fraction == pytest.approx(0.01, rel=0.1)
    assert change.overwrites and change.appended_files and change.edited_files
    assert change.new_files and change.deleted_files

    new = set(after) - set(before)
    gone = set(before) - set(after)
    assert len(new) == change.new_files
    assert sum(len(after[r]) for r in new) == change.new_bytes
    assert len(gone) == change.deleted_files
    assert sum(len(before[r]) for r in gone) == change.deleted_bytes

    appended = 0
    overwritten_differ = 0
    for rel in set(before) & set(after):
        old, cur = before[rel], after[rel]
        if rel.startswith(LOG_DIR) and cur != old:
            assert cur.startswith(old), "logs only grow at the end"
            appended += len(cur) - len(old)
        elif rel.startswith(DATA_DIR):
            assert len(cur) == len(old), "large files are edited in place"
            overwritten_differ += sum(a != b for a, b in zip(old, cur, strict=True))
    assert appended == change.appended_bytes
    # A random byte equals the one it replaces 1 time in 256, hence the small margin.
    assert 0.95 * change.overwritten_bytes <= overwritten_differ <= change.overwritten_bytes


def test_mutate_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        generate(tmp_path / name, SIZE, seed=9)
    assert mutate(tmp_path / "a", seed=2) == mutate(tmp_path / "b", seed=2)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
