"""`repo copy`: snapshots into another repository with other keys, restorable there byte for byte."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import FAST_KDF, Cli, read_tree


def test_copy_then_copy_again_adds_only_the_new(
    cli: Cli, repo: Path, data: Path, snapshot: str, tmp_path: Path
) -> None:
    dest = tmp_path / "media"
    cli.ok("repo", "init", "-r", dest, *FAST_KDF, passphrase="other passphrase")
    src_pw = tmp_path / "src-pw"
    src_pw.write_text("correct horse battery staple\n")
    args = ["repo", "copy", "-r", dest, "--from-repo", repo, "--from-passphrase-file", src_pw]
    doc = cli.json(*args, passphrase="other passphrase")
    assert list(doc["copied"]) == [snapshot] and doc["skipped"] == []
    assert doc["bytes_copied"] > 300_000

    copied = cli.json("repo", "snapshots", "-r", dest, passphrase="other passphrase")
    assert len(copied) == 1 and copied[0]["original"] == snapshot
    assert copied[0]["time"] == cli.json("repo", "snapshots", "-r", repo)[0]["time"]
    target = tmp_path / "out"
    cli.ok(
        "repo",
        "restore",
        "-r",
        dest,
        "latest",
        "-t",
        target,
        "--verify",
        "-q",
        passphrase="other passphrase",
    )
    assert read_tree(target / data.relative_to("/")) == read_tree(data)
    assert (
        cli("repo", "check", "-r", dest, "--read-data", passphrase="other passphrase").exit_code
        == 0
    )

    (data / "new.txt").write_text("new\n")
    cli.ok("repo", "backup", "-r", repo, data, "-q")
    again = cli.json(*args, passphrase="other passphrase")
    assert again["skipped"] == [snapshot] and len(again["copied"]) == 1
    assert again["bytes_copied"] < 1000  # only the new file's data and the changed trees

    no_source = cli("repo", "copy", "-r", dest, passphrase="other passphrase")
    assert no_source.exit_code == 2 and "--from-repo" in no_source.stderr
