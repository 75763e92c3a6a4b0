"""Fixtures for the benchmark tests: small real Debian packages built with dpkg-deb."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

MakeDeb = Callable[[str, str, dict[str, Path]], Path]


def build_deb(out: Path, package: str, version: str, files: dict[str, Path]) -> Path:
    """A .deb of architecture all holding files (path inside the package -> source file)."""
    root = out / f"build-{package}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: bench <bench@example.invalid>\nDescription: test package\n"
    )
    for inside, src in files.items():
        dst = root / inside
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    deb = out / f"{package}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(root)
    return deb


def source_tarball(tree: Path, out: Path, top: str) -> Path:
    """tree packed as top/ in an .xz tarball, the way linux-source ships its source."""
    path = out / f"{top}-{tree.name}.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        tar.add(tree, arcname=top)
    return path


@pytest.fixture
def make_deb(tmp_path: Path) -> MakeDeb:
    """Build .debs under tmp_path/debs; needs dpkg-deb, which every Debian machine has."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    out = tmp_path / "debs"
    out.mkdir(exist_ok=True)

    def make(package: str, version: str, files: dict[str, Path]) -> Path:
        return build_deb(out, package, version, files)

    return make
