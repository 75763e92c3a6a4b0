"""What the command prints: tables and lines on stdout, JSON for scripts, messages and progress on stderr.

Stdout carries only the data a command was asked for, so ``--json`` output
can be piped straight into a parser; everything meant for a person watching
(progress, warnings, errors) goes to stderr.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from types import TracebackType
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, SpinnerColumn, TaskID, TextColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from vaultwatch.engine.progress import Progress
from vaultwatch.engine.snapshot import Snapshot
from vaultwatch.engine.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node
from vaultwatch.units import human_bytes as human_bytes
from vaultwatch.units import human_duration as human_duration
from vaultwatch.units import plural as plural

_WIDE = 250
"""Width for tables when stdout is not a terminal: no wrapping inside cells of piped output."""


def printable(text: str) -> str:
    """A name safe to print: undecodable bytes (surrogate escapes) shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def out_console() -> Console:
    """A console on the current stdout (markup off: file names may contain brackets)."""
    console = Console(markup=False, highlight=False, emoji=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(markup=False, highlight=False, emoji=False, width=_WIDE)
    return console


def err_console() -> Console:
    """A console on the current stderr, for progress."""
    return Console(stderr=True, markup=False, highlight=False, emoji=False)


def line(text: str = "") -> None:
    """One line of plain output on stdout, never wrapped or interpreted."""
    sys.stdout.write(printable(text) + "\n")


def print_table(table: Table) -> None:
    """A rich table on stdout."""
    out_console().print(table)


def new_table(*columns: str, right: Iterable[str] = ()) -> Table:
    """A plain, compact table (restic-like look: a header rule and no box)."""
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    aligned = set(right)
    for col in columns:
        table.add_column(col, justify="right" if col in aligned else "left", no_wrap=False)
    return table


def cell(value: object) -> Text:
    """A table cell holding text as-is (no markup, undecodable bytes escaped)."""
    return Text(printable(str(value)))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_json_text(data: Any) -> str:
    """One line of JSON; undecodable name bytes become ``\\udcXX`` escapes, valid JSON."""
    text = json.dumps(data, ensure_ascii=False, default=_json_default)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def print_json(data: Any) -> None:
    """The whole machine-readable answer of a command, on one line of stdout."""
    sys.stdout.write(to_json_text(data) + "\n")
    sys.stdout.flush()


_json_errors = False
"""Whether messages on stderr are JSON objects (a repository command run with --json)."""


def set_json_errors(on: bool) -> None:
    """Switch stderr messages to JSON (restic's ``message_type`` objects) or back to text."""
    global _json_errors
    _json_errors = on


def json_errors() -> bool:
    """Whether stderr messages are JSON now."""
    return _json_errors


def _stderr_json(doc: dict[str, Any]) -> None:
    sys.stderr.write(to_json_text(doc) + "\n")
    sys.stderr.flush()


def error(message: str, *, item: str | None = None) -> None:
    """An error line on stderr (a JSON object with --json); ``item`` names the path concerned."""
    if _json_errors:
        doc: dict[str, Any] = {"message_type": "error", "error": {"message": message}}
        if item is not None:
            doc["item"] = item
        _stderr_json(doc)
        return
    text = f"{item}: {message}" if item is not None else message
    sys.stderr.write(f"error: {printable(text)}\n")
    sys.stderr.flush()


def warn(message: str, *, item: str | None = None) -> None:
    """A warning line on stderr (a JSON object with --json)."""
    if _json_errors:
        doc: dict[str, Any] = {"message_type": "warning", "message": message}
        if item is not None:
            doc["item"] = item
        _stderr_json(doc)
        return
    text = f"{item}: {message}" if item is not None else message
    sys.stderr.write(f"warning: {printable(text)}\n")
    sys.stderr.flush()


def exit_error(message: str, code: int) -> None:
    """The message a command ends with: restic's ``exit_error`` object with --json, else text."""
    if _json_errors:
        _stderr_json({"message_type": "exit_error", "code": code, "message": message})
        return
    sys.stderr.write(f"error: {printable(message)}\n")
    sys.stderr.flush()


def note(message: str) -> None:
    """Information for the person at the keyboard (stderr, so stdout stays data)."""
    sys.stderr.write(printable(message) + "\n")
    sys.stderr.flush()


def json_or_line(as_json: bool, doc: Any, text: str) -> None:
    """A command's one-line answer: ``doc`` as JSON with --json, else ``text``."""
    if as_json:
        print_json(doc)
    else:
        line(text)


class PathProblem(Protocol):
    """A path the engine could not handle, and why."""

    @property
    def path(self) -> str: ...

    @property
    def message(self) -> str: ...


def report_problems(errors: Iterable[PathProblem], warnings: Iterable[PathProblem] = ()) -> None:
    """Each error, then each warning, as ``path: message`` on stderr."""
    for problem in errors:
        error(problem.message, item=problem.path)
    for problem in warnings:
        warn(problem.message, item=problem.path)


def problem_docs(problems: Iterable[PathProblem]) -> list[dict[str, str]]:
    """Problems for --json output."""
    return [{"path": p.path, "message": p.message} for p in problems]


def local_time(value: datetime, *, zone: bool = False) -> str:
    """A timestamp in the local time zone, to the second; ``zone`` names it (for deadlines)."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z" if zone else "%Y-%m-%d %H:%M:%S")


# -- snapshots and nodes ---------------------------------------------------------------------

_TYPE_BITS = {
    FILE: stat.S_IFREG,
    DIR: stat.S_IFDIR,
    SYMLINK: stat.S_IFLNK,
    FIFO: stat.S_IFIFO,
    CHARDEV: stat.S_IFCHR,
    BLOCKDEV: stat.S_IFBLK,
}


def snapshot_table(
    snaps: Sequence[Snapshot], *, size: bool = False, reasons: dict[str, list[str]] | None = None
) -> Table:
    """The restic-style snapshot list (ID, time, host, tags, paths), in the order given."""
    columns = ["ID", "Time", "Host", "Tags", "Paths"]
    if size:
        columns.append("Size")
    if reasons is not None:
        columns.append("Reasons")
    table = new_table(*columns, right=["Size"])
    for s in snaps:
        row = [
            cell(s.short_id),
            cell(local_time(s.time)),
            cell(s.hostname),
            cell(",".join(s.tags)),
            cell("\n".join(s.paths)),
        ]
        if size:
            total = s.summary.get("total_bytes")
            row.append(cell(human_bytes(total) if isinstance(total, int) else ""))
        if reasons is not None:
            row.append(cell("\n".join(reasons.get(s.id, []))))
        table.add_row(*row)
    return table


def _ns_time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def mode_string(node: Node) -> str:
    """``drwxr-xr-x`` from the stored permission bits and the node type."""
    return stat.filemode(_TYPE_BITS.get(node.type, 0) | node.mode)


def node_path(path: bytes, node: Node) -> str:
    """A path for a listing; directories end with a slash, as in restic."""
    text = os.fsdecode(path)
    return text + "/" if node.type == DIR and not text.endswith("/") else text


def node_line(path: bytes, node: Node) -> str:
    """``ls -l``-like line: permissions, owner, group, size, mtime, path (-> link target)."""
    owner = node.user or str(node.uid)
    group = node.group or str(node.gid)
    line = (
        f"{mode_string(node)} {owner:>8} {group:>8} {node.size:>12} "
        f"{local_time(_ns_time(node.mtime_ns))} {os.fsdecode(path)}"
    )
    if node.target is not None:
        line += f" -> {os.fsdecode(node.target)}"
    return line


def node_entry(path: bytes, node: Node, *, long: bool) -> str:
    """A listing line: :func:`node_line` with --long, else :func:`node_path`."""
    return node_line(path, node) if long else node_path(path, node)


def node_doc(path: bytes, node: Node) -> dict[str, Any]:
    """A tree entry for --json output (times in ISO 8601, UTC)."""
    doc: dict[str, Any] = {
        "path": os.fsdecode(path),
        "name": node.display_name,
        "type": node.type,
        "size": node.size,
        "mode": node.mode,
        "permissions": mode_string(node),
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user,
        "group": node.group,
        "mtime": _ns_time(node.mtime_ns).isoformat(),
        "inode": node.inode,
        "links": node.links,
    }
    if node.target is not None:
        doc["target"] = os.fsdecode(node.target)
    if node.error:
        doc["error"] = node.error
    return doc


# -- progress --------------------------------------------------------------------------------


def progress_wanted(quiet: bool) -> bool:
    """Draw progress only for a person: not with --quiet, not when stderr is a pipe or file."""
    return not quiet and err_console().is_terminal


def show_progress(quiet: bool) -> ProgressDisplay:
    """A display of new engine Progress (``.progress``), drawn when :func:`progress_wanted`."""
    return ProgressDisplay(Progress(), enabled=progress_wanted(quiet))


class ProgressDisplay:
    """Draws an engine Progress on stderr while the work runs in the calling thread.

    The engine updates the Progress from its worker threads; a daemon thread
    here reads it a few times a second and redraws. The work itself stays in
    the main thread, so Ctrl-C interrupts it there and its cleanup (lock
    release, closing writers) runs as usual.
    """

    def __init__(
        self,
        progress: Progress,
        *,
        enabled: bool,
        console: Console | None = None,
        interval: float = 0.25,
    ) -> None:
        self.progress = progress
        self.enabled = enabled
        self.interval = interval
        self._console = console
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ProgressDisplay:
        if not self.enabled:
            return self
        self._bar = RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}"),
            TextColumn("{task.fields[files]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            console=self._console or err_console(),
            auto_refresh=False,
            transient=True,
        )
        self._task = self._bar.add_task(
            self.progress.phase, total=None, amount="", files="", rate="", eta=""
        )
        self._bar.start()
        self.update()
        self._thread = threading.Thread(target=self._run, name="progress-display", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.update()

    def fields(self) -> dict[str, Any]:
        """What the bar shows now, read from the engine's counters."""
        p = self.progress
        done, total = p.bytes_done, p.bytes_total
        amount = human_bytes(done) + (f" / {human_bytes(total)}" if total is not None else "")
        files = f"{p.files_done}" + (f"/{p.files_total}" if p.files_total is not None else "")
        files += " files"
        if p.errors:
            files += f", {p.errors} errors"
        eta = p.eta
        return {
            "description": p.phase,
            "completed": done,
            "total": total if total else None,
            "amount": amount,
            "files": files,
            "rate": f"{human_bytes(p.rate)}/s",
            "eta": f"ETA {human_duration(eta)}" if eta is not None else "",
        }

    def update(self) -> None:
        """Redraw once from the current counters."""
        if self._bar is None or self._task is None:
            return
        self._bar.update(self._task, **self.fields())
        self._bar.refresh()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self.update()  # the final counts, even when the work took less than one interval
            self._bar.stop()


# -- JSON status lines ---------------------------------------------------------------------


def status_doc(p: Progress) -> dict[str, Any]:
    """One restic-style ``status`` line from the engine's counters."""
    total = p.bytes_total or 0
    doc: dict[str, Any] = {
        "message_type": "status",
        "seconds_elapsed": int(p.elapsed),
        "percent_done": min(1.0, p.bytes_done / total) if total else 0.0,
        "total_files": p.files_total or 0,
        "files_done": p.files_done,
        "total_bytes": total,
        "bytes_done": p.bytes_done,
        "error_count": p.errors,
    }
    eta = p.eta
    if eta is not None:
        doc["seconds_remaining"] = int(eta)
    if p.current:
        doc["current_files"] = [p.current]
    return doc


class JsonStatus:
    """``status`` lines on stdout while a command runs: each ``interval``, and one when it is done.

    The closing line is always written on success, so a script sees the
    stream's shape however fast the work was; a command that fails has
    written nothing on stdout unless it ran for a while.
    """

    def __init__(self, progress: Progress, *, enabled: bool, interval: float = 1.0) -> None:
        self.progress = progress
        self.enabled = enabled
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> JsonStatus:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="json-status", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            print_json(status_doc(self.progress))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            if exc_type is None:
                print_json(status_doc(self.progress))
