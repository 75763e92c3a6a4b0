"""`repo list` and `repo cat`: the stored objects, decrypted."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli


def test_list_every_kind(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    assert cli.ok("repo", "list", "-r", repo, "snapshots").stdout.split() == [snapshot]
    packs = cli.ok("repo", "list", "-r", repo, "packs").stdout.split()
    assert sorted(packs) == sorted(p.name for p in (repo / "data").rglob("*") if p.is_file())
    index = cli.ok("repo", "list", "-r", repo, "index").stdout.split()
    assert index == sorted(p.name for p in (repo / "index").iterdir())
    assert len(cli.ok("repo", "list", "-r", repo, "keys").stdout.split()) == 1
    assert cli.ok("repo", "list", "-r", repo, "locks").stdout == ""
    bad = cli("repo", "list", "-r", repo, "blobs")
    assert bad.exit_code == 2


def test_cat_follows_a_snapshot_down_to_a_blob(
    cli: Cli, repo: Path, data: Path, snapshot: str
) -> None:
    config = json.loads(cli.ok("repo", "cat", "-r", repo, "config").stdout)
    assert config == json.loads((repo / "config").read_bytes())
    snap = json.loads(cli.ok("repo", "cat", "-r", repo, "snapshot", snapshot[:8]).stdout)
    assert snap["paths"] == [str(data)]
    tree_id = snap["tree"]
    # walk down to alpha.txt, tree by tree
    for part in data.parts[1:]:
        tree = json.loads(cli.ok("repo", "cat", "-r", repo, "tree", tree_id).stdout)
        tree_id = next(n for n in tree["nodes"] if n.get("name") == part)["subtree"]
    tree = json.loads(cli.ok("repo", "cat", "-r", repo, "tree", tree_id).stdout)
    alpha = next(n for n in tree["nodes"] if n.get("name") == "alpha.txt")
    blob = cli.ok("repo", "cat", "-r", repo, "blob", alpha["content"][0])
    assert blob.stdout_bytes == b"alpha\n"

    index_name = cli.ok("repo", "list", "-r", repo, "index").stdout.split()[0]
    index = json.loads(cli.ok("repo", "cat", "-r", repo, "index", index_name[:10]).stdout)
    listed = {b["id"] for p in index for b in p["blobs"]}
    assert alpha["content"][0] in listed
    pack = index[0]["id"]
    header = json.loads(cli.ok("repo", "cat", "-r", repo, "pack", pack).stdout)
    assert [b["id"] for b in header] == [b["id"] for b in index[0]["blobs"]]

    missing = cli("repo", "cat", "-r", repo, "blob", "00" * 32)
    assert missing.exit_code == 1
    assert cli("repo", "cat", "-r", repo, "blob", "xyz").exit_code == 1
    assert cli("repo", "cat", "-r", repo, "masterkey").exit_code == 2
