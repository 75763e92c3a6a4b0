"""The settings file: where the upload spool lives, and clear errors for a malformed value."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from vaultwatch.server_config import SETTINGS_FILE, ServerConfigError, load_settings


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("settings") / "server"
    vaultwatch = Path(sys.executable).with_name("vaultwatch")
    subprocess.run(
        [str(vaultwatch), "server", "init", "--data-dir", str(root)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return root


def _with_gateway(data_dir: Path, tmp_path: Path, **gateway: object) -> Path:
    """A copy of the settings with ``[gateway]`` values changed, in a directory of its own."""
    doc = tomllib.loads((data_dir / SETTINGS_FILE).read_text())
    doc.setdefault("gateway", {}).update(gateway)
    for table, key in (("tls", "cert"), ("tls", "key"), ("secrets", "token_key_file")):
        doc[table][key] = str(data_dir / doc[table][key])  # keep pointing at the originals
    copy = tmp_path / "copy"
    copy.mkdir(parents=True)
    (copy / SETTINGS_FILE).write_text(tomli_w.dumps(doc))
    return copy


def test_the_spool_is_under_the_data_directory_by_default(data_dir: Path) -> None:
    settings = load_settings(data_dir)
    assert settings.spool_dir is None
    assert settings.upload_spool == data_dir / "spool"


def test_spool_dir_in_the_settings_file_is_relative_to_the_data_directory(
    data_dir: Path, tmp_path: Path
) -> None:
    copy = _with_gateway(data_dir, tmp_path, spool_dir="incoming")
    assert load_settings(copy).upload_spool == copy / "incoming"
    elsewhere = tmp_path / "fast-disk" / "spool"
    copy2 = _with_gateway(data_dir, tmp_path / "b", spool_dir=str(elsewhere))
    assert load_settings(copy2).upload_spool == elsewhere


def test_a_spool_dir_that_is_no_path_is_refused_clearly(data_dir: Path, tmp_path: Path) -> None:
    copy = _with_gateway(data_dir, tmp_path, spool_dir=42)
    with pytest.raises(ServerConfigError, match=r"\[gateway\] spool_dir .* must be a path"):
        load_settings(copy)
