"""The agent's TOML configuration: where the gateways are, how to unlock the vault, what to protect.

Parsing is strict: an unknown key, a wrong type or a bad value stops the
agent with an error that names the key (``backup_set[2].quiet``), because a
typo in a backup configuration silently protecting nothing is the worst
outcome a backup service can have.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal, TypeVar

import tomli_w

from vaultwatch.durations import EXAMPLES, DurationError, parse_seconds
from vaultwatch.engine.errors import PolicyError
from vaultwatch.engine.retention import RetentionPolicy
from vaultwatch.errors import VaultwatchError

DEFAULT_CONFIG_PATH = Path("/etc/vaultwatch/agent.toml")
DEFAULT_STATE_DIR = Path("/var/lib/vaultwatch")

CONTINUOUS = "continuous"
SCHEDULED = "scheduled"
Mode = Literal["continuous", "scheduled"]

DEFAULT_QUIET = 2.0
"""Seconds of calm after a change before a continuous set backs up."""
DEFAULT_MAX_DELAY = 4.0
"""Seconds after the first unsaved change a continuous set backs up at the latest.

Under constant change this is the commit interval: changes wait up to this
long, so a change is committed within about these seconds (the 1,000,000-file
benchmark's 5 s goal for p95 of change to committed snapshot).
"""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(VaultwatchError):
    """The agent configuration is missing, unreadable or invalid."""

    exit_code = 2


@dataclass(frozen=True)
class ServerConfig:
    """How to reach the service: gateway URLs (tried in turn), the credential, the CA."""

    urls: list[str]
    credential: str = field(repr=False)
    ca_cert: Path | None = None
    timeout: float = 30.0


DEFAULT_BACKOFF_MAX = 5.0
"""The longest wait between reconnection attempts: a continuous service is back within
seconds of its gateway, and full jitter spreads a fleet's retries over that window."""


@dataclass(frozen=True)
class NetworkConfig:
    """Reconnection backoff: exponential from ``backoff_initial`` up to ``backoff_max``, full jitter."""

    backoff_initial: float = 1.0
    backoff_max: float = DEFAULT_BACKOFF_MAX


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus endpoint; off by default and bound to loopback unless told otherwise."""

    enabled: bool = False
    address: str = "127.0.0.1"
    port: int = 9469


@dataclass(frozen=True)
class BackupSetConfig:
    """One backup set: paths protected together into one line of snapshots."""

    name: str
    paths: list[str]
    mode: Mode
    excludes: list[str] = field(default_factory=list)
    # continuous
    quiet: float = DEFAULT_QUIET
    max_delay: float = DEFAULT_MAX_DELAY
    rescan: float = 3600.0
    # scheduled
    interval: float | None = None
    at: list[dtime] = field(default_factory=list)
    weekdays: list[int] = field(default_factory=list)
    # both
    retry_after: float = 300.0
    rpo: float = 900.0
    retention: dict[str, Any] | None = None
    """Retention the service should add for this set (a policy document); None: its default."""


@dataclass(frozen=True)
class AgentConfig:
    """The whole configuration file."""

    path: Path
    agent_id: str
    tenant: str
    hostname: str | None
    state_dir: Path
    passphrase_file: Path
    heartbeat: float
    upload_workers: int
    server: ServerConfig
    network: NetworkConfig
    metrics: MetricsConfig
    backup_sets: list[BackupSetConfig]
    log_level: str = "info"
    key_slot: str | None = None
    """This agent's own key slot in the tenant's vault, tried first when opening it."""


# -- value parsing -------------------------------------------------------------------------

T = TypeVar("T")


class _Section:
    """A table being read: remembers which keys were used so unknown ones can be reported."""

    def __init__(self, where: str, data: Any, path: Path) -> None:
        self.where = where
        self.path = path
        if not isinstance(data, dict):
            raise self.error("", f"must be a table, got {_type_name(data)}")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, message: str) -> ConfigError:
        key = self.key(name) if name else self.where
        return ConfigError(f"{self.path}: {key}: {message}")

    def get(self, name: str, parse: Callable[[Any], T], default: T) -> T:
        self.used.add(name)
        if name not in self.data:
            return default
        try:
            return parse(self.data[name])
        except _Bad as exc:
            raise self.error(name, str(exc)) from None

    def optional(self, name: str, parse: Callable[[Any], T]) -> T | None:
        self.used.add(name)
        if name not in self.data:
            return None
        return self.require(name, parse)

    def require(self, name: str, parse: Callable[[Any], T]) -> T:
        self.used.add(name)
        if name not in self.data:
            raise self.error(name, "is required")
        try:
            return parse(self.data[name])
        except _Bad as exc:
            raise self.error(name, str(exc)) from None

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key (check the spelling)")


class _Bad(Exception):
    """A value is invalid; the message is completed with the key by _Section."""


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a string, got {_type_name(value)}")
    return value


def _nonempty_str(value: Any) -> str:
    text = _str(value).strip()
    if not text:
        raise _Bad("must not be empty")
    return text


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false, got {_type_name(value)}")
    return value


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"must be an integer, got {_type_name(value)}")
        if not low <= value <= high:
            raise _Bad(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise _Bad('must be a duration such as 30, "30s", "5m" or "1h", got a boolean')
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_seconds(value)
        except DurationError as exc:
            raise _Bad(f"must be a duration such as {EXAMPLES}: {exc}") from None
    else:
        raise _Bad(f"must be a duration, got {_type_name(value)}")
    if seconds < 0:
        raise _Bad("must not be negative")
    return seconds


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise _Bad("must be greater than zero")
    return seconds


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Bad(f"must be an array of strings, got {_type_name(value)}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _Bad(f"item {i + 1} must be a string, got {_type_name(item)}")
        out.append(item)
    return out


def _abs_paths(value: Any) -> list[str]:
    paths = _str_list(value)
    if not paths:
        raise _Bad("must list at least one path")
    for p in paths:
        if not p.startswith("/"):
            raise _Bad(f"must hold absolute paths, got {p!r}")
    return [os.path.normpath(p) for p in paths]


def _urls(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    urls = _str_list(value)
    if not urls:
        raise _Bad("must list at least one gateway URL")
    for u in urls:
        if not u.startswith(("https://", "http://")):
            raise _Bad(f"must hold http(s) URLs, got {u!r}")
    return [u.rstrip("/") for u in urls]


def _times(value: Any) -> list[dtime]:
    if isinstance(value, str):
        value = [value]
    out = []
    for text in _str_list(value):
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
        if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise _Bad(f'must hold times of day as "HH:MM", got {text!r}')
        out.append(dtime(int(m.group(1)), int(m.group(2))))
    if not out:
        raise _Bad('must list at least one time of day, e.g. ["02:30"]')
    return sorted(set(out))


def _weekdays(value: Any) -> list[int]:
    out = set()
    for text in _str_list(value):
        day = text.strip().lower()[:3]
        if day not in WEEKDAYS:
            raise _Bad(f"must hold weekday names (mon ... sun), got {text!r}")
        out.add(WEEKDAYS.index(day))
    return sorted(out)


def _mode(value: Any) -> Mode:
    text = _str(value)
    if text == CONTINUOUS:
        return "continuous"
    if text == SCHEDULED:
        return "scheduled"
    raise _Bad(f"must be {CONTINUOUS!r} or {SCHEDULED!r}, got {text!r}")


def _log_level(value: Any) -> str:
    text = _str(value).lower()
    if text not in ("debug", "info", "warning", "error"):
        raise _Bad(f"must be debug, info, warning or error, got {text!r}")
    return text


def _key_slot(value: Any) -> str:
    text = _str(value)
    if not re.fullmatch(r"[0-9a-f]{32}", text):
        raise _Bad(f"must be a key slot id (32 hex digits), got {text!r}")
    return text


def _path(base: Path) -> Callable[[Any], Path]:
    def parse(value: Any) -> Path:
        text = _nonempty_str(value)
        p = Path(text)
        return p if p.is_absolute() else (base / p)

    return parse


# -- the file --------------------------------------------------------------------------------


def _retention(section: _Section) -> dict[str, Any] | None:
    """The set's ``[backup_set.retention]`` table, checked with the service's policy grammar."""
    section.used.add("retention")
    if "retention" not in section.data:
        return None
    try:
        policy = RetentionPolicy.from_document(
            section.data["retention"], where=section.key("retention")
        )
    except PolicyError as exc:
        raise ConfigError(f"{section.path}: {exc}") from None
    return policy.to_document()


def _backup_set(section: _Section) -> BackupSetConfig:
    name = section.require("name", _nonempty_str)
    if not _NAME_RE.match(name):
        raise section.error("name", f"must be 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    paths = section.require("paths", _abs_paths)
    mode = section.require("mode", _mode)
    excludes: list[str] = section.get("excludes", _str_list, [])
    retry_after = section.get("retry_after", _positive_duration, 300.0)
    retention = _retention(section)
    if mode == "continuous":
        for key in ("interval", "at", "weekdays"):
            if key in section.data:
                raise section.error(key, 'only applies to mode = "scheduled"')
        quiet = section.get("quiet", _positive_duration, DEFAULT_QUIET)
        max_delay = section.get("max_delay", _positive_duration, DEFAULT_MAX_DELAY)
        if max_delay < quiet:
            raise section.error("max_delay", f"must be at least quiet ({quiet:g}s)")
        rescan = section.get("rescan", _positive_duration, 3600.0)
        rpo = section.get("rpo", _positive_duration, 900.0)
        section.finish()
        return BackupSetConfig(
            name,
            paths,
            mode,
            excludes,
            quiet=quiet,
            max_delay=max_delay,
            rescan=rescan,
            retry_after=retry_after,
            rpo=rpo,
            retention=retention,
        )
    for key in ("quiet", "max_delay", "rescan"):
        if key in section.data:
            raise section.error(key, 'only applies to mode = "continuous"')
    interval: float | None = section.optional("interval", _positive_duration)
    at: list[dtime] = section.get("at", _times, [])
    weekdays: list[int] = section.get("weekdays", _weekdays, [])
    if interval is None and not at:
        raise section.error("interval", 'a scheduled set needs interval = "6h" or at = ["02:30"]')
    if interval is not None and at:
        raise section.error("at", "give either interval or at, not both")
    if weekdays and not at:
        raise section.error("weekdays", "only applies together with at")
    default_rpo = 2 * interval if interval is not None else (7 if weekdays else 1) * 86400.0 + 3600
    rpo = section.get("rpo", _positive_duration, default_rpo)
    section.finish()
    return BackupSetConfig(
        name,
        paths,
        mode,
        excludes,
        interval=interval,
        at=at,
        weekdays=weekdays,
        retry_after=retry_after,
        rpo=rpo,
        retention=retention,
    )


def parse_config(data: Mapping[str, Any], path: Path) -> AgentConfig:
    """Validate a parsed TOML document; ConfigError names the first bad key."""
    base = path.parent
    root = _Section("", dict(data), path)
    agent = _Section("agent", root.require("agent", lambda v: v), path)
    agent_id = agent.require("id", _nonempty_str)
    tenant = agent.get("tenant", _str, "")
    hostname = agent.optional("hostname", _nonempty_str)
    state_dir = agent.get("state_dir", _path(base), DEFAULT_STATE_DIR)
    passphrase_file = agent.require("passphrase_file", _path(base))
    heartbeat = agent.get("heartbeat", _positive_duration, 60.0)
    upload_workers = agent.get("upload_workers", _int_range(1, 16), 1)
    log_level = agent.get("log_level", _log_level, "info")
    key_slot = agent.optional("key_slot", _key_slot)
    agent.finish()

    server = _Section("server", root.require("server", lambda v: v), path)
    urls = server.require("urls", _urls)
    credential = server.require("credential", _nonempty_str)
    ca_cert = server.optional("ca_cert", _path(base))
    timeout = server.get("timeout", _positive_duration, 30.0)
    server.finish()

    net = _Section("network", root.get("network", lambda v: v, {}), path)
    initial = net.get("backoff_initial", _positive_duration, 1.0)
    maximum = net.get("backoff_max", _positive_duration, max(DEFAULT_BACKOFF_MAX, initial))
    if maximum < initial:
        raise net.error("backoff_max", f"must be at least backoff_initial ({initial:g}s)")
    net.finish()

    met = _Section("metrics", root.get("metrics", lambda v: v, {}), path)
    metrics = MetricsConfig(
        met.get("enabled", _bool, False),
        met.get("address", _nonempty_str, "127.0.0.1"),
        met.get("port", _int_range(1, 65535), 9469),
    )
    met.finish()

    raw_sets: Any = root.get("backup_set", lambda v: v, [])
    if not isinstance(raw_sets, list):
        raise root.error("backup_set", "must be an array of tables: write [[backup_set]]")
    sets: list[BackupSetConfig] = []
    for i, raw in enumerate(raw_sets):
        s = _backup_set(_Section(f"backup_set[{i + 1}]", raw, path))
        if any(o.name == s.name for o in sets):
            raise ConfigError(f"{path}: backup_set[{i + 1}].name: {s.name!r} is used twice")
        sets.append(s)
    root.finish()
    return AgentConfig(
        path=path,
        agent_id=agent_id,
        tenant=tenant,
        hostname=hostname,
        state_dir=state_dir,
        passphrase_file=passphrase_file,
        heartbeat=heartbeat,
        upload_workers=upload_workers,
        server=ServerConfig(urls, credential, ca_cert, timeout),
        network=NetworkConfig(initial, maximum),
        metrics=metrics,
        backup_sets=sets,
        log_level=log_level,
        key_slot=key_slot,
    )


def load_config(path: Path) -> AgentConfig:
    """Read and validate the configuration file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (enroll first: vaultwatch agent enroll --server URL --token T)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path)


def missing_paths(config: AgentConfig) -> list[tuple[str, str]]:
    """(set name, path) of every backup set path that names nothing on this server.

    The syntax may be fine while the set protects nothing (a typo, an unmounted
    disk); ``check-config`` reports these so they are not found after a loss.
    """
    return [
        (s.name, path) for s in config.backup_sets for path in s.paths if not os.path.lexists(path)
    ]


def config_document(
    *,
    agent_id: str,
    tenant: str,
    urls: list[str],
    credential: str,
    ca_cert: Path | None,
    state_dir: Path,
    passphrase_file: Path,
    backup_sets: list[dict[str, Any]] | None = None,
    hostname: str | None = None,
    key_slot: str | None = None,
) -> dict[str, Any]:
    """The TOML document ``enroll`` writes (backup sets are added by the administrator).

    ``hostname`` is the name enrolled under when it is not this host's own, so
    snapshots and heartbeats carry the name the catalog shows.
    """
    server: dict[str, Any] = {"urls": urls, "credential": credential}
    if ca_cert is not None:
        server["ca_cert"] = str(ca_cert)
    doc: dict[str, Any] = {
        "agent": {
            "id": agent_id,
            "tenant": tenant,
            "state_dir": str(state_dir),
            "passphrase_file": str(passphrase_file),
            "heartbeat": "60s",
            **({"hostname": hostname} if hostname else {}),
            **({"key_slot": key_slot} if key_slot else {}),
        },
        "server": server,
        "metrics": {"enabled": False, "address": "127.0.0.1", "port": 9469},
    }
    if backup_sets:  # an empty array would clash with [[backup_set]] tables added later
        doc["backup_set"] = backup_sets
    return doc


def dump_config(doc: Mapping[str, Any]) -> bytes:
    """TOML text of a configuration document."""
    return tomli_w.dumps(dict(doc)).encode()
