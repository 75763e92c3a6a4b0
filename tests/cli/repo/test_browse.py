"""`repo ls`, `find`, `diff` and `stats` on real snapshots."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli


def test_ls_default_path_and_long_format(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    everything = cli.ok("repo", "ls", "-r", repo, snapshot[:6]).stdout.splitlines()
    assert str(data / "sub" / "deep" / "Notes.md") in everything
    assert str(data / "sub") + "/" in everything

    top = cli.ok("repo", "ls", "-r", repo, "latest", str(data)).stdout.splitlines()
    assert top == [str(data / "alpha.txt"), str(data / "link"), str(data / "sub") + "/"]
    deep = cli.ok("repo", "ls", "-r", repo, "latest", str(data / "sub"), "-R").stdout.splitlines()
    assert str(data / "sub" / "deep" / "Notes.md") in deep

    long = cli.ok("repo", "ls", "-r", repo, "latest", str(data), "-l").stdout.splitlines()
    alpha = next(line for line in long if line.endswith("alpha.txt"))
    assert alpha.startswith("-rw") and " 6 " in alpha
    link = next(line for line in long if " -> " in line)
    assert link.startswith("l") and link.endswith(f"{data / 'link'} -> alpha.txt")


def test_ls_json_is_one_object_per_line(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    lines = cli.ok("repo", "ls", "-r", repo, "latest", "--json").stdout.splitlines()
    docs = [json.loads(line) for line in lines]
    assert docs[0]["struct_type"] == "snapshot" and docs[0]["id"] == snapshot
    nodes = {d["path"]: d for d in docs[1:]}
    assert all(d["struct_type"] == "node" for d in docs[1:])
    blob = nodes[str(data / "sub" / "blob.bin")]
    assert blob["type"] == "file" and blob["size"] == 300_000
    assert nodes[str(data / "link")]["target"] == "alpha.txt"


def test_ls_of_a_missing_path(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    result = cli("repo", "ls", "-r", repo, "latest", str(data / "nope"))
    assert result.exit_code == 1
    assert f"{data / 'nope'} does not exist in snapshot {snapshot[:8]}" in result.stderr


def test_find(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    (data / "notes.txt").write_text("n")
    second = cli.json("repo", "backup", "-r", repo, data)["snapshot_id"]

    text = cli.ok("repo", "find", "-r", repo, "notes*").stdout
    assert text.splitlines() == [
        f"Found matching entries in snapshot {second[:8]} from "
        + text.splitlines()[0].split(" from ")[1],
        str(data / "notes.txt"),
        "",
    ]

    docs = cli.json("repo", "find", "-r", repo, "NOTES*", "--ignore-case")
    by_snap = {d["snapshot"]: sorted(m["path"] for m in d["matches"]) for d in docs}
    assert by_snap == {
        snapshot: [str(data / "sub" / "deep" / "Notes.md")],
        second: [str(data / "notes.txt"), str(data / "sub" / "deep" / "Notes.md")],
    }
    only_first = cli.json("repo", "find", "-r", repo, "-i", "notes*", "--snapshot", snapshot[:8])
    assert [d["snapshot"] for d in only_first] == [snapshot]

    nothing = cli.ok("repo", "find", "-r", repo, "*.xyz")
    assert nothing.stdout == "" and "no matches" in nothing.stderr


def test_diff(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    (data / "alpha.txt").write_text("alpha, longer now\n")
    (data / "sub" / "blob.bin").unlink()
    (data / "new.txt").write_text("new")
    second = cli.json("repo", "backup", "-r", repo, data)["snapshot_id"]

    lines = cli.ok("repo", "diff", "-r", repo, snapshot[:8], second[:8]).stdout.splitlines()
    assert lines[0] == f"comparing snapshot {snapshot[:8]} to {second[:8]}:"
    changes = [line.split(maxsplit=1) for line in lines[2:] if line[:1] in "+-MTU" and line.strip()]
    assert ["M", str(data / "alpha.txt")] in changes
    assert ["+", str(data / "new.txt")] in changes
    assert ["-", str(data / "sub" / "blob.bin")] in changes
    assert not any(code == "U" for code, _ in changes)  # metadata-only only with --metadata

    doc = cli.json("repo", "diff", "-r", repo, snapshot, "latest")
    assert doc["summary"]["added"] == 1 and doc["summary"]["removed"] == 1
    assert doc["summary"]["removed_bytes"] >= 300_000
    assert {c["path"]: c["code"] for c in doc["changes"]}[str(data / "new.txt")] == "+"

    with_meta = cli.json("repo", "diff", "-r", repo, snapshot, "latest", "--metadata")
    assert any(c["code"] == "U" for c in with_meta["changes"])  # the directories' mtimes


def test_stats(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    assert "Stats for 1 snapshot:" in cli.ok("repo", "stats", "-r", repo).stdout
    cli.ok("repo", "backup", "-r", repo, data, "-q")
    one = cli.json("repo", "stats", "-r", repo, snapshot[:8])
    assert one["snapshot_ids"] == [snapshot]
    assert (one["files"], one["symlinks"]) == (3, 1)
    size = 6 + 300_000 + len("# notes\n" * 50)
    assert one["total_size"] == size
    both = cli.json("repo", "stats", "-r", repo)
    assert both["snapshots"] == 2 and both["total_size"] == 2 * size
    # The second snapshot added no file data, only trees for directories whose mtime moved.
    assert 0 <= both["raw_size"] - one["raw_size"] < 5_000
    text = cli.ok("repo", "stats", "-r", repo).stdout
    assert "Stats for 2 snapshots:" in text
    ratio = float(text.split("Deduplication:")[1].split("x")[0])
    assert 1.9 < ratio <= 2.0
