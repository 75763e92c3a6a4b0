"""The rendering helpers: sizes, names, JSON and the progress display."""

from __future__ import annotations

import io
import json
import time

import pytest
from rich.console import Console

from vaultwatch.cli import output as out
from vaultwatch.cli.main import describe_os_error
from vaultwatch.engine.progress import Progress
from vaultwatch.engine.tree import DIR, FILE, SYMLINK, Node


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (1536, "1.50 KiB"), (5 * 2**30, "5.00 GiB")],
)
def test_human_bytes(n: int, text: str) -> None:
    assert out.human_bytes(n) == text


def test_human_duration() -> None:
    assert out.human_duration(5.4) == "0:05"
    assert out.human_duration(61) == "1:01"
    assert out.human_duration(3 * 3600 + 7) == "3:00:07"


def test_undecodable_names_are_escaped_for_text_and_json() -> None:
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    assert out.printable(name) == "caf\\xe9.txt"
    text = out.to_json_text({"path": name, "ok": "été"})
    assert json.loads(text) == {"path": name, "ok": "été"}
    text.encode("utf-8")  # writable to a UTF-8 stdout


def test_mode_and_long_line() -> None:
    f = Node(name=b"a", type=FILE, mode=0o640, user="alice", group="staff", size=12, mtime_ns=0)
    assert out.mode_string(f) == "-rw-r-----"
    assert out.mode_string(Node(name=b"d", type=DIR, mode=0o755)) == "drwxr-xr-x"
    line = out.node_line(b"/x/a", f)
    assert line.startswith("-rw-r-----    alice    staff           12 ") and line.endswith(" /x/a")
    link = Node(name=b"l", type=SYMLINK, mode=0o777, target=b"a")
    assert out.node_line(b"/x/l", link).endswith("/x/l -> a")
    assert out.node_path(b"/x", Node(name=b"x", type=DIR)) == "/x/"


def test_describe_os_error_names_the_path() -> None:
    exc = PermissionError(13, "Permission denied", "/srv/secret")
    assert describe_os_error(exc) == "permission denied: /srv/secret"
    assert describe_os_error(OSError(28, "whatever", "/mnt/x")) == "no space left on device: /mnt/x"
    assert describe_os_error(OSError(18, "Invalid cross-device link", "/a", None, "/b")) == (
        "invalid cross-device link: /a -> /b"
    )


def _terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=120, color_system=None), buf


def test_progress_display_polls_the_engine_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    # the terminal under test, whatever the one running the tests is (CI often has TERM=dumb)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "120")
    progress = Progress()
    console, buf = _terminal()
    with out.ProgressDisplay(progress, enabled=True, console=console, interval=0.01):
        progress.phase = "backing up"
        progress.add_total(10 * 2**20, 4)
        progress.add(5 * 2**20, 2)
        time.sleep(0.2)  # the poller redraws from another thread
        assert "backing up" in buf.getvalue()
        assert "5.00 MiB / 10.00 MiB" in buf.getvalue()
        assert "2/4 files" in buf.getvalue()
        assert "ETA " in buf.getvalue()


def test_progress_display_fields_before_totals_are_known() -> None:
    display = out.ProgressDisplay(Progress(), enabled=True)
    fields = display.fields()
    assert fields["total"] is None and fields["eta"] == "" and fields["files"] == "0 files"


def test_disabled_progress_draws_nothing() -> None:
    progress = Progress()
    console, buf = _terminal()
    with out.ProgressDisplay(progress, enabled=False, console=console, interval=0.01):
        progress.add(100, 1)
        time.sleep(0.05)
    assert buf.getvalue() == ""


def test_progress_is_not_wanted_when_quiet_or_piped() -> None:
    assert out.progress_wanted(quiet=True) is False
    # under pytest stderr is captured, not a terminal
    assert out.progress_wanted(quiet=False) is False


def test_status_line_from_the_engine_counters() -> None:
    p = Progress()
    p.add_total(1000, 4)
    p.add(250, 1)
    p.current = "/srv/a"
    doc = out.status_doc(p)
    assert doc["message_type"] == "status" and doc["percent_done"] == 0.25
    assert (doc["files_done"], doc["total_files"], doc["bytes_done"], doc["total_bytes"]) == (
        1,
        4,
        250,
        1000,
    )
    assert doc["current_files"] == ["/srv/a"] and isinstance(doc["seconds_elapsed"], int)


def test_stderr_messages_switch_to_json(capsys: pytest.CaptureFixture[str]) -> None:
    out.set_json_errors(True)
    try:
        out.exit_error("repository is locked", 11)
        out.error("permission denied", item="/srv/x")
        out.warn("changed while read", item="/srv/y")
    finally:
        out.set_json_errors(False)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines == [
        {"message_type": "exit_error", "code": 11, "message": "repository is locked"},
        {"message_type": "error", "error": {"message": "permission denied"}, "item": "/srv/x"},
        {"message_type": "warning", "message": "changed while read", "item": "/srv/y"},
    ]
    out.exit_error("plain again", 1)
    assert capsys.readouterr().err == "error: plain again\n"
