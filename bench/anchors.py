"""The benchmark's anchor tools, installed into a cache under the repository when missing.

Four anchors, each from a package registry so every machine gets the same build:

- restic 0.18: Debian trixie's package, fetched with ``apt-get download`` against a
  trixie source list kept in a temporary directory (the machine's own apt sources are
  never changed) and unpacked with ``dpkg -x`` (restic is one static binary);
- restic 0.14 and borg 1.2: the machine's (bookworm's) packages, downloaded and unpacked
  the same way; borg runs on the system's ``/usr/bin/python3`` with its Python
  dependencies unpacked beside it, through a small wrapper script, so nothing is
  installed into the system;
- borg 1.4: ``borgbackup==1.4.*`` from PyPI in its own virtual environment. PyPI has no
  Linux wheel for it, so pip builds it, which needs the C headers of its libraries
  (installed with ``apt-get install`` from the machine's normal sources when missing).

Everything lands in ``bench/cache/tools/<name>/``; an anchor whose executable runs and
reports the expected version is not installed again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.tools import REPO_ROOT

CACHE = REPO_ROOT / "bench" / "cache"
TOOLS_CACHE = CACHE / "tools"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SYSTEM_PYTHON = "/usr/bin/python3"
BORG_BUILD_DEPS = ("pkg-config", "libacl1-dev", "libssl-dev", "liblz4-dev", "libzstd-dev")
BORG_BUILD_DEPS_OPTIONAL = ("libxxhash-dev",)  # borg falls back to its bundled copy

Log = Callable[[str], None]


class InstallError(RuntimeError):
    """An anchor could not be installed; the message says which command failed."""


def _quiet(_line: str) -> None:
    """Default log: say nothing."""


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command, returning its output; a failure raises InstallError with its tail."""
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=3600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{' '.join(argv)}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        raise InstallError(f"{' '.join(argv)} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


# --------------------------------------------------------------------------- apt and dpkg


def sources_list(suite: str, mirror: str = DEBIAN_MIRROR, keyring: str = DEBIAN_KEYRING) -> str:
    """A one-line apt source list for another Debian suite's main component."""
    return f"deb [signed-by={keyring}] {mirror} {suite} main\n"


def apt_options(state: Path) -> list[str]:
    """apt-get options that read sources and keep lists and caches under state only."""
    return [
        "-o",
        f"Dir::Etc::sourcelist={state / 'sources.list'}",
        "-o",
        "Dir::Etc::sourceparts=-",
        "-o",
        f"Dir::State::Lists={state / 'lists'}",
        "-o",
        f"Dir::Cache={state / 'cache'}",
        "-o",
        "APT::Get::List-Cleanup=0",
    ]


def prepare_apt_state(state: Path, suite: str) -> list[str]:
    """Lay out a private apt state for suite and return the options that use it."""
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text(sources_list(suite))
    return apt_options(state)


def apt_download(packages: list[str], dest: Path, *, suite: str | None = None) -> list[Path]:
    """Download .debs into dest: from the machine's sources, or from suite's in a temp dir.

    ``pkg=version`` pins a version. Returns the .deb files now in dest.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if suite is None:
        run(["apt-get", "download", *packages], cwd=dest)
    else:
        with tempfile.TemporaryDirectory(prefix=f"apt-{suite}-") as tmp:
            options = prepare_apt_state(Path(tmp), suite)
            run(["apt-get", *options, "update"])
            run(["apt-get", *options, "download", *packages], cwd=dest)
    return sorted(dest.glob("*.deb"))


def unpack_debs(debs: list[Path], root: Path) -> None:
    """``dpkg -x`` every package into root (no scripts run, nothing registered)."""
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        run(["dpkg", "-x", str(deb), str(root)])


def missing_debian_packages(packages: tuple[str, ...]) -> list[str]:
    """Those of packages that dpkg does not list as installed."""
    missing = []
    for name in packages:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or "install ok installed" not in proc.stdout:
            missing.append(name)
    return missing


def write_python_wrapper(path: Path, python: str, script: Path, pythonpath: Path) -> None:
    """An executable that runs script on python with pythonpath first on its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH='{pythonpath}'${{PYTHONPATH:+:$PYTHONPATH}} exec {python} '{script}' \"$@\"\n"
    )
    path.chmod(0o755)


# --------------------------------------------------------------------------- anchors


@dataclass(frozen=True)
class Anchor:
    """One tool at one version: where it lives in the cache and how it gets there."""

    name: str  # e.g. "restic-0.18": the column header in the report
    kind: str  # "restic" or "borg": which command lines it takes
    version_prefix: str  # what `--version` must start with, e.g. "restic 0.18."
    source: str  # where it comes from, for the report

    def home(self, cache: Path = TOOLS_CACHE) -> Path:
        return cache / self.name

    def executable(self, cache: Path = TOOLS_CACHE) -> Path:
        home = self.home(cache)
        if self.kind == "restic":
            return home / "root" / "usr" / "bin" / "restic"
        if self.name == "borg-1.2":
            return home / "bin" / "borg"
        return home / "venv" / "bin" / "borg"

    def version_argv(self, cache: Path = TOOLS_CACHE) -> list[str]:
        exe = str(self.executable(cache))
        return [exe, "version"] if self.kind == "restic" else [exe, "--version"]

    def installed_version(self, cache: Path = TOOLS_CACHE) -> str | None:
        """The version line of the cached tool, or None when absent, broken or wrong."""
        if not os.access(self.executable(cache), os.X_OK):
            return None
        try:
            out = run(self.version_argv(cache))
        except InstallError:
            return None
        line = out.strip().splitlines()[0] if out.strip() else ""
        return line if line.startswith(self.version_prefix) else None

    def install(self, cache: Path = TOOLS_CACHE, log: Log = _quiet) -> str:
        """Install when missing; return the exact version line. Raises InstallError."""
        if found := self.installed_version(cache):
            return found
        home = self.home(cache)
        shutil.rmtree(home, ignore_errors=True)
        log(f"installing {self.name} from {self.source} into {home}")
        INSTALLERS[self.name](self, home, log)
        if found := self.installed_version(cache):
            return found
        got = "nothing"
        try:
            got = run(self.version_argv(cache)).strip() or "nothing"
        except InstallError as exc:
            got = str(exc)
        raise InstallError(f"{self.name}: expected {self.version_prefix}*, got {got}")


def _install_restic(suite: str | None) -> Callable[[Anchor, Path, Log], None]:
    def install(anchor: Anchor, home: Path, log: Log) -> None:
        debs = apt_download(["restic"], home / "debs", suite=suite)
        unpack_debs(debs, home / "root")

    return install


def _install_borg_deb(anchor: Anchor, home: Path, log: Log) -> None:
    """bookworm's borg and its pure-Python dependencies, run on the system's python3."""
    packages = ["borgbackup", "python3-msgpack", "python3-packaging", "python3-pkg-resources"]
    debs = apt_download(packages, home / "debs")
    root = home / "root"
    unpack_debs(debs, root)
    write_python_wrapper(
        anchor.executable(home.parent),
        SYSTEM_PYTHON,
        root / "usr" / "bin" / "borg",
        root / "usr" / "lib" / "python3" / "dist-packages",
    )


def _install_borg_pypi(requirement: str) -> Callable[[Anchor, Path, Log], None]:
    def install(anchor: Anchor, home: Path, log: Log) -> None:
        wanted = BORG_BUILD_DEPS + BORG_BUILD_DEPS_OPTIONAL
        if missing := missing_debian_packages(wanted):
            log(f"  apt-get install {' '.join(missing)} (headers pip needs to build borg)")
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env)
        venv = home / "venv"
        run([sys.executable, "-m", "venv", str(venv)])
        log(f"  pip install {requirement} (built from source: a few minutes)")
        run([str(venv / "bin" / "pip"), "install", "--quiet", requirement])

    return install


ANCHORS: dict[str, Anchor] = {
    a.name: a
    for a in (
        Anchor("restic-0.18", "restic", "restic 0.18.", "Debian trixie's restic package"),
        Anchor("restic-0.14", "restic", "restic 0.14.", "Debian bookworm's restic package"),
        Anchor("borg-1.2", "borg", "borg 1.2.", "Debian bookworm's borgbackup package"),
        Anchor("borg-1.4", "borg", "borg 1.4.", "PyPI borgbackup==1.4.*, own virtualenv"),
    )
}
INSTALLERS: dict[str, Callable[[Anchor, Path, Log], None]] = {
    "restic-0.18": _install_restic("trixie"),
    "restic-0.14": _install_restic(None),
    "borg-1.2": _install_borg_deb,
    "borg-1.4": _install_borg_pypi("borgbackup==1.4.*"),
}
# The anchor the goals are judged against.
REFERENCE = "restic-0.18"


def main(argv: list[str] | None = None) -> int:
    """Install every anchor (or those named) and print their versions."""
    names = argv if argv else list(ANCHORS)
    status = 0
    for name in names:
        anchor = ANCHORS.get(name)
        if anchor is None:
            print(f"unknown anchor {name}; choose from {', '.join(ANCHORS)}", file=sys.stderr)
            return 2
        try:
            print(f"{name}: {anchor.install(log=print)}  ({anchor.executable()})")
        except InstallError as exc:
            print(f"{name}: NOT INSTALLED: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
