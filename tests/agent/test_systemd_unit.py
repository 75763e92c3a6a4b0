"""The agent's systemd unit: systemd accepts every line of it, and its command line is the CLI's."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "vaultwatch-agent.service"
INSTALLED_BINARY = "/opt/vaultwatch/bin/vaultwatch"


def _exec_start() -> list[str]:
    lines = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStart=")]
    assert len(lines) == 1
    return shlex.split(lines[0].removeprefix("ExecStart="))


def _vaultwatch() -> str:
    found = Path(sys.executable).with_name("vaultwatch")
    assert found.is_file(), "the test environment installs the vaultwatch command"
    return str(found)


def _verify(unit_text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of the unit, with the installed path pointing at this checkout."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: install systemd (scripts/test-services.sh does)")
    unit = directory / UNIT.name
    unit.write_text(unit_text.replace(INSTALLED_BINARY, _vaultwatch()))
    return subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` with no warning: a mistyped directive would be ignored silently."""
    result = _verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_the_units_command_line_is_one_the_agent_accepts() -> None:
    argv = _exec_start()
    assert argv[0] == INSTALLED_BINARY
    assert argv[1:3] == ["agent", "run"]
    result = subprocess.run(
        [_vaultwatch(), *argv[1:], "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr  # unknown options exit 2


def test_a_mistyped_directive_would_be_caught(tmp_path: Path) -> None:
    """The check above can fail: systemd reports what it ignores."""
    result = _verify(UNIT.read_text().replace("ProtectSystem=", "ProtectSystm="), tmp_path)
    assert "ProtectSystm" in result.stderr
