"""The systemd unit's privileges, applied for real with setpriv: the agent reads what it protects.

systemd cannot run here as PID 1, so the unit's SecureBits, capability bounding set,
ambient capabilities and NoNewPrivileges are read from the unit file and applied to a
real `vaultwatch repo backup` with util-linux `setpriv`, which sets the same kernel
state systemd sets before it executes the service.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.test_systemd_unit import UNIT

NOBODY = 65534
#: The kernel's capability numbers for the names the unit may use.
CAPABILITY_BITS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3}


def _directive(name: str, unit_text: str) -> list[str]:
    """The words of the last `Name=` line (systemd lets a later line replace an earlier one)."""
    values = [ln.split("=", 1)[1] for ln in unit_text.splitlines() if ln.startswith(name + "=")]
    return values[-1].split() if values else []


def _setpriv_argv(unit_text: str) -> list[str]:
    """setpriv options for the privileges the unit gives its service."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv is missing: install util-linux")
    bounding = [
        c.removeprefix("CAP_").lower() for c in _directive("CapabilityBoundingSet", unit_text)
    ]
    ambient = [c.removeprefix("CAP_").lower() for c in _directive("AmbientCapabilities", unit_text)]
    bits = [b.replace("-", "_") for b in _directive("SecureBits", unit_text)]
    argv = [setpriv, "--bounding-set", ",".join(["-all", *("+" + c for c in bounding)])]
    argv += ["--inh-caps", ",".join(["-all", *("+" + c for c in ambient)])]
    argv += ["--ambient-caps", ",".join(["-all", *("+" + c for c in ambient)])]
    if bits:
        argv += ["--securebits", ",".join("+" + b for b in bits)]
    if _directive("NoNewPrivileges", unit_text) == ["yes"]:
        argv.append("--no-new-privs")
    return [*argv, "--"]


def _vaultwatch() -> str:
    return str(Path(sys.executable).with_name("vaultwatch"))


@pytest.fixture
def private_files(tmp_path: Path) -> Path:
    """A directory of another user's 0600 file inside a 0700 directory, as on a real server."""
    if os.geteuid() != 0:
        pytest.fail("these tests apply the unit's privileges and must run as root")
    data = tmp_path / "data" / "home"
    data.mkdir(parents=True)
    secret = data / "private.txt"
    secret.write_text("only its owner may read this\n")
    secret.chmod(0o600)
    os.chown(secret, NOBODY, NOBODY)
    data.chmod(0o700)
    os.chown(data, NOBODY, NOBODY)
    return tmp_path / "data"


def _backup_under(unit_text: str, source: Path, tmp_path: Path) -> dict[str, object]:
    repo, passphrase = tmp_path / "repo", tmp_path / "passphrase"
    passphrase.write_text("systemd unit test passphrase\n")
    base = [_vaultwatch(), "repo", "--repo", str(repo), "--passphrase-file", str(passphrase)]
    subprocess.run(
        [*base, "init", "--kdf-memory", "8", "--kdf-time", "1"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    run = subprocess.run(
        [*_setpriv_argv(unit_text), *base, "--json", "backup", str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode in (0, 3), run.stderr
    summary: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return summary


def test_the_agent_runs_with_exactly_the_units_capabilities() -> None:
    text = UNIT.read_text()
    python = [sys.executable, "-c", "print(open('/proc/self/status').read())"]
    status = subprocess.run(
        [*_setpriv_argv(text), *python], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    effective = int(
        next(ln for ln in status.splitlines() if ln.startswith("CapEff:")).split()[1], 16
    )
    wanted = sum(1 << CAPABILITY_BITS[c] for c in _directive("AmbientCapabilities", text))
    assert wanted, "the unit gives the agent the capabilities it reads with"
    assert effective == wanted


def test_a_backup_under_the_unit_reads_other_users_private_files(
    private_files: Path, tmp_path: Path
) -> None:
    summary = _backup_under(UNIT.read_text(), private_files, tmp_path)
    assert summary.get("errors") in (0, [], None), summary
    assert summary.get("files_new") == 1, summary


def test_without_ambient_capabilities_the_same_backup_would_be_partial(
    private_files: Path, tmp_path: Path
) -> None:
    """The check above can fail: with the unit's bits but no ambient set, root reads nothing private."""
    stripped = UNIT.read_text().replace("AmbientCapabilities=CAP_", "AmbientCapabilities=\n#CAP_")
    summary = _backup_under(stripped, private_files, tmp_path)
    assert summary.get("files_new") != 1, summary
