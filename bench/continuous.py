"""Continuous protection: how long after a file changes is it in a committed snapshot?

A real server (SQLite catalog, TLS on loopback) and a real agent process (``vaultwatch
agent run``) protect a folder with a continuous backup set, debounced as configured by
default. A writer changes ``--rate`` files a second for ``--seconds``; for every change
the benchmark records when it was written (the file's mtime) and when the first snapshot
holding it, or a later version of the same file, was committed (the snapshot object's
mtime in the vault). It finds the versions by opening the tenant's vault with the
customer's passphrase and reading each new snapshot's tree, so a change counts only once
the vault really holds it.

The writer spreads its changes over the whole pool (a fixed stride through it), so with
``--files 1000000`` each change lands in another directory of a tree of 10,000. The
agent's CPU (average over the writer's run, and over ``--idle`` seconds of no change
before it) and its peak RSS are read from /proc. With ``--restic PATH`` the report adds
the time of one restic no-change backup of the same pool, for comparison.

    python -m bench.continuous [--seconds 60] [--rate 50] [--files 1000] [--idle 60]
    python -m bench.continuous --files 1000000 --seconds 300   # the large-tree run
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.backup_bench import prepare_workdir
from bench.service import (
    ServerProcess,
    add_output_options,
    bench_console,
    host_info,
    load_average,
    machine_section,
    now_iso,
    os_env_without_secrets,
    percentiles,
    process_cpu_seconds,
    publish,
    running_server,
    vaultwatch_binary,
)
from vaultwatch.agent.config import load_config
from vaultwatch.engine.browse import resolve
from vaultwatch.engine.errors import PathNotFoundError
from vaultwatch.engine.repository import Repository
from vaultwatch.store.errors import RepositoryNotFoundError
from vaultwatch.store.local import LocalStore

GOAL_P95_SECONDS = 30.0
GOAL_LARGE_P95_SECONDS = 5.0  # the 1,000,000-file run
GOAL_CPU_PERCENT = 25.0  # agent CPU during the run, of one core
GOAL_RSS_MIB = 300.0
SET_NAME = "bench"
FILES_PER_DIR = 100
DIRS_PER_DIR = 100
# The writer's step through the pool: a prime, so it visits every file before repeating.
STRIDE = 1_000_003
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")


@dataclass
class Settings:
    """One run's parameters (the test uses tiny ones)."""

    workdir: Path
    seconds: float = 60.0
    rate: float = 50.0
    files: int = 1000
    poll_interval: float = 0.5
    drain: float = 90.0
    seed: int = 1
    start_timeout: float = 180.0
    backup_set: dict[str, Any] = field(default_factory=dict)  # overrides of the agent defaults
    idle: float = 0.0  # seconds of no change measured before the writer starts
    restic: str | None = None  # a restic binary for the no-change comparison


@dataclass
class Change:
    """One write of one file, and when the vault first held it (or a newer version)."""

    seq: int
    file: int
    version: int
    mtime_ns: int
    size: int
    committed_at: float | None = None
    snapshot: str | None = None
    exact: bool = False

    @property
    def written_at(self) -> float:
        return self.mtime_ns / 1e9

    @property
    def latency(self) -> float | None:
        return None if self.committed_at is None else self.committed_at - self.written_at


@dataclass
class SnapshotSeen:
    """A snapshot the poller found: when the backup started, ended and was noticed."""

    id: str
    started_at: float
    committed_at: float
    noticed_at: float
    duration: float
    files_changed: int
    files_new: int
    captured: int = 0


class Ledger:
    """Every change written so far, per file, shared by the writer thread and the poller."""

    def __init__(self, files: int) -> None:
        self.lock = threading.Lock()
        self.changes: list[Change] = []
        self.pending: list[deque[Change]] = [deque() for _ in range(files)]
        # file -> mtime_ns -> (version, size): which version a snapshot's node is.
        self.versions: list[dict[int, tuple[int, int]]] = [{} for _ in range(files)]
        self.open_files: set[int] = set()

    def record(self, change: Change, *, initial: bool = False) -> None:
        with self.lock:
            self.versions[change.file][change.mtime_ns] = (change.version, change.size)
            if not initial:
                self.changes.append(change)
                self.pending[change.file].append(change)
                self.open_files.add(change.file)

    def capture(self, file: int, mtime_ns: int, size: int, snap: SnapshotSeen) -> int:
        """Mark the file's changes up to the version in the snapshot as committed; how many."""
        with self.lock:
            known = self.versions[file].get(mtime_ns)
            if known is None or known[1] != size:
                return 0  # not a version we wrote (a torn read is caught by the next backup)
            version = known[0]
            queue = self.pending[file]
            count = 0
            while queue and queue[0].version <= version:
                change = queue.popleft()
                change.committed_at = snap.committed_at
                change.snapshot = snap.id
                change.exact = change.version == version
                count += 1
            if not queue:
                self.open_files.discard(file)
            return count

    def pending_files(self) -> list[int]:
        """Files with changes no snapshot holds yet."""
        with self.lock:
            return sorted(self.open_files)

    def counts(self) -> tuple[int, int]:
        """(changes written, changes committed)."""
        with self.lock:
            written = len(self.changes)
            open_ = sum(len(q) for q in self.pending)
        return written, written - open_


def relpath(index: int) -> str:
    """Where pool file ``index`` lives below the protected folder (two directory levels)."""
    folder = index // FILES_PER_DIR
    return (
        f"d{folder // DIRS_PER_DIR:03d}/e{folder % DIRS_PER_DIR:02d}/"
        f"f{index % FILES_PER_DIR:03d}.txt"
    )


def pool_index(k: int, files: int) -> int:
    """The file the ``k``-th change rewrites: spread over the pool, every file in turn."""
    return (k * STRIDE) % files if files % STRIDE else k % files


def content(index: int, version: int, seed: int) -> bytes:
    """A few KiB of text naming the file and version; the size varies with the version."""
    rng = random.Random(seed * 1_000_003 + index * 7919 + version)
    header = f"file {index} version {version} at {time.time():.6f}\n"
    if version == 0:
        return header.encode()  # the pool's first version: one line (a million files fit)
    words = [_WORDS[rng.randrange(len(_WORDS))] for _ in range(rng.randrange(150, 1500))]
    return (header + " ".join(words) + "\n").encode()


def write_version(root: Path, index: int, version: int, seed: int) -> Change:
    """Rewrite the file in place (as most applications do) and note its mtime and size."""
    path = root / relpath(index)
    with open(path, "wb") as fh:
        fh.write(content(index, version, seed))
    st = os.stat(path)
    return Change(-1, index, version, st.st_mtime_ns, st.st_size)


class Writer(threading.Thread):
    """Changes ``rate`` files a second, round robin over the pool, on a fixed timetable."""

    def __init__(self, root: Path, ledger: Ledger, settings: Settings) -> None:
        super().__init__(name="writer", daemon=True)
        self.root = root
        self.ledger = ledger
        self.settings = settings
        self.planned = max(1, round(settings.rate * settings.seconds))
        self.stop = threading.Event()
        self.started_at = 0.0
        self.finished_at = 0.0
        self.late = 0  # writes more than a second behind their slot
        self.version = [0] * settings.files

    def run(self) -> None:
        s = self.settings
        t0 = time.monotonic()
        self.started_at = time.time()
        hard_stop = t0 + s.seconds + 10.0
        for k in range(self.planned):
            slot = t0 + k / s.rate
            delay = slot - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            now = time.monotonic()
            if self.stop.is_set() or now > hard_stop:
                break
            if now - slot > 1.0:
                self.late += 1
            index = pool_index(k, s.files)
            self.version[index] += 1
            change = write_version(self.root, index, self.version[index], s.seed)
            change.seq = k
            self.ledger.record(change)
        self.finished_at = time.time()


class AgentProcess:
    """``vaultwatch agent enroll`` then ``vaultwatch agent run``, as an installer and systemd would."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.config = base / "etc" / "agent.toml"
        self.state_dir = base / "state"
        self.log = base / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.measured: dict[str, Any] = {}

    def cpu_seconds(self) -> float:
        """CPU the agent process used so far."""
        return process_cpu_seconds(self.proc.pid) if self.proc is not None else 0.0

    def peak_rss_mib(self) -> float | None:
        """The agent's peak resident memory so far (VmHWM), MiB."""
        if self.proc is None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def enroll(self, server: ServerProcess, token: str, backup_set: dict[str, Any]) -> None:
        argv = [
            vaultwatch_binary(),
            "agent",
            "enroll",
            "--server",
            server.url,
            "--token",
            token,
            "--ca-cert",
            str(server.ca_cert),
            "--config",
            str(self.config),
            "--state-dir",
            str(self.state_dir),
            "--hostname",
            "bench-agent",
        ]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=os_env_without_secrets(),
        )
        if proc.returncode != 0:
            raise RuntimeError(f"agent enroll failed: {proc.stderr.strip()[-800:]}")
        doc = tomllib.loads(self.config.read_text())
        doc["backup_set"] = [backup_set]
        self.config.write_text(tomli_w.dumps(doc))
        self.config.chmod(0o600)

    def passphrase(self) -> str:
        return load_config(self.config).passphrase_file.read_text().splitlines()[0]

    def settings_used(self) -> dict[str, Any]:
        """The agent's configuration as the daemon parses it (defaults filled in)."""
        cfg = load_config(self.config)
        s = cfg.backup_sets[0]
        return {
            "backup_set": {
                "mode": s.mode,
                "quiet_seconds": s.quiet,
                "max_delay_seconds": s.max_delay,
                "rescan_seconds": s.rescan,
                "rpo_seconds": s.rpo,
                "excludes": s.excludes,
            },
            "heartbeat_seconds": cfg.heartbeat,
            "upload_workers": cfg.upload_workers,
            "backoff": [cfg.network.backoff_initial, cfg.network.backoff_max],
        }

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    vaultwatch_binary(),
                    "agent",
                    "run",
                    "--config",
                    str(self.config),
                    "--log-format",
                    "text",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=os_env_without_secrets(),
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)

    def problems(self) -> dict[str, Any]:
        """Warning and error lines the agent logged (text format: time LEVEL logger: message)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        warnings = [ln for ln in text.splitlines() if " WARNING " in ln]
        errors = [ln for ln in text.splitlines() if " ERROR " in ln or " CRITICAL " in ln]
        return {
            "warnings": len(warnings),
            "errors": len(errors),
            "first": (errors + warnings)[:5],
        }

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


class VaultPoller:
    """Reads new snapshots from the tenant's vault with the customer's passphrase."""

    def __init__(self, vault_dir: Path, passphrase: str, protected: Path, files: int) -> None:
        self.vault_dir = vault_dir
        self.passphrase = passphrase
        self.protected = protected
        self.repo: Repository | None = None
        self.seen: set[str] = set()
        self.snapshots: list[SnapshotSeen] = []

    def open(self) -> Repository | None:
        if self.repo is None:
            try:
                self.repo = Repository.open(LocalStore(self.vault_dir), self.passphrase)
            except RepositoryNotFoundError:
                return None
        return self.repo

    def poll(self, ledger: Ledger | None) -> list[SnapshotSeen]:
        """Snapshots committed since the last poll, oldest first, applied to the ledger."""
        repo = self.open()
        if repo is None:
            return []
        new = [i for i in repo.snapshot_ids() if i not in self.seen]
        if not new:
            return []
        noticed = time.time()
        repo.load_index(reload=True)
        found = []
        for sid in new:
            committed = os.stat(self.vault_dir / "snapshots" / sid).st_mtime
            found.append((committed, sid))
        out = []
        for committed, sid in sorted(found):
            self.seen.add(sid)
            snap = repo.load_snapshot(sid)
            seen = SnapshotSeen(
                id=sid,
                started_at=snap.time.timestamp(),
                committed_at=committed,
                noticed_at=noticed,
                duration=float(snap.summary.get("duration", 0.0)),
                files_changed=int(snap.summary.get("files_changed", 0)),
                files_new=int(snap.summary.get("files_new", 0)),
            )
            if ledger is not None:
                seen.captured = self._apply(repo, snap, seen, ledger)
            self.snapshots.append(seen)
            out.append(seen)
        return out

    def _apply(self, repo: Repository, snap: Any, seen: SnapshotSeen, ledger: Ledger) -> int:
        """Read the directories holding changes not committed yet (not the whole tree)."""
        folders: dict[str, list[int]] = {}
        for index in ledger.pending_files():
            folders.setdefault(os.path.dirname(relpath(index)), []).append(index)
        captured = 0
        for folder, indexes in folders.items():
            try:
                _, node = resolve(repo, snap, str(self.protected / folder))
            except PathNotFoundError:
                continue
            if node is None or node.subtree is None:
                continue
            tree = repo.load_tree(node.subtree)
            for index in indexes:
                entry = tree.find(os.fsencode(os.path.basename(relpath(index))))
                if entry is not None and entry.type == "file":
                    captured += ledger.capture(index, entry.mtime_ns, entry.size, seen)
        return captured

    def close(self) -> None:
        if self.repo is not None:
            self.repo.close()


def make_pool(root: Path, settings: Settings, ledger: Ledger) -> None:
    """The protected folder's files at version 0."""
    for i in range(settings.files):
        (root / relpath(i)).parent.mkdir(parents=True, exist_ok=True)
        change = write_version(root, i, 0, settings.seed)
        ledger.record(change, initial=True)


def run_continuous(
    settings: Settings, console: Console, *, show_progress: bool = True
) -> dict[str, Any]:
    """Server, enrolled agent, writer, poller; every figure of the run."""
    started_at = now_iso()
    load_before = load_average()
    work = settings.workdir.resolve()
    prepare_workdir(work)
    protected = work / "protected"
    protected.mkdir()
    ledger = Ledger(settings.files)
    make_pool(protected, settings, ledger)
    backup_set = {"name": SET_NAME, "paths": [str(protected)], "mode": "continuous"}
    backup_set.update(settings.backup_set)

    agent = AgentProcess(work / "agent")
    poller: VaultPoller | None = None
    writer = Writer(protected, ledger, settings)
    errors: list[str] = []
    with running_server(work / "server" / "data") as server:
        tenant = server.create_tenant("Bench continuous")
        agent.enroll(server, server.tokens(tenant, 1)[0], backup_set)
        agent_settings = agent.settings_used()
        console.print(
            f"server {server.url} (pid {server.pid}); agent set: "
            + ", ".join(f"{k} {v}" for k, v in agent_settings["backup_set"].items())
        )
        agent_start = time.time()
        agent.start()
        poller = VaultPoller(
            server.vault_dir(tenant), agent.passphrase(), protected, settings.files
        )
        try:
            # The agent's first pass backs up the whole pool; changes are timed after it.
            deadline = time.monotonic() + settings.start_timeout
            with console.status("waiting for the agent's first snapshot ..."):
                while not poller.snapshots:
                    if not agent.alive():
                        raise RuntimeError(f"the agent exited:\n{agent.tail()}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"no first snapshot after {settings.start_timeout:.0f} s"
                        )
                    poller.poll(None)
                    time.sleep(settings.poll_interval)
            first = poller.snapshots[0]
            console.print(
                f"first snapshot {first.id[:8]} of {settings.files} files committed "
                f"{first.committed_at - agent_start:.1f} s after the agent started"
            )
            agent.measured["rss_after_first_snapshot_mib"] = agent.peak_rss_mib()
            if settings.idle > 0:
                _measure_idle(settings, console, agent, poller)
            cpu0, t0 = agent.cpu_seconds(), time.monotonic()
            _measure(settings, console, agent, poller, ledger, writer, show_progress)
            elapsed = time.monotonic() - t0
            agent.measured["run_cpu_percent"] = 100 * (agent.cpu_seconds() - cpu0) / elapsed
            agent.measured["peak_rss_mib"] = agent.peak_rss_mib()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            writer.stop.set()
            agent.stop()
            problems = agent.problems()
            if poller is not None:
                poller.close()
        heartbeat_ok = _agent_known(server)
    if settings.restic:
        agent.measured["restic_nochange_seconds"] = restic_nochange(
            settings.restic, protected, work / "restic", console
        )
    return _results(
        settings,
        started_at,
        load_before,
        agent_settings,
        ledger,
        writer,
        poller,
        agent_start,
        problems,
        heartbeat_ok,
        errors,
        agent.measured,
    )


def _measure_idle(
    settings: Settings, console: Console, agent: AgentProcess, poller: VaultPoller
) -> None:
    """The agent with nothing to do: its CPU, and whether it writes snapshots anyway."""
    before = len(poller.snapshots)
    with console.status(f"agent idle for {settings.idle:.0f} s ..."):
        time.sleep(2.0)  # the first snapshot's report and status settle
        cpu0, t0 = agent.cpu_seconds(), time.monotonic()
        time.sleep(settings.idle)
        used = agent.cpu_seconds() - cpu0
        elapsed = time.monotonic() - t0
    poller.poll(None)
    agent.measured["idle_seconds"] = round(elapsed, 1)
    agent.measured["idle_cpu_seconds"] = round(used, 3)
    agent.measured["idle_cpu_percent"] = 100 * used / elapsed
    agent.measured["idle_snapshots"] = len(poller.snapshots) - before
    console.print(
        f"idle {elapsed:.0f} s: agent CPU {used:.2f} s ({100 * used / elapsed:.2f} %), "
        f"{len(poller.snapshots) - before} snapshots"
    )


def restic_nochange(binary: str, source: Path, work: Path, console: Console) -> float | None:
    """Seconds of one restic backup of ``source`` after a first one (nothing changed)."""
    env = {
        **os_env_without_secrets(),
        "RESTIC_PASSWORD": "bench",
        "RESTIC_CACHE_DIR": str(work / "cache"),
    }
    repo = work / "repo"
    work.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> float | None:
        t0 = time.monotonic()
        proc = subprocess.run(
            [binary, "-r", str(repo), *args], env=env, capture_output=True, check=False
        )
        if proc.returncode != 0:
            console.print(f"restic {args[0]} failed: {proc.stderr.decode(errors='replace')[-400:]}")
            return None
        return time.monotonic() - t0

    with console.status("restic: init, first backup, no-change backup ..."):
        if run("init") is None or run("backup", "--host", "bench", str(source)) is None:
            return None
        return run("backup", "--host", "bench", str(source))


def _agent_known(server: ServerProcess) -> bool:
    """Whether the server heard the agent's heartbeat (it knows the agent's backup set)."""
    from vaultwatch.catalog.models import BackupSet

    with server.catalog.session() as session:
        return session.query(BackupSet).filter(BackupSet.name == SET_NAME).count() == 1


def _measure(
    settings: Settings,
    console: Console,
    agent: AgentProcess,
    poller: VaultPoller,
    ledger: Ledger,
    writer: Writer,
    show_progress: bool,
) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=not show_progress) as bar:
        written_task = bar.add_task("changes written  ", total=writer.planned, info="")
        committed_task = bar.add_task("changes committed", total=writer.planned, info="")
        writer.start()
        drain_until: float | None = None
        while True:
            if not agent.alive():
                raise RuntimeError(f"the agent exited during the run:\n{agent.tail()}")
            fresh = poller.poll(ledger)
            written, committed = ledger.counts()
            bar.update(written_task, completed=written)
            info = ""
            if poller.snapshots:
                last = poller.snapshots[-1]
                info = f"{len(poller.snapshots) - 1} snapshots, last {last.id[:8]}"
            bar.update(committed_task, completed=committed, info=info)
            for snap in fresh:
                bar.console.print(
                    f"  snapshot {snap.id[:8]}: {snap.files_changed} files changed, backup "
                    f"{snap.duration:.1f} s, {snap.captured} changes newly committed"
                )
            if not writer.is_alive():
                if drain_until is None:
                    drain_until = time.monotonic() + settings.drain
                if committed >= written or time.monotonic() > drain_until:
                    break
            time.sleep(settings.poll_interval)
        writer.join(timeout=10)


def _results(
    settings: Settings,
    started_at: str,
    load_before: list[float],
    agent_settings: dict[str, Any],
    ledger: Ledger,
    writer: Writer,
    poller: VaultPoller | None,
    agent_start: float,
    problems: dict[str, Any],
    heartbeat_ok: bool,
    errors: list[str],
    measured: dict[str, Any],
) -> dict[str, Any]:
    changes = ledger.changes
    captured = [c for c in changes if c.committed_at is not None]
    exact = [c for c in captured if c.exact]
    latencies = [c.latency for c in captured if c.latency is not None]
    snaps = poller.snapshots if poller is not None else []
    during = snaps[1:]
    gaps = [b.committed_at - a.committed_at for a, b in itertools.pairwise(during)]
    stats = percentiles(latencies)
    duration = (writer.finished_at - writer.started_at) if writer.finished_at else 0.0
    p95 = stats["p95"]
    goal_p95 = GOAL_LARGE_P95_SECONDS if settings.files >= 1_000_000 else GOAL_P95_SECONDS
    goal_met = p95 is not None and float(p95) <= goal_p95 and len(captured) == len(changes)
    return {
        "benchmark": "continuous",
        "started_at": started_at,
        "command": " ".join(["python -m bench.continuous", *sys.argv[1:]]),
        "machine": host_info(),
        "load_average_before": load_before,
        "parameters": {
            "seconds": settings.seconds,
            "rate_per_second": settings.rate,
            "files": settings.files,
            "poll_interval": settings.poll_interval,
            "drain_seconds": settings.drain,
            "seed": settings.seed,
        },
        "agent_config": agent_settings,
        "writer": {
            "planned": writer.planned,
            "written": len(changes),
            "seconds": round(duration, 3),
            "achieved_rate": len(changes) / duration if duration else None,
            "late_writes": writer.late,
        },
        "changes": {
            "written": len(changes),
            "committed": len(captured),
            "committed_exact": len(exact),
            "committed_superseded": len(captured) - len(exact),
            "not_committed": len(changes) - len(captured),
        },
        "latency_seconds": stats,
        "snapshots": {
            "first_after_agent_start": snaps[0].committed_at - agent_start if snaps else None,
            "during_run": len(during),
            "backup_seconds": percentiles([s.duration for s in during]),
            "commit_interval_seconds": percentiles(gaps),
            "notice_delay_seconds": percentiles([s.noticed_at - s.committed_at for s in during]),
            "list": [asdict(s) for s in snaps],
        },
        "agent_log": problems,
        "server_knows_backup_set": heartbeat_ok,
        "agent": {
            **measured,
            "goals": {"cpu_percent_at_most": GOAL_CPU_PERCENT, "rss_mib_at_most": GOAL_RSS_MIB},
        },
        "goal": {"p95_seconds_at_most": goal_p95, "met": goal_met},
        "errors": errors,
        "ok": not errors and bool(captured),
    }


# -- reporting -----------------------------------------------------------------------------------


def _s(value: Any) -> str:
    return "—" if value is None else f"{float(value):,.2f} s"


def render_table(results: dict[str, Any]) -> Table:
    """The headline figures for the terminal."""
    lat, ch, cfg = results["latency_seconds"], results["changes"], results["agent_config"]
    table = Table(title="Continuous protection: change → committed snapshot")
    table.add_column("Measure")
    table.add_column("Value", justify="right")
    table.add_column("Goal")
    met = results["goal"]["met"]
    table.add_row("latency p50", _s(lat["p50"]), "")
    table.add_row(
        "latency p95",
        _s(lat["p95"]),
        f"≤ {results['goal']['p95_seconds_at_most']:.0f} s " + ("✅" if met else "❌"),
    )
    table.add_row("latency max", _s(lat["max"]), "")
    table.add_row("changes committed", f"{ch['committed']:,} of {ch['written']:,}", "all")
    table.add_row(
        "  exact version / superseded",
        f"{ch['committed_exact']:,} / {ch['committed_superseded']:,}",
        "",
    )
    for row in _agent_rows(results["agent"]):
        cells = [c.strip() for c in row.strip("|").split("|")]
        table.add_row(cells[0], cells[1], " ".join(c for c in cells[2:] if c))
    table.add_row("writer rate", f"{results['writer']['achieved_rate'] or 0:,.1f}/s", "")
    table.add_row("snapshots during run", str(results["snapshots"]["during_run"]), "")
    table.add_row(
        "debounce (quiet / max delay)",
        f"{cfg['backup_set']['quiet_seconds']:g} s / {cfg['backup_set']['max_delay_seconds']:g} s",
        "agent default",
    )
    return table


def _pct(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f} %"


def _agent_rows(agent: dict[str, Any]) -> list[str]:
    """Markdown rows for the agent's own cost (and restic's no-change backup)."""
    cpu, rss = agent.get("run_cpu_percent"), agent.get("peak_rss_mib")
    goals = agent["goals"]
    cpu_ok = cpu is not None and cpu <= goals["cpu_percent_at_most"]
    rss_ok = rss is not None and rss <= goals["rss_mib_at_most"]
    restic = agent.get("restic_nochange_seconds")
    return [
        f"| Agent CPU during the run (of one core) | {_pct(cpu)} | "
        f"≤ {goals['cpu_percent_at_most']:.0f} % | {'✅' if cpu_ok else '❌'} |",
        f"| Agent peak RSS | {'—' if rss is None else f'{rss:,.0f} MiB'} | "
        f"≤ {goals['rss_mib_at_most']:.0f} MiB | {'✅' if rss_ok else '❌'} |",
        f"| Agent CPU idle ({agent.get('idle_seconds', 0):g} s, no change) | "
        f"{_pct(agent.get('idle_cpu_percent'))} | | |",
        f"| Snapshots while idle | {agent.get('idle_snapshots', '—')} | 0 | |",
        f"| restic no-change backup of the pool | "
        f"{'not measured' if restic is None else _s(restic)} | | |",
    ]


def render_markdown(results: dict[str, Any]) -> str:
    """The report written next to the JSON."""
    lat, ch, p = results["latency_seconds"], results["changes"], results["parameters"]
    cfg, snaps = results["agent_config"], results["snapshots"]
    bs = cfg["backup_set"]
    met = results["goal"]["met"]
    lines = [
        f"# Continuous protection — {results['started_at']}",
        "",
        f"A writer changed {p['rate_per_second']:g} files a second for {p['seconds']:g} s, "
        f"spread over {p['files']:,} files (1-9 KiB once rewritten) in a folder protected by a "
        f"continuous backup set; a real agent process sent each backup over TLS to a real "
        "server (SQLite catalog) on loopback. Latency: from the file's mtime to the mtime of "
        "the first committed snapshot object in the vault that holds that version or a later "
        "one, found by opening the vault with the customer's passphrase and reading each new "
        "snapshot's tree.",
        "",
        "| Measure | Value | Goal | Met |",
        "|---|---:|---|---|",
        f"| Latency p50 | {_s(lat['p50'])} | | |",
        f"| Latency p95 | {_s(lat['p95'])} | ≤ {results['goal']['p95_seconds_at_most']:.0f} s "
        f"| {'✅ yes' if met else '❌ no'} |",
        *_agent_rows(results["agent"]),
        f"| Latency max | {_s(lat['max'])} | | |",
        f"| Changes committed | {ch['committed']:,} of {ch['written']:,} | all | "
        f"{'✅' if ch['not_committed'] == 0 else '❌'} |",
        f"| … with that exact version | {ch['committed_exact']:,} | | |",
        f"| … superseded by a newer version first | {ch['committed_superseded']:,} | | |",
        f"| Snapshots during the run | {snaps['during_run']} | | |",
        f"| Backup duration p50 / max | {_s(snaps['backup_seconds']['p50'])} / "
        f"{_s(snaps['backup_seconds']['max'])} | | |",
        f"| Time between commits p50 / max | {_s(snaps['commit_interval_seconds']['p50'])} / "
        f"{_s(snaps['commit_interval_seconds']['max'])} | | |",
        "",
        f"Writer: {results['writer']['written']:,} of {results['writer']['planned']:,} planned "
        f"changes in {results['writer']['seconds']:.1f} s "
        f"({results['writer']['achieved_rate'] or 0:.1f}/s, {results['writer']['late_writes']} "
        f"more than 1 s late). First snapshot (whole pool) "
        f"{_s(snaps['first_after_agent_start'])} after the agent started. The server knew the "
        f"agent's backup set from its heartbeat: {'yes' if results['server_knows_backup_set'] else 'no'}. "
        f"Agent log: {results['agent_log']['warnings']} warnings, "
        f"{results['agent_log']['errors']} errors.",
        "",
        "## Agent configuration used",
        "",
        f"Continuous set with the agent's defaults: quiet {bs['quiet_seconds']:g} s, max delay "
        f"{bs['max_delay_seconds']:g} s, rescan {bs['rescan_seconds']:g} s, RPO "
        f"{bs['rpo_seconds']:g} s; heartbeat {cfg['heartbeat_seconds']:g} s, "
        f"{cfg['upload_workers']} upload worker(s).",
        "",
        *machine_section(results, "other work ran meanwhile", before=" the run"),
    ]
    if results["errors"]:
        lines += ["## Errors", "", *(f"- {e}" for e in results["errors"]), ""]
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.continuous",
        description="Change-to-committed-snapshot latency of continuous protection.",
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="how long the writer runs (default 60)"
    )
    parser.add_argument(
        "--rate", type=float, default=50.0, help="file changes per second (default 50)"
    )
    parser.add_argument(
        "--files", type=int, default=1000, help="files the writer cycles through (default 1000)"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=90.0,
        help="seconds to wait for the last changes (default 90)",
    )
    parser.add_argument(
        "--poll", type=float, default=0.5, help="vault poll interval in seconds (default 0.5)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--idle",
        type=float,
        default=60.0,
        help="seconds of no change to measure the idle agent before the writer (default 60)",
    )
    parser.add_argument(
        "--restic", default=None, help="a restic binary: time one no-change backup of the pool"
    )
    add_output_options(parser, "continuous")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or args.files < 1 or args.seconds > 3600:
        parser.error("--seconds (up to 3600), --rate and --files must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = bench_console()
    settings = Settings(
        workdir=args.workdir,
        seconds=args.seconds,
        rate=args.rate,
        files=args.files,
        poll_interval=args.poll,
        drain=args.drain,
        seed=args.seed,
        idle=args.idle,
        restic=args.restic,
        # the agent's first pass backs up the whole pool
        start_timeout=max(180.0, args.files * 0.01),
    )
    console.print(f"load average before: {load_average()}")
    results = run_continuous(settings, console)
    publish(
        "continuous",
        results,
        render_markdown(results),
        render_table(results),
        args.results,
        console,
    )
    if not results["ok"]:
        return 1
    return 0 if results["goal"]["met"] else 2


if __name__ == "__main__":
    raise SystemExit(main())
