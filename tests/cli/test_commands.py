"""The repository commands through the real command line parser, checked against what they did."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.cli.conftest import FAST_KDF, Cli, corrupt_a_pack, read_tree

# -- init and keys -------------------------------------------------------------------------------


def test_init_prints_the_repository_id(cli: Cli, tmp_path: Path) -> None:
    result = cli.ok("repo", "init", "-r", tmp_path / "r", *FAST_KDF)
    config = json.loads((tmp_path / "r" / "config").read_text())
    assert result.stdout == f"created repository {config['id']} at {tmp_path / 'r'}\n"
    assert "Keep the passphrase safe" in result.stderr


def test_init_json_and_kdf_options(cli: Cli, tmp_path: Path) -> None:
    doc = cli.json("repo", "init", "-r", tmp_path / "r", "--kdf-memory", "9", "--kdf-time", "2")
    assert doc["location"] == str(tmp_path / "r") and doc["escrow"] is False
    slots = cli.json("repo", "key", "list", "-r", tmp_path / "r")
    assert len(slots) == 1 and slots[0]["current"] is True
    assert slots[0]["kdf"]["memory_kib"] == 9 * 1024 and slots[0]["kdf"]["time_cost"] == 2
    assert "salt" not in slots[0]["kdf"]


def test_kdf_memory_below_the_minimum_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("repo", "init", "-r", tmp_path / "r", "--kdf-memory", "1")
    assert result.exit_code == 2
    assert not (tmp_path / "r").exists()


def _pem(public: object) -> bytes:
    return public.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_init_with_escrow_slot(cli: Cli, tmp_path: Path) -> None:
    key = X25519PrivateKey.generate()
    pem = tmp_path / "escrow.pem"
    pem.write_bytes(_pem(key.public_key()))
    doc = cli.json("repo", "init", "-r", tmp_path / "r", *FAST_KDF, "--escrow-public-key", pem)
    assert doc["escrow"] is True
    slots = cli.json("repo", "key", "list", "-r", tmp_path / "r")
    assert sorted(s["kind"] for s in slots) == ["escrow", "passphrase"]
    # The escrow key really opens the repository.
    from vaultwatch.engine.repository import Repository
    from vaultwatch.store.local import LocalStore

    Repository.open(LocalStore(tmp_path / "r"), escrow_key=key)


def test_escrow_key_of_the_wrong_type(cli: Cli, tmp_path: Path) -> None:
    pem = tmp_path / "ed.pem"
    pem.write_bytes(_pem(Ed25519PrivateKey.generate().public_key()))
    result = cli("repo", "init", "-r", tmp_path / "r", *FAST_KDF, "--escrow-public-key", pem)
    assert result.exit_code == 1
    assert "must be an X25519 public key" in result.stderr


def test_init_asks_twice_on_a_terminal(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vaultwatch.cli.options.stdin_is_tty", lambda: True)
    result = cli(
        "repo", "init", "-r", tmp_path / "r", *FAST_KDF, passphrase=None, input="s3cret\nother\n"
    )
    assert result.exit_code == 1
    assert "the passphrases do not match" in result.stderr
    assert not (tmp_path / "r" / "config").exists()

    cli.ok(
        "repo", "init", "-r", tmp_path / "r", *FAST_KDF, passphrase=None, input="s3cret\ns3cret\n"
    )
    # The prompt went to stderr and the secret was not echoed anywhere.
    cli.ok("repo", "snapshots", "-r", tmp_path / "r", passphrase=None, input="s3cret\n")
    wrong = cli("repo", "snapshots", "-r", tmp_path / "r", passphrase=None, input="nope\n")
    assert wrong.exit_code == 12
    assert "s3cret" not in wrong.output


def test_passphrase_file_first_line_wins_over_env(cli: Cli, tmp_path: Path) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_bytes(b"from the file\r\nignored second line\n")
    cli.ok("repo", "init", "-r", tmp_path / "r", *FAST_KDF, "--passphrase-file", pwfile)
    # The file is used even though the environment holds another passphrase.
    cli.ok("repo", "snapshots", "-r", tmp_path / "r", "--passphrase-file", pwfile, passphrase="x")
    # Its first line, without the line ending, is the passphrase.
    cli.ok("repo", "snapshots", "-r", tmp_path / "r", passphrase="from the file")
    wrong = cli("repo", "snapshots", "-r", tmp_path / "r", passphrase="from the file\r")
    assert wrong.exit_code == 12


def test_passphrase_file_from_the_environment(cli: Cli, tmp_path: Path) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_text("env file\n")
    env = {"VAULTWATCH_PASSPHRASE_FILE": str(pwfile), "VAULTWATCH_REPO": str(tmp_path / "r")}
    cli.ok("repo", "init", *FAST_KDF, passphrase=None, env=env)
    assert cli.json("repo", "snapshots", passphrase=None, env=env) == []
    # and it is really that file being read
    pwfile.write_text("changed\n")
    assert cli("repo", "snapshots", passphrase=None, env=env).exit_code == 12


def test_options_on_the_group_and_the_command(cli: Cli, repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    cli.ok("repo", "init", "-r", other, *FAST_KDF, passphrase="other pass")
    # restic style: options before the command
    assert json.loads(cli.ok("repo", "-r", repo, "--json", "snapshots").stdout) == []
    # the command's own option wins over the group's, which wins over the environment
    env = {"VAULTWATCH_REPO": str(tmp_path / "missing")}
    result = cli("repo", "-r", repo, "snapshots", "-r", other, passphrase="other pass", env=env)
    assert result.exit_code == 0
    result = cli("repo", "-r", repo, "snapshots", env=env)
    assert result.exit_code == 0
    assert cli("repo", "snapshots", env=env).exit_code == 10


def test_key_add_remove_and_passwd(cli: Cli, repo: Path, tmp_path: Path) -> None:
    newpw = tmp_path / "new"
    newpw.write_text("second passphrase\n")
    added = cli.json("repo", "key", "add", "-r", repo, "--new-passphrase-file", newpw, *FAST_KDF)
    assert added["kind"] == "passphrase" and added["kdf"]["memory_kib"] == 8 * 1024
    cli.ok("repo", "snapshots", "-r", repo, passphrase="second passphrase")

    slots = cli.json("repo", "key", "list", "-r", repo)
    assert len(slots) == 2
    [mine] = [s for s in slots if s["current"]]
    assert mine["id"] != added["id"]

    removed = cli.json("repo", "key", "remove", "-r", repo, added["id"][:10])
    assert removed == {"removed": added["id"], "kind": "passphrase"}
    assert cli("repo", "snapshots", "-r", repo, passphrase="second passphrase").exit_code == 12

    last = cli("repo", "key", "remove", "-r", repo, mine["id"])
    assert last.exit_code == 1
    assert "refusing to remove the last passphrase slot" in last.stderr

    newpw.write_text("third passphrase\n")
    changed = cli.json(
        "repo", "key", "passwd", "-r", repo, "--new-passphrase-file", newpw, *FAST_KDF
    )
    assert changed["removed"] == mine["id"]
    assert cli("repo", "snapshots", "-r", repo).exit_code == 12
    cli.ok("repo", "snapshots", "-r", repo, passphrase="third passphrase")


def test_key_add_needs_a_new_passphrase(cli: Cli, repo: Path) -> None:
    result = cli("repo", "key", "add", "-r", repo)
    assert result.exit_code == 1
    assert "no new passphrase" in result.stderr
    assert len(cli.json("repo", "key", "list", "-r", repo)) == 1


def test_key_add_prompts_twice(cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vaultwatch.cli.options.stdin_is_tty", lambda: True)
    result = cli("repo", "key", "add", "-r", repo, *FAST_KDF, input="typed\ntyped\n")
    assert result.exit_code == 0, result.output
    cli.ok("repo", "snapshots", "-r", repo, passphrase="typed")


def test_key_add_escrow(cli: Cli, repo: Path, tmp_path: Path) -> None:
    pem = tmp_path / "escrow.pem"
    pem.write_bytes(_pem(X25519PrivateKey.generate().public_key()))
    added = cli.json("repo", "key", "add", "-r", repo, "--escrow-public-key", pem)
    assert added["kind"] == "escrow" and len(added["recipient"]) == 16
    table = cli.ok("repo", "key", "list", "-r", repo).stdout
    assert f"recipient {added['recipient']}" in table


# -- backup -------------------------------------------------------------------------------------


def test_backup_summary_and_second_run_reads_nothing(cli: Cli, repo: Path, data: Path) -> None:
    first = cli.ok("repo", "backup", "-r", repo, data)
    lines = first.stdout.splitlines()
    assert lines[0].split() == ["Files:", "3", "new,", "0", "changed,", "0", "unmodified"]
    assert lines[-1].startswith("snapshot ") and lines[-1].endswith(" saved")
    short = lines[-1].split()[1]

    second = cli.json("repo", "backup", "-r", repo, data)
    assert second["parent"].startswith(short)
    assert (second["files_new"], second["files_changed"], second["files_unmodified"]) == (0, 0, 3)
    assert second["bytes_read"] == 0 and second["errors"] == []

    forced = cli.json("repo", "backup", "-r", repo, data, "--force")
    assert forced["parent"] is None and forced["files_new"] == 3
    assert forced["bytes_added"] < 2000  # the content was read again but is already stored


def test_backup_with_explicit_parent(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    (data / "alpha.txt").write_text("changed\n")
    doc = cli.json(
        "repo", "backup", "-r", repo, data / "sub", data / "alpha.txt", "--parent", snapshot[:8]
    )
    assert doc["parent"] == snapshot


def test_backup_options_reach_the_snapshot(
    cli: Cli, repo: Path, data: Path, tmp_path: Path
) -> None:
    excludes = tmp_path / "excludes"
    excludes.write_text("# comment\n\n*.bin\n")
    doc = cli.json(
        "repo", "backup", "-r", repo, data,
        "--tag", "daily,db", "--tag", "manual",
        "--host", "web-01",
        "--exclude", "Notes.*",
        "--exclude-file", excludes,
    )  # fmt: skip
    assert doc["tags"] == ["daily", "db", "manual"] and doc["hostname"] == "web-01"
    names = [
        json.loads(line)["path"]
        for line in cli.ok("repo", "ls", "-r", repo, "latest", "--json").stdout.splitlines()[1:]
    ]
    assert str(data / "alpha.txt") in names
    assert not any(n.endswith(("blob.bin", "Notes.md")) for n in names)
    assert str(data / "sub" / "deep") in names


def test_backup_quiet_prints_nothing(cli: Cli, repo: Path, data: Path) -> None:
    result = cli.ok("repo", "backup", "-r", repo, data, "-q")
    assert result.stdout == "" and result.stderr == ""
    assert len(cli.json("repo", "snapshots", "-r", repo)) == 1


def test_backup_relative_paths(cli: Cli, repo: Path, data: Path, chdir_tmp: Path) -> None:
    doc = cli.json("repo", "backup", "-r", "repo", "data")
    assert doc["paths"] == [str(data)]
    # --path filters accept relative paths too
    assert len(cli.json("repo", "snapshots", "-r", "repo", "--path", "data")) == 1


# -- snapshots, ls, find, diff, stats --------------------------------------------------------------


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


# -- restore and dump ------------------------------------------------------------------------------


def test_restore_round_trip(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    result = cli.ok("repo", "restore", "-r", repo, snapshot[:8], "--target", target)
    assert result.stdout.startswith("restored 3 files (")
    assert read_tree(target / data.relative_to("/")) == read_tree(data)

    again = cli.json("repo", "restore", "-r", repo, "latest", "--target", target)
    assert again["files_restored"] == 0 and again["files_skipped"] == 3 and again["errors"] == []


def test_restore_include(cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path) -> None:
    target = tmp_path / "out"
    doc = cli.json(
        "repo",
        "restore",
        "-r",
        repo,
        "latest",
        "-t",
        target,
        "--include",
        str(data / "sub" / "deep"),
    )
    assert doc["files_restored"] == 1
    restored = target / data.relative_to("/")
    assert (restored / "sub" / "deep" / "Notes.md").read_text() == "# notes\n" * 50
    assert not (restored / "alpha.txt").exists() and not (restored / "sub" / "blob.bin").exists()

    nothing = cli("repo", "restore", "-r", repo, "latest", "-t", target, "-i", "/not/there")
    assert nothing.exit_code == 1
    assert "nothing in the snapshot matches" in nothing.stderr


def test_restore_of_damaged_data_exits_1(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path
) -> None:
    corrupt_a_pack(repo)
    result = cli("repo", "restore", "-r", repo, "latest", "--target", tmp_path / "out")
    assert result.exit_code == 1
    assert "blob.bin" in result.stderr
    assert "could not be restored" in result.stderr.splitlines()[-1]


def test_dump(cli: Cli, repo: Path, data: Path, snapshot: str) -> None:
    result = cli.ok("repo", "dump", "-r", repo, "latest", str(data / "sub" / "blob.bin"))
    assert result.stdout_bytes == (data / "sub" / "blob.bin").read_bytes()
    directory = cli("repo", "dump", "-r", repo, "latest", str(data / "sub"))
    assert directory.exit_code == 1 and "is a dir, not a file" in directory.stderr
    assert directory.stdout_bytes == b""


def test_read_only_repository_needs_no_lock(
    cli: Cli, repo: Path, data: Path, snapshot: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Physical media may be write-protected: reading must still work, with a warning."""
    from vaultwatch.store.errors import StorePermissionError
    from vaultwatch.store.local import LocalStore

    def refuse(self: LocalStore, name: str, data: bytes, *, overwrite: bool = False) -> None:
        raise StorePermissionError(f"permission denied writing {name}")

    monkeypatch.setattr(LocalStore, "put", refuse)
    result = cli.ok("repo", "dump", "-r", repo, "latest", str(data / "alpha.txt"))
    assert result.stdout == "alpha\n"
    assert "read-only: continuing without a lock" in result.stderr
    quiet = cli.ok("repo", "dump", "-r", repo, "latest", str(data / "alpha.txt"), "--no-lock")
    assert quiet.stderr == ""


# -- forget and prune ------------------------------------------------------------------------------


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


def test_prune_max_unused_validation(cli: Cli, repo: Path) -> None:
    for bad in ("lots", "150%", "-5"):
        result = cli("repo", "prune", "-r", repo, "--max-unused", bad)
        assert result.exit_code == 2, bad
        assert "--max-unused" in result.stderr
    assert cli.json("repo", "prune", "-r", repo, "--max-unused", "5%")["dry_run"] is False


# -- check -------------------------------------------------------------------------------------------


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
