"""The kernel-source data set: fetched .debs reused, extraction once, dpkg-like upgrade."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench.datasets import KernelSet
from bench.treecmp import compare_trees

from bench import kernel_source
from tests.bench.conftest import MakeDeb, source_tarball

TOP = "linux-source-6.1"


def write_tree(root: Path, files: dict[str, str], mtime: int) -> Path:
    """Files by relative path; every file and directory gets mtime."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            os.utime(Path(dirpath) / name, (mtime, mtime), follow_symlinks=False)
        os.utime(dirpath, (mtime, mtime))
    return root


RELEASE_A = {
    "Makefile": "VERSION = 6\nSUBLEVEL = 190\n",
    "kernel/sched/core.c": "int schedule(void) { return 0; }\n" * 50,
    "kernel/fork.c": "int fork(void) { return 1; }\n" * 40,
    "drivers/old/gone.c": "removed in B\n",
    "Documentation/index.rst": "docs\n" * 30,
}
RELEASE_B = {
    "Makefile": "VERSION = 6\nSUBLEVEL = 192\n",
    "kernel/sched/core.c": "int schedule(void) { return 0; }\n" * 50,
    "kernel/fork.c": "int fork(void) { return 2; }\n" * 40,
    "drivers/new/added.c": "new in B\n",
    "Documentation/index.rst": "docs\n" * 30,
}


@pytest.fixture
def releases(tmp_path: Path, make_deb: MakeDeb) -> Path:
    """A cache dir with two fake linux-source .debs under debs/; returns the cache."""
    for version, files, mtime in (
        ("1.0-1", RELEASE_A, 1_700_000_000),
        ("1.1-1", RELEASE_B, 1_710_000_000),
    ):
        tree = write_tree(tmp_path / "trees" / version, files, mtime)
        if version == "1.0-1":
            (tree / "scripts").mkdir()
            os.symlink("../Makefile", tree / "scripts" / "Makefile.link")
            os.symlink("kernel", tree / "kernel-link")
        tarball = source_tarball(tree, tmp_path, TOP)
        deb = make_deb(kernel_source.PACKAGE, version, {kernel_source.TARBALL: tarball})
        (tmp_path / "cache" / "debs").mkdir(parents=True, exist_ok=True)
        deb.rename(tmp_path / "cache" / "debs" / deb.name)
    return tmp_path / "cache"


def test_fetch_deb_reuses_a_downloaded_package(releases: Path) -> None:
    # No network involved: the package is already in the cache under apt's file name.
    deb = kernel_source.fetch_deb("1.0-1", releases / "debs")
    assert deb == releases / "debs" / "linux-source-6.1_1.0-1_all.deb"


def test_extract_release_unpacks_the_tarball_once(releases: Path) -> None:
    tree = kernel_source.release_tree("1.0-1", releases)
    assert tree.name == TOP
    assert (tree / "kernel" / "fork.c").read_text() == RELEASE_A["kernel/fork.c"]
    assert os.readlink(tree / "scripts" / "Makefile.link") == "../Makefile"
    # A second call reuses the extracted tree instead of unpacking again.
    (tree / "Makefile").write_text("edited\n")
    again = kernel_source.release_tree("1.0-1", releases)
    assert again == tree
    assert (again / "Makefile").read_text() == "edited\n"
    # Only the tree and its marker are left behind: the unpacked .deb is gone.
    assert sorted(p.name for p in tree.parent.iterdir()) == [kernel_source.COMPLETE, TOP]


def test_extract_release_rejects_a_package_without_the_tarball(
    tmp_path: Path, make_deb: MakeDeb
) -> None:
    other = tmp_path / "README"
    other.write_text("no source here\n")
    deb = make_deb("linux-source-6.1", "9.9-1", {"usr/share/doc/README": other})
    with pytest.raises(FileNotFoundError, match=r"linux-source-6\.1\.tar\.xz"):
        kernel_source.extract_release(deb, tmp_path / "out")
    assert not (tmp_path / "out" / kernel_source.COMPLETE).exists()


def test_upgrade_in_place_leaves_exactly_the_new_release(releases: Path, tmp_path: Path) -> None:
    a = kernel_source.release_tree("1.0-1", releases)
    b = kernel_source.release_tree("1.1-1", releases)
    source = tmp_path / "work" / "data"
    kernel_source.copy_release(a, source)
    same_before = os.lstat(source / "kernel" / "sched" / "core.c")

    upgrade = kernel_source.upgrade_in_place(b, source)

    diff = compare_trees(b, source)
    assert diff.identical, diff.summary()
    assert diff.wrong_mtime == [] and diff.wrong_mode == []
    # Unchanged content still gets a new file (new inode) with the new release's mtime.
    same_after = os.lstat(source / "kernel" / "sched" / "core.c")
    assert same_after.st_ino != same_before.st_ino
    assert same_after.st_mtime == 1_710_000_000 != same_before.st_mtime
    assert upgrade.files == len(RELEASE_B)
    assert upgrade.changed_files == 3  # Makefile, fork.c, added.c
    assert upgrade.changed_bytes == sum(
        len(RELEASE_B[k]) for k in ("Makefile", "kernel/fork.c", "drivers/new/added.c")
    )
    # drivers/old/gone.c, scripts/Makefile.link and kernel-link (a link, not a directory)
    assert upgrade.deleted_files == 3
    assert upgrade.deleted_dirs == 2  # drivers/old and scripts
    assert 0 < upgrade.changed_fraction < 1


def test_kernel_set_lays_and_upgrades_with_a_summary(releases: Path, tmp_path: Path) -> None:
    dataset = KernelSet(releases=("1.0-1", "1.1-1"), cache=releases)
    dataset.fetch()
    source = tmp_path / "work" / "data"
    laid = dataset.lay(source)
    assert laid["release"] == "1.0-1"
    assert laid["files"] == len(RELEASE_A) + 2  # and the two symlinks
    assert laid["total_bytes"] == sum(
        os.lstat(Path(d) / n).st_size for d, _s, names in os.walk(source) for n in names
    )
    changed = dataset.change(source)
    assert changed["release"] == "1.1-1"
    assert changed["bytes_after"] == sum(len(t) for t in RELEASE_B.values())
    text = dataset.summary(laid, changed)
    assert "`linux-source-6.1` 1.0-1" in text
    assert "upgraded in place to 1.1-1" in text
    assert "3 of them" in text
