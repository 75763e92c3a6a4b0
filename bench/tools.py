"""One runner per backup tool, all with the same interface, each step a measured child.

Wall time comes from a monotonic clock around the child; peak memory and CPU time come
from os.wait4's resource usage of that child, taken by a bare launcher interpreter that
forks the tool (ru_maxrss is kept by the kernel, so a short spike is never missed the way
polling would miss it, but it also survives fork and exec, hence the small launcher). Each tool gets its own HOME and
cache directories under the work directory, so no run is helped by an earlier one's cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

PASSPHRASE = "correct horse battery staple bench"
REPO_ROOT = Path(__file__).resolve().parent.parent

# On this CPU family (AMD EPYC with SHA extensions) HMAC-SHA256 beats keyed BLAKE2b:
# `borg create` of 600 MiB random data took 2.5 s with repokey against 3.5 s with
# repokey-blake2, so borg gets its faster authenticated-encryption mode by default.
BORG_ENCRYPTION = "repokey"
BORG_COMPRESSION = "zstd,3"


def drop_page_cache() -> bool:
    """Flush dirty pages and drop the page cache; False when not permitted here."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
    except OSError:
        return False
    return True


def busy_cpu_seconds() -> float:
    """CPU time all processors have spent busy since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class StepResult:
    """One measured child process."""

    tool: str
    step: str
    argv: list[str]
    returncode: int
    ok: bool
    seconds: float
    max_rss_bytes: int
    user_seconds: float
    system_seconds: float
    sync_seconds: float
    other_cpu_seconds: float  # CPU used by everything else meanwhile: is the machine idle?
    dropped_cache: bool
    log: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def error_tail(self, lines: int = 15) -> str:
        """The end of the child's output, to say why a step failed."""
        try:
            text = Path(self.log).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class DiskUsage:
    """Size of a directory tree: apparent bytes, allocated bytes and file count."""

    bytes: int
    allocated_bytes: int
    files: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def disk_usage(path: Path) -> DiskUsage:
    """Walk path without following symlinks; a missing path is empty."""
    apparent = allocated = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            apparent += st.st_size
            allocated += st.st_blocks * 512
            files += 1
    return DiskUsage(apparent, allocated, files)


# ru_maxrss survives fork and exec: a child forked straight from this (large) harness
# would report the harness's own peak. A bare interpreter forks the tool instead, so the
# figure is the tool's (the launcher itself stays under 10 MiB).
_LAUNCHER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_pid, status, u = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"code": os.waitstatus_to_exitcode(status), "seconds": time.perf_counter() - start,
               "maxrss_kib": u.ru_maxrss, "utime": u.ru_utime, "stime": u.ru_stime}, f)
"""


@dataclass(frozen=True)
class ChildUsage:
    """What the launcher measured of the tool's process."""

    ru_maxrss: int  # KiB, as Linux reports it
    ru_utime: float
    ru_stime: float


def run_measured(
    argv: list[str], *, env: dict[str, str], cwd: Path, log: Path
) -> tuple[int, float, ChildUsage]:
    """Run argv to completion; return exit code, wall seconds and the child's usage."""
    log.parent.mkdir(parents=True, exist_ok=True)
    report = log.with_suffix(".usage.json")
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}   (cwd {cwd})\n".encode())
        out.flush()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-E", "-c", _LAUNCHER, str(report), *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        doc = json.loads(report.read_text())
        out.write(f"[exit {doc['code']} after {doc['seconds']:.2f} s]\n\n".encode())
    usage = ChildUsage(int(doc["maxrss_kib"]), float(doc["utime"]), float(doc["stime"]))
    return int(doc["code"]), float(doc["seconds"]), usage


class Runner:
    """Common plumbing; subclasses supply the command lines."""

    name = "tool"
    ok_codes: tuple[int, ...] = (0,)

    def __init__(self, workdir: Path, *, drop_caches: bool = True) -> None:
        self.base = workdir / self.name
        self.repo = self.base / "repo"
        self.home = self.base / "home"
        self.logs = self.base / "logs"
        self.drop_caches = drop_caches

    # -- to override ------------------------------------------------------------------

    def executable(self) -> str | None:
        """Path of the tool, or None when it is not installed."""
        raise NotImplementedError

    def version_argv(self) -> list[str]:
        raise NotImplementedError

    def tool_env(self) -> dict[str, str]:
        return {}

    def init_argv(self) -> list[str]:
        raise NotImplementedError

    def backup_argv(self, source: Path, label: str) -> list[str]:
        raise NotImplementedError

    def restore_argv(self, target: Path) -> tuple[list[str], Path]:
        """Command line and the directory to run it in."""
        raise NotImplementedError

    def settings(self) -> dict[str, str]:
        """Non-default choices made for this tool, for the report."""
        return {}

    # -- shared ------------------------------------------------------------------------

    def probe_argv(self) -> list[str]:
        """A command that must succeed for the tool to be measured."""
        return self.version_argv()

    def probe_label(self) -> str:
        """How failure messages name what was probed."""
        return self.name

    def missing_message(self) -> str:
        return f"{self.name} is not installed"

    def unavailable(self) -> str | None:
        """Why this tool cannot be benchmarked, or None when it can."""
        if self.executable() is None:
            return self.missing_message()
        try:
            proc = subprocess.run(
                self.probe_argv(),
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{self.name} does not run: {exc}"
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            last = lines[-1] if lines else f"exit {proc.returncode}"
            return f"{self.probe_label()} does not run: {last}"
        return None

    def version(self) -> str:
        try:
            proc = subprocess.run(
                self.version_argv(),
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        lines = proc.stdout.strip().splitlines()
        return lines[0] if proc.returncode == 0 and lines else "unknown"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "BORG_"))}
        env.pop("VAULTWATCH_PASSPHRASE", None)
        env.update(
            HOME=str(self.home),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            LC_ALL="C.UTF-8",
        )
        env.update(self.tool_env())
        return env

    def prepare(self) -> None:
        """Start from nothing: no repository, no cache, no logs."""
        shutil.rmtree(self.base, ignore_errors=True)
        for d in (self.home, self.logs):
            d.mkdir(parents=True)

    def _run(self, step: str, argv: list[str], cwd: Path | None = None) -> StepResult:
        dropped = drop_page_cache() if self.drop_caches else False
        busy = busy_cpu_seconds()
        rc, seconds, usage = run_measured(
            argv, env=self.env(), cwd=cwd or self.base, log=self.logs / f"{step}.log"
        )
        other = busy_cpu_seconds() - busy - usage.ru_utime - usage.ru_stime
        # What the tool left unwritten in the page cache; shown, not added to its time.
        start = time.perf_counter()
        os.sync()
        sync_seconds = time.perf_counter() - start
        return StepResult(
            tool=self.name,
            step=step,
            argv=argv,
            returncode=rc,
            ok=rc in self.ok_codes,
            seconds=seconds,
            max_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
            user_seconds=usage.ru_utime,
            system_seconds=usage.ru_stime,
            sync_seconds=sync_seconds,
            other_cpu_seconds=max(0.0, other),
            dropped_cache=dropped,
            log=str(self.logs / f"{step}.log"),
        )

    def init(self) -> StepResult:
        return self._run("init", self.init_argv())

    def backup(self, source: Path, label: str) -> StepResult:
        return self._run(f"backup-{label}", self.backup_argv(source.resolve(), label))

    def restore(self, target: Path) -> StepResult:
        target.mkdir(parents=True, exist_ok=True)
        argv, cwd = self.restore_argv(target.resolve())
        return self._run("restore", argv, cwd)

    def repo_size(self) -> DiskUsage:
        return disk_usage(self.repo)

    def cache_size(self) -> DiskUsage:
        """What the tool keeps on the client besides the repository."""
        return disk_usage(self.home)

    @staticmethod
    def restored_root(target: Path, source: Path) -> Path:
        """Where the restored copy of source landed inside target.

        restic and borg recreate the absolute source path under the target; a tool
        may also restore the directory itself or its contents.
        """
        source = source.resolve()
        wanted = set(os.listdir(source))
        for cand in (target / str(source).lstrip("/"), target / source.name, target):
            if cand.is_dir() and wanted <= set(os.listdir(cand)):
                return cand
        raise FileNotFoundError(f"no restored copy of {source} found under {target}")


class Restic(Runner):
    """restic: repository format 2 with its default ('auto') zstd compression."""

    name = "restic"

    def __init__(
        self,
        workdir: Path,
        *,
        drop_caches: bool = True,
        binary: str = "restic",
        name: str | None = None,
    ) -> None:
        self.name = name or self.name
        super().__init__(workdir, drop_caches=drop_caches)
        self.binary = binary

    def executable(self) -> str | None:
        return shutil.which(self.binary)

    def version_argv(self) -> list[str]:
        return [self.binary, "version"]

    def tool_env(self) -> dict[str, str]:
        return {"RESTIC_PASSWORD": PASSPHRASE, "RESTIC_CACHE_DIR": str(self.home / "cache")}

    def init_argv(self) -> list[str]:
        return [self.binary, "-r", str(self.repo), "init", "--repository-version", "2"]

    def backup_argv(self, source: Path, label: str) -> list[str]:
        # A fixed host name keeps parent-snapshot detection independent of the machine.
        return [self.binary, "-r", str(self.repo), "backup", "--host", "bench", str(source)]

    def restore_argv(self, target: Path) -> tuple[list[str], Path]:
        argv = [self.binary, "-r", str(self.repo), "restore", "latest", "--target"]
        return [*argv, str(target)], self.base

    def settings(self) -> dict[str, str]:
        return {"repository version": "2", "compression": "auto (zstd)"}


class Borg(Runner):
    """borg 1.x with zstd level 3 and its fastest authenticated encryption on this CPU."""

    name = "borg"
    ok_codes = (0, 1)  # 1 = finished with warnings

    def __init__(
        self,
        workdir: Path,
        *,
        drop_caches: bool = True,
        encryption: str = BORG_ENCRYPTION,
        binary: str = "borg",
        name: str | None = None,
    ) -> None:
        self.name = name or self.name
        super().__init__(workdir, drop_caches=drop_caches)
        self.encryption = encryption
        self.binary = binary
        self.last_archive: str | None = None

    def executable(self) -> str | None:
        return shutil.which(self.binary)

    def version_argv(self) -> list[str]:
        return [self.binary, "--version"]

    def tool_env(self) -> dict[str, str]:
        return {
            "BORG_PASSPHRASE": PASSPHRASE,
            "BORG_BASE_DIR": str(self.home),
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }

    def init_argv(self) -> list[str]:
        return [self.binary, "init", "-e", self.encryption, str(self.repo)]

    def backup_argv(self, source: Path, label: str) -> list[str]:
        self.last_archive = label
        return [
            self.binary,
            "create",
            "--compression",
            BORG_COMPRESSION,
            f"{self.repo}::{label}",
            str(source),
        ]

    def restore_argv(self, target: Path) -> tuple[list[str], Path]:
        if self.last_archive is None:
            raise RuntimeError("borg: nothing backed up yet")
        return [self.binary, "extract", f"{self.repo}::{self.last_archive}"], target

    def settings(self) -> dict[str, str]:
        return {"encryption": self.encryption, "compression": BORG_COMPRESSION}


class Vaultwatch(Runner):
    """Our CLI, with restic's conventions."""

    name = "vaultwatch"

    def __init__(
        self, workdir: Path, *, drop_caches: bool = True, binary: str | None = None
    ) -> None:
        super().__init__(workdir, drop_caches=drop_caches)
        self.binary = binary or os.environ.get(
            "VAULTWATCH_BIN", str(REPO_ROOT / ".venv" / "bin" / "vaultwatch")
        )

    def executable(self) -> str | None:
        return self.binary if os.access(self.binary, os.X_OK) else None

    def version_argv(self) -> list[str]:
        return [self.binary, "--version"]

    def probe_argv(self) -> list[str]:
        return [self.binary, "repo", "--help"]

    def probe_label(self) -> str:
        return "`vaultwatch repo`"

    def missing_message(self) -> str:
        return f"{self.binary} does not exist yet"

    def version(self) -> str:
        """CLI version plus the commit measured, since the package version rarely moves."""
        version = super().version()
        if version == "unknown":
            python = Path(self.binary).parent / "python"
            probe = "import importlib.metadata as m; print(m.version('vaultwatch'))"
            proc = subprocess.run(
                [str(python), "-c", probe], capture_output=True, text=True, check=False
            )
            version = proc.stdout.strip() if proc.returncode == 0 else "unknown"
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return f"{version} ({commit})" if commit else version

    def tool_env(self) -> dict[str, str]:
        return {"VAULTWATCH_PASSPHRASE": PASSPHRASE}

    def prepare(self) -> None:
        """Byte-compile the package first, as installing a wheel does.

        An editable install run with PYTHONDONTWRITEBYTECODE set (as CI shells
        often are) would otherwise compile every module again at every step.
        """
        super().prepare()
        python = Path(self.binary).parent / "python"
        compile_package = (
            "import compileall, os, vaultwatch; "
            "compileall.compile_dir(os.path.dirname(vaultwatch.__file__), quiet=1)"
        )
        subprocess.run([str(python), "-c", compile_package], check=False, capture_output=True)

    def init_argv(self) -> list[str]:
        return [self.binary, "repo", "init", "-r", str(self.repo)]

    def backup_argv(self, source: Path, label: str) -> list[str]:
        argv = [self.binary, "repo", "backup", "-r", str(self.repo), "--host", "bench"]
        return [*argv, str(source)]

    def restore_argv(self, target: Path) -> tuple[list[str], Path]:
        argv = [self.binary, "repo", "restore", "-r", str(self.repo), "latest", "--target"]
        return [*argv, str(target)], self.base


def write_results(
    name: str, results: dict[str, Any], markdown: str, out_dir: Path, *, latest: str | None = None
) -> list[Path]:
    """``<name>-<date>.json`` and ``.md``, and the newest report again as ``<name>-latest.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(results["started_at"]).strftime("%Y-%m-%d-%H%M%S")
    json_path = out_dir / f"{name}-{stamp}.json"
    md_path = out_dir / f"{name}-{stamp}.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(markdown)
    (out_dir / (latest or f"{name}-latest.md")).write_text(markdown)
    return [json_path, md_path]
