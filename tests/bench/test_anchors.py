"""Installing the benchmark's anchors: private apt state, unpacking, version checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench.anchors import ANCHORS, Anchor, InstallError

from bench import anchors
from tests.bench.conftest import MakeDeb


def fake_tool(path: Path, version_line: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(0o755)
    return path


def test_sources_list_names_the_suite_and_the_keyring() -> None:
    line = anchors.sources_list("trixie")
    assert line == (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian trixie main\n"
    )


def test_private_apt_state_keeps_everything_in_its_directory(tmp_path: Path) -> None:
    options = anchors.prepare_apt_state(tmp_path, "trixie")
    assert (tmp_path / "sources.list").read_text() == anchors.sources_list("trixie")
    assert (tmp_path / "lists" / "partial").is_dir()
    assert (tmp_path / "cache" / "archives" / "partial").is_dir()
    settings = dict(o.split("=", 1) for o in options if o != "-o")
    # No part of the machine's own apt configuration is read or written.
    assert settings["Dir::Etc::sourceparts"] == "-"
    for key in ("Dir::Etc::sourcelist", "Dir::State::Lists", "Dir::Cache"):
        assert Path(settings[key]).is_relative_to(tmp_path), key


def test_unpack_debs_extracts_without_installing(tmp_path: Path, make_deb: MakeDeb) -> None:
    tool = fake_tool(tmp_path / "src" / "restic", "restic 0.18.0 fake")
    deb = make_deb("bench-fake-tool", "1.0", {"usr/bin/restic": tool})
    anchors.unpack_debs([deb], tmp_path / "root")
    out = subprocess.run([tmp_path / "root" / "usr" / "bin" / "restic"], capture_output=True)
    assert out.stdout == b"restic 0.18.0 fake\n"
    status = subprocess.run(["dpkg-query", "-W", "bench-fake-tool"], capture_output=True)
    assert status.returncode != 0  # not registered with dpkg


def test_python_wrapper_runs_the_script_with_its_path(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "benchmod.py").write_text("NAME = 'from the wrapper path'\n")
    script = tmp_path / "entry.py"
    script.write_text("import sys, benchmod\nprint(benchmod.NAME, sys.argv[1:])\n")
    wrapper = tmp_path / "bin" / "tool"
    anchors.write_python_wrapper(wrapper, sys.executable, script, lib)
    out = subprocess.run([wrapper, "a b", "c"], capture_output=True, text=True, check=True)
    assert out.stdout == "from the wrapper path ['a b', 'c']\n"


def test_installed_version_checks_the_version_prefix(tmp_path: Path) -> None:
    anchor = ANCHORS["restic-0.18"]
    assert anchor.installed_version(tmp_path) is None
    fake_tool(anchor.executable(tmp_path), "restic 0.14.0 compiled with go1.19.8")
    assert anchor.installed_version(tmp_path) is None
    fake_tool(anchor.executable(tmp_path), "restic 0.18.0 compiled with go1.24.4")
    assert anchor.installed_version(tmp_path) == "restic 0.18.0 compiled with go1.24.4"


def test_install_keeps_a_cached_tool(tmp_path: Path) -> None:
    anchor = ANCHORS["borg-1.4"]
    exe = fake_tool(anchor.executable(tmp_path), "borg 1.4.5")
    log: list[str] = []
    assert anchor.install(tmp_path, log=log.append) == "borg 1.4.5"
    assert log == [] and exe.exists()


def test_install_fails_clearly_when_the_installer_brings_another_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchor = Anchor("restic-9.9", "restic", "restic 9.9.", "nowhere")

    def wrong(a: Anchor, home: Path, log: anchors.Log) -> None:
        fake_tool(home / "root" / "usr" / "bin" / "restic", "restic 0.14.0")

    monkeypatch.setitem(anchors.INSTALLERS, "restic-9.9", wrong)
    with pytest.raises(InstallError, match=r"expected restic 9\.9\.\*, got restic 0\.14\.0"):
        anchor.install(tmp_path)


def test_missing_debian_packages_knows_installed_ones() -> None:
    if shutil.which("dpkg-query") is None:
        pytest.skip("not a Debian machine")
    assert anchors.missing_debian_packages(("dpkg", "bench-no-such-package")) == [
        "bench-no-such-package"
    ]


def test_run_reports_the_failing_command() -> None:
    with pytest.raises(InstallError, match="exit 3"):
        anchors.run(["sh", "-c", "echo why >&2; exit 3"])


def test_restic_018_comes_from_trixie_without_touching_apt_sources(tmp_path: Path) -> None:
    """The one real download: Debian trixie's restic, through a private apt state."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("not a Debian machine")
    sources = sorted(Path("/etc/apt").rglob("*"))
    before = {p: p.read_bytes() for p in sources if p.is_file()}
    version = ANCHORS["restic-0.18"].install(tmp_path)
    assert version.startswith("restic 0.18.")
    assert {p: p.read_bytes() for p in sorted(Path("/etc/apt").rglob("*")) if p.is_file()} == before
    debs = list((tmp_path / "restic-0.18" / "debs").glob("restic_0.18*.deb"))
    assert len(debs) == 1
