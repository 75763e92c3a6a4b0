"""The real-world data set: two releases of the Linux kernel source from Debian's packages.

``linux-source-6.1`` ships the whole source tree as one ``.tar.xz`` (about 78,600 files,
1.24 GiB unpacked). Two point releases are fetched with ``apt-get download`` into
``bench/cache/debs/`` and unpacked once into ``bench/cache/linux/<version>/``; both are
reused from the cache afterwards. The benchmark backs up release A, then "upgrades" the
source directory to release B in place the way dpkg does (every file written anew with
B's mtime, files gone from B removed), which changes every file's mtime but only a few
per cent of the content.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.anchors import CACHE, apt_download, unpack_debs

PACKAGE = "linux-source-6.1"
RELEASES = ("6.1.190-1", "6.1.192-1")
TARBALL = "usr/src/linux-source-6.1.tar.xz"
COMPLETE = ".bench-complete"
BLOCK = 1024 * 1024


def deb_name(version: str, package: str = PACKAGE) -> str:
    """The file name apt-get download gives a package of architecture all."""
    return f"{package}_{version}_all.deb"


def fetch_deb(version: str, debs: Path = CACHE / "debs", package: str = PACKAGE) -> Path:
    """The release's .deb, downloaded into debs unless it is already there."""
    path = debs / deb_name(version, package)
    if not path.exists():
        apt_download([f"{package}={version}"], debs)
    if not path.exists():
        raise FileNotFoundError(f"apt-get download did not produce {path}")
    return path


def extract_release(deb: Path, dest: Path, tarball: str = TARBALL) -> Path:
    """Unpack the source tarball inside deb into dest once; return the tree's top directory.

    A marker file written last makes an interrupted extraction start over next time.
    """
    marker = dest / COMPLETE
    if marker.exists():
        return dest / marker.read_text().strip()
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="deb-", dir=dest.parent) as tmp:
        unpack_debs([deb], Path(tmp))
        archive = Path(tmp) / tarball
        if not archive.exists():
            raise FileNotFoundError(f"{deb.name} has no {tarball}")
        subprocess.run(["tar", "-xJf", str(archive), "-C", str(dest)], check=True)
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise ValueError(f"{deb.name}: expected one top directory in the tarball, got {tops}")
    marker.write_text(tops[0].name + "\n")
    return tops[0]


def release_tree(version: str, cache: Path = CACHE) -> Path:
    """The unpacked source tree of one release, fetched and extracted when missing."""
    deb = fetch_deb(version, cache / "debs")
    return extract_release(deb, cache / "linux" / version)


@dataclass
class Upgrade:
    """What replacing the tree with another release did."""

    files: int = 0  # regular files and symlinks of the new release
    bytes: int = 0
    changed_files: int = 0  # new, or content differs
    changed_bytes: int = 0  # bytes of those files
    deleted_files: int = 0  # with those inside deleted directories
    deleted_dirs: int = 0

    @property
    def changed_fraction(self) -> float:
        return self.changed_bytes / self.bytes if self.bytes else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "changed_fraction": self.changed_fraction}


def _same_file(a: Path, b: Path, size: int) -> bool:
    try:
        if os.lstat(b).st_size != size:
            return False
        with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
            while chunk := fa.read(BLOCK):
                if chunk != fb.read(BLOCK):
                    return False
        return True
    except OSError:
        return False


def count_files(root: Path) -> int:
    """Regular files and symlinks under root (a symlink to a directory counts as one)."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        count += len(filenames) + sum(os.path.islink(os.path.join(dirpath, d)) for d in dirnames)
    return count


def copy_release(release: Path, target: Path) -> None:
    """A fresh copy of release at target, with its modes and mtimes (``cp -a``)."""
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(release), str(target)], check=True)


def upgrade_in_place(release: Path, target: Path) -> Upgrade:
    """Make target hold release the way a package upgrade does.

    Each file is written to a temporary name beside it and renamed over the old one (a
    new inode, the release's mode and mtime); entries the release does not have are
    removed. Content changes are counted against what target held before.
    """
    stats = Upgrade()
    for dirpath, dirnames, filenames in os.walk(release):
        rel = os.path.relpath(dirpath, release)
        dst_dir = target / rel if rel != "." else target
        if dst_dir.is_symlink() or (dst_dir.exists() and not dst_dir.is_dir()):
            dst_dir.unlink()
        dst_dir.mkdir(parents=True, exist_ok=True)
        # os.walk lists a symlink to a directory among the directories; it is copied as a link.
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in [*filenames, *links]:
            src, dst = Path(dirpath) / name, dst_dir / name
            st = os.lstat(src)
            stats.files += 1
            stats.bytes += st.st_size
            if not _same_file(src, dst, st.st_size):
                stats.changed_files += 1
                stats.changed_bytes += st.st_size
            tmp = dst_dir / f".{name}.bench-new"
            if os.path.islink(src):
                os.symlink(os.readlink(src), tmp)
            else:
                shutil.copy2(src, tmp)
            if os.path.isdir(dst) and not os.path.islink(dst):
                shutil.rmtree(dst)
            os.replace(tmp, dst)
        wanted = set(filenames) | set(dirnames)
        for entry in os.scandir(dst_dir):
            if entry.name in wanted:
                continue
            if entry.is_dir(follow_symlinks=False):
                for _d, subdirs, names in os.walk(entry.path):
                    stats.deleted_files += len(names)
                    stats.deleted_dirs += len(subdirs)
                stats.deleted_dirs += 1
                shutil.rmtree(entry.path)
            else:
                stats.deleted_files += 1
                os.unlink(entry.path)
    # Directory mtimes last: writing files into them moved them.
    for dirpath, _dirnames, _filenames in os.walk(release):
        rel = os.path.relpath(dirpath, release)
        shutil.copystat(dirpath, target / rel if rel != "." else target)
    return stats
