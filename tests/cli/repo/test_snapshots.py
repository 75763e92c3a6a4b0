"""`repo snapshots` and `repo forget`."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli.conftest import Cli


def test_snapshots_filters_and_order(cli: Cli, repo: Path, data: Path) -> None:
    a = cli.json("repo", "backup", "-r", repo, data, "--host", "h1", "--tag", "x")["snapshot_id"]
    b = cli.json("repo", "backup", "-r", repo, data, "--host", "h2", "--tag", "x,y")["snapshot_id"]
    c = cli.json("repo", "backup", "-r", repo, data / "sub", "--host", "h1")["snapshot_id"]
    listed = cli.json("repo", "snapshots", "-r", repo)
    assert [s["id"] for s in listed] == [a, b, c]  # newest last
    assert [s["id"] for s in cli.json("repo", "snapshots", "-r", repo, "--host", "h1")] == [a, c]
    assert [s["id"] for s in cli.json("repo", "snapshots", "-r", repo, "--tag", "x,y")] == [b]
    assert [
        s["id"] for s in cli.json("repo", "snapshots", "-r", repo, "--tag", "y", "--tag", "x")
    ] == [a, b]
    assert [
        s["id"] for s in cli.json("repo", "snapshots", "-r", repo, "--path", str(data / "sub"))
    ] == [c]

    table = cli.ok("repo", "snapshots", "-r", repo).stdout.splitlines()
    assert table[0].split() == ["ID", "Time", "Host", "Tags", "Paths", "Size"]
    assert [row.split()[0] for row in table[1:4]] == [a[:8], b[:8], c[:8]]
    assert table[-1] == "3 snapshots"


def _three_snapshots(cli: Cli, repo: Path, data: Path) -> list[str]:
    ids = []
    for i in range(3):
        (data / f"gen{i}.bin").write_bytes(os.urandom(50_000))
        ids.append(cli.json("repo", "backup", "-r", repo, data)["snapshot_id"])
    return ids


def test_forget_with_a_policy(cli: Cli, repo: Path, data: Path) -> None:
    ids = _three_snapshots(cli, repo, data)
    dry = cli.json("repo", "forget", "-r", repo, "--keep-last", "1", "--dry-run")
    assert dry["dry_run"] is True and dry["removed"] == []
    assert dry["groups"][0]["keep"] == [ids[2]] and sorted(dry["groups"][0]["remove"]) == sorted(
        ids[:2]
    )
    assert len(cli.json("repo", "snapshots", "-r", repo)) == 3

    text = cli.ok("repo", "forget", "-r", repo, "--keep-last", "2").stdout
    assert "Applying policy: keep last 2" in text and text.splitlines()[-1] == "removed 1 snapshot"
    assert [s["id"] for s in cli.json("repo", "snapshots", "-r", repo)] == ids[1:]


def test_forget_named_snapshots(cli: Cli, repo: Path, data: Path) -> None:
    ids = _three_snapshots(cli, repo, data)
    result = cli.ok("repo", "forget", "-r", repo, ids[0][:8], ids[2][:8])
    assert result.stdout.splitlines() == [
        f"removed snapshot {ids[0][:8]}",
        f"removed snapshot {ids[2][:8]}",
    ]
    assert [s["id"] for s in cli.json("repo", "snapshots", "-r", repo)] == [ids[1]]


def test_forget_refuses_an_empty_policy_and_mixed_input(cli: Cli, repo: Path, data: Path) -> None:
    ids = _three_snapshots(cli, repo, data)
    empty = cli("repo", "forget", "-r", repo)
    assert empty.exit_code == 1 and "refusing to forget with an empty policy" in empty.stderr
    mixed = cli("repo", "forget", "-r", repo, ids[0], "--keep-last", "1")
    assert mixed.exit_code == 2 and "not both" in mixed.stderr
    bad = cli("repo", "forget", "-r", repo, "--keep-within", "3x")
    assert bad.exit_code == 1 and "unknown unit 'x'" in bad.stderr
    assert len(cli.json("repo", "snapshots", "-r", repo)) == 3


def test_forget_then_prune_frees_space(cli: Cli, repo: Path, data: Path) -> None:
    _three_snapshots(cli, repo, data)
    (data / "gen0.bin").unlink()
    (data / "gen1.bin").unlink()
    cli.ok("repo", "backup", "-r", repo, data, "-q")
    dry = cli.json("repo", "prune", "-r", repo, "--dry-run")
    assert dry["dry_run"] is True and dry["bytes_freed"] == 0  # every snapshot still needs its data

    doc = cli.json("repo", "forget", "-r", repo, "--keep-last", "1", "--prune")
    assert len(doc["removed"]) == 3
    assert doc["prune"]["bytes_freed"] >= 100_000 and doc["prune"]["dry_run"] is False
    # what is left still restores
    cli.ok("repo", "dump", "-r", repo, "latest", str(data / "gen2.bin"))
    again = cli.ok("repo", "prune", "-r", repo).stdout
    assert "0 B freed" in again
    assert again.startswith("1 snapshot uses ")
    dry_text = cli.ok("repo", "prune", "-r", repo, "--dry-run").stdout
    assert "would be deleted" in dry_text and "would be repacked" in dry_text
    assert "(0 B would be freed)" in dry_text and "would deleted" not in dry_text


def test_tag_add_remove_set_replaces_the_snapshot(
    cli: Cli, repo: Path, data: Path, snapshot: str
) -> None:
    docs = cli.json_lines("repo", "tag", "-r", repo, snapshot[:8], "--add", "keep,monthly")
    assert docs[-1] == {"message_type": "summary", "changed_snapshots": 1}
    change = docs[0]
    assert change["message_type"] == "changed_snapshot" and change["old_snapshot_id"] == snapshot
    new = change["new_snapshot_id"]
    snaps = cli.json("repo", "snapshots", "-r", repo)
    assert [(s["id"], s["tags"], s["original"]) for s in snaps] == [
        (new, ["keep", "monthly"], snapshot)
    ]
    # the tree is the same: the data was not touched
    assert snaps[0]["tree"] == cli.json_lines("repo", "ls", "-r", repo, new)[0]["tree"]

    cli.ok("repo", "tag", "-r", repo, "latest", "--remove", "monthly")
    assert cli.json("repo", "snapshots", "-r", repo)[0]["tags"] == ["keep"]
    unchanged = cli.json_lines("repo", "tag", "-r", repo, "--tag", "keep", "--add", "keep")
    assert unchanged == [{"message_type": "summary", "changed_snapshots": 0}]
    cli.ok("repo", "tag", "-r", repo, "--set", "")
    final = cli.json("repo", "snapshots", "-r", repo)
    assert final[0]["tags"] == [] and final[0]["original"] == snapshot
    assert cli("repo", "check", "-r", repo).exit_code == 0

    both = cli("repo", "tag", "-r", repo, "latest", "--set", "a", "--add", "b")
    assert both.exit_code == 1 and "cannot be combined" in both.stderr
    nothing = cli("repo", "tag", "-r", repo, "latest")
    assert nothing.exit_code == 1 and "nothing to do" in nothing.stderr
