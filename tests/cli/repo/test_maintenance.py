"""`repo prune` and `repo check`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli, corrupt_a_pack, read_tree


def test_prune_max_unused_validation(cli: Cli, repo: Path) -> None:
    for bad in ("lots", "150%", "-5"):
        result = cli("repo", "prune", "-r", repo, "--max-unused", bad)
        assert result.exit_code == 2, bad
        assert "--max-unused" in result.stderr
    assert cli.json("repo", "prune", "-r", repo, "--max-unused", "5%")["dry_run"] is False


def test_check_of_a_sound_repository(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    text = cli.ok("repo", "check", "-r", repo).stdout
    assert text.splitlines()[-1] == "no errors were found"
    doc = cli.json("repo", "check", "-r", repo, "--read-data")
    assert doc["ok"] is True and doc["errors"] == []
    assert doc["packs_read"] == doc["packs"] > 0
    subset = cli.json("repo", "check", "-r", repo, "--read-data-subset", "100%")
    assert subset["packs_read"] == doc["packs"]


def test_check_finds_a_damaged_pack_only_when_reading_data(
    cli: Cli, repo: Path, data: Path, snapshot: str
) -> None:
    pack = corrupt_a_pack(repo)
    # The structure is intact: only reading the data shows the damage.
    cli.ok("repo", "check", "-r", repo)
    result = cli("repo", "check", "-r", repo, "--read-data")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert any(pack.name in line and "damaged" in line for line in errors)
    assert errors[-1].startswith("error: the repository has ")

    doc = json.loads(cli("repo", "check", "-r", repo, "--read-data", "--json").stdout)
    assert doc["ok"] is False
    assert {e["pack"] for e in doc["errors"]} == {pack.name}


def test_check_finds_a_missing_pack(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    pack = corrupt_a_pack(repo)
    pack.unlink()
    result = cli("repo", "check", "-r", repo)
    assert result.exit_code == 1
    assert f"error: pack {pack.name} is missing" in result.stderr
    assert "blob.bin" in result.stderr  # the file that cannot be restored is named


def test_check_bad_subset(cli: Cli, repo: Path) -> None:
    result = cli("repo", "check", "-r", repo, "--read-data-subset", "6/5")
    assert result.exit_code == 1
    assert "read-data subset '6/5'" in result.stderr


def test_repair_index_after_the_index_is_lost(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path
) -> None:
    for f in (repo / "index").iterdir():
        f.unlink()
    broken = cli("repo", "restore", "-r", repo, "latest", "-t", tmp_path / "broken")
    assert broken.exit_code == 1
    doc = cli.json("repo", "repair", "index", "-r", repo)
    packs = [p for p in (repo / "data").rglob("*") if p.is_file()]
    assert doc["message_type"] == "summary"
    assert doc["packs"] == len(packs) and doc["index_files_written"] == 1
    assert doc["damaged_packs"] == []
    assert cli("repo", "check", "-r", repo, "--read-data").exit_code == 0
    target = tmp_path / "out"
    cli.ok("repo", "restore", "-r", repo, "latest", "-t", target, "-q")
    assert read_tree(target / data.relative_to("/")) == read_tree(data)

    again = cli.json("repo", "repair", "index", "-r", repo)
    assert again["index_files_written"] == 1 and again["index_files_removed"] == 1


def test_repair_index_leaves_a_damaged_pack_out(
    cli: Cli, repo: Path, data: Path, snapshot: str
) -> None:
    pack = corrupt_a_pack(repo)
    result = cli("repo", "repair", "index", "-r", repo)
    assert result.exit_code == 0
    assert f"warning: {pack.relative_to(repo)}: damaged pack left out" in result.stderr
