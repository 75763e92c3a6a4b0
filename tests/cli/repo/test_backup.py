"""`repo backup`, checked against the snapshot it wrote."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from tests.cli.conftest import Cli, messages, summary_of


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


def test_json_streams_status_lines_then_one_summary(cli: Cli, repo: Path, data: Path) -> None:
    docs = cli.json_lines("repo", "backup", "-r", repo, data)
    kinds = [d["message_type"] for d in docs]
    assert kinds[-1] == "summary" and set(kinds[:-1]) == {"status"} and len(kinds) >= 2
    last_status, summary = docs[-2], docs[-1]
    assert last_status["files_done"] == 3 and last_status["total_files"] == 3
    assert last_status["bytes_done"] == last_status["total_bytes"] == summary["total_bytes"]
    assert summary["total_files_processed"] == 3 and summary["files_new"] == 3
    assert summary["data_added"] == summary["bytes_added"] > 300_000
    assert summary["dry_run"] is False
    start = datetime.fromisoformat(summary["backup_start"])
    end = datetime.fromisoformat(summary["backup_end"])
    assert start.tzinfo is not None and start <= end


#: The summary line's fields (restic's names, then the snapshot's own): scripts read them.
SUMMARY_FIELDS = {
    "message_type", "dry_run", "snapshot_id", "short_id", "parent", "paths", "hostname", "tags",
    "files_new", "files_changed", "files_unmodified", "dirs", "data_added", "data_added_packed",
    "total_files_processed", "total_bytes_processed", "total_duration", "backup_start",
    "backup_end", "bytes_read", "bytes_added", "bytes_stored", "total_bytes", "duration",
    "errors", "warnings",
}  # fmt: skip

#: Each summary field with a count -> the engine's summary key it comes from.
FROM_ENGINE = {
    "files_new": "files_new",
    "files_changed": "files_changed",
    "files_unmodified": "files_unmodified",
    "dirs": "dirs",
    "data_added": "bytes_added",
    "data_added_packed": "bytes_stored",
    "total_files_processed": "files_total",
    "total_bytes_processed": "total_bytes",
    "total_duration": "duration",
    "bytes_read": "bytes_read",
    "bytes_added": "bytes_added",
    "bytes_stored": "bytes_stored",
    "total_bytes": "total_bytes",
    "duration": "duration",
}


def test_a_partial_backups_summary_line_is_the_snapshots_summary(
    cli: Cli, repo: Path, data: Path, unreadable_file: str
) -> None:
    result = cli("repo", "backup", "-r", repo, data, unreadable_file, "--json")
    assert result.exit_code == 3  # written, but incomplete
    summary = summary_of(messages(result.stdout))
    assert set(summary) == SUMMARY_FIELDS
    (snap,) = cli.json("repo", "snapshots", "-r", repo)
    recorded = snap["summary"]  # BackupResult.to_dict(), as the snapshot keeps it
    assert {k: summary[k] for k in FROM_ENGINE} == {k: recorded[v] for k, v in FROM_ENGINE.items()}
    assert (recorded["files_total"], recorded["files_unreadable"], recorded["errors"]) == (3, 1, 1)
    assert [e["path"] for e in summary["errors"]] == [unreadable_file]
    assert summary["snapshot_id"] == snap["id"]


def test_files_from_lists_paths_and_globs(cli: Cli, repo: Path, data: Path, tmp_path: Path) -> None:
    listing = tmp_path / "files"
    listing.write_text(f"# what to keep\n\n{data / 'alpha.txt'}\n{data / 'sub' / '*.bin'}\n")
    doc = cli.json("repo", "backup", "-r", repo, "--files-from", listing)
    assert sorted(doc["paths"]) == [str(data / "alpha.txt"), str(data / "sub" / "blob.bin")]
    assert doc["files_new"] == 2
    both = cli.json("repo", "backup", "-r", repo, data / "link", "--files-from", listing)
    assert len(both["paths"]) == 3
    missing = cli("repo", "backup", "-r", repo, "--files-from", tmp_path / "nope")
    assert missing.exit_code == 1 and "cannot read files-from file" in missing.stderr


def test_stdin_becomes_one_file(cli: Cli, repo: Path, tmp_path: Path) -> None:
    payload = os.urandom(2_500_000)
    doc = cli.json(
        "repo", "backup", "-r", repo, "--stdin", "--stdin-filename", "db.sql", input=payload
    )
    assert doc["paths"] == ["/db.sql"] and doc["files_new"] == 1
    assert doc["total_bytes"] == len(payload)
    dumped = cli.ok("repo", "dump", "-r", repo, doc["snapshot_id"], "/db.sql")
    assert dumped.stdout_bytes == payload
    target = tmp_path / "out"
    cli.ok("repo", "restore", "-r", repo, "latest", "-t", target, "--verify", "-q")
    assert (target / "db.sql").read_bytes() == payload
    default = cli.json("repo", "backup", "-r", repo, "--stdin", input=b"x")
    assert default["paths"] == ["/stdin"]
    bad = cli("repo", "backup", "-r", repo, "--stdin", "--stdin-filename", "a/b", input=b"x")
    assert bad.exit_code == 1 and "must be a plain file name" in bad.stderr
    mixed = cli("repo", "backup", "-r", repo, "--stdin", tmp_path, input=b"x")
    assert mixed.exit_code == 2


def test_dry_run_reports_and_writes_nothing(cli: Cli, repo: Path, data: Path) -> None:
    def stored() -> list[Path]:
        return sorted(p for p in repo.rglob("*") if p.is_file() and "locks" not in p.parts)

    before = stored()
    docs = cli.json_lines("repo", "backup", "-r", repo, data, "--dry-run")
    assert stored() == before
    summary = docs[-1]
    assert summary["message_type"] == "summary" and summary["dry_run"] is True
    assert summary["files_new"] == 3 and summary["data_added"] >= 300_000
    items = {d["item"]: d["action"] for d in docs if d["message_type"] == "verbose_status"}
    assert items == {
        str(data / "alpha.txt"): "new",
        str(data / "sub" / "blob.bin"): "new",
        str(data / "sub" / "deep" / "Notes.md"): "new",
    }

    cli.ok("repo", "backup", "-r", repo, data, "-q")
    (data / "alpha.txt").write_text("changed\n")
    again = cli.json("repo", "backup", "-r", repo, data, "-n")
    assert (again["files_new"], again["files_changed"], again["files_unmodified"]) == (0, 1, 2)
    assert again["data_added"] == len("changed\n")
    text = cli.ok("repo", "backup", "-r", repo, data, "--dry-run")
    assert f"would back up changed  {data / 'alpha.txt'}" in text.stdout
    assert "nothing was written" in text.stdout
