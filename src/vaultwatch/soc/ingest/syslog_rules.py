"""Syslog rules: which syslog messages become which alarms, read from a TOML file.

Rules are tried in order and the first whose conditions all hold decides;
when none does, the ``[default]`` table applies. A rule's unset fields come
from ``[default]``, and the default's unset fields from the built-in mapping
(node = the sending host, alert_group = ``syslog.<facility>``, alert_key = the
app-name, summary = the message, severity from the syslog severity). A
rule's message regex may name groups; templates such as ``"{device} failed"``
use them, along with the message fields (``hostname``, ``app_name``,
``procid``, ``msgid``, ``facility``, ``severity``, ``message``, ``peer`` and
``sd.<SD-ID>.<param>``). Every template name is checked when the file is
loaded, so a typo is an error naming its rule, not an empty alarm later.

Syslog severities map to alarm severities as: emerg, alert, crit -> critical;
err -> major; warning -> warning; notice, info -> indeterminate (shown, never
paged on by default); debug is dropped unless a rule matches it.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import AlarmClass, EventSource, EventType, Severity
from vaultwatch.soc.events import MAX_ATTRIBUTES, Event
from vaultwatch.soc.ingest.syslog import (
    FACILITIES,
    SEVERITIES,
    SEVERITY_ALIASES,
    SyslogMessage,
)

SEVERITY_MAP = (
    Severity.CRITICAL,  # emerg
    Severity.CRITICAL,  # alert
    Severity.CRITICAL,  # crit
    Severity.MAJOR,  # err
    Severity.WARNING,  # warning
    Severity.INDETERMINATE,  # notice
    Severity.INDETERMINATE,  # info
    Severity.INDETERMINATE,  # debug (dropped unless a rule keeps it)
)
"""Alarm severity for each syslog severity code, when no rule sets one."""
DEBUG = 7
MAX_RULES = 1000
MAX_SD_ATTRIBUTES = 30
BUILTIN_FIELDS = frozenset(
    {"hostname", "app_name", "procid", "msgid", "facility", "severity", "message", "peer"}
)
_TEMPLATE_NAME = re.compile(r"\{([^{}]*)\}")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|sd\.[^.{}\s]+\.[^{}\s]+")
_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_.:/-]+")
_MATCH_KEYS = frozenset({"app_name", "hostname", "facility", "severity", "message"})
_SET_KEYS = frozenset(
    {"alert_group", "alert_key", "node", "summary", "severity", "type", "alarm_class", "runbook"}
)


class SyslogRulesError(ValidationError):
    """A rules file that cannot be used; the message names the rule and the field."""


@dataclass(frozen=True)
class Template:
    """A text with ``{name}`` fields (``{{`` and ``}}`` for braces); missing fields render empty."""

    text: str
    names: frozenset[str]

    @classmethod
    def compile(cls, text: str) -> Template:
        names = set()
        for match in _TEMPLATE_NAME.finditer(text.replace("{{", "").replace("}}", "")):
            if not _FIELD_NAME.fullmatch(match.group(1)):
                raise ValueError(f"{{{match.group(1)}}} is not a field name")
            names.add(match.group(1))
        leftover = _TEMPLATE_NAME.sub("", text.replace("{{", "").replace("}}", ""))
        if "{" in leftover or "}" in leftover:
            raise ValueError("unbalanced brace (write {{ or }} for a literal one)")
        return cls(text, frozenset(names))

    def render(self, values: Mapping[str, str]) -> str:
        def field_value(match: re.Match[str]) -> str:
            token = match.group()
            if token in ("{{", "}}"):
                return token[0]
            return values.get(token[1:-1], "")

        return re.sub(r"\{\{|\}\}|\{[^{}]*\}", field_value, self.text)


@dataclass(frozen=True)
class Match:
    """A rule's conditions; None means "any". Globs and names compare case-insensitively."""

    app_name: tuple[str, ...] | None = None
    hostname: tuple[str, ...] | None = None
    facility: frozenset[int] | None = None
    severity: tuple[int, int] | None = None
    """Inclusive range of syslog severity codes (0 = emerg)."""
    message: re.Pattern[str] | None = None

    def groups(self, message: SyslogMessage, host: str) -> dict[str, str] | None:
        """The regex groups when every condition holds for `message` from `host`, else None."""
        if self.facility is not None and message.facility not in self.facility:
            return None
        if self.severity is not None and not (
            self.severity[0] <= message.severity <= self.severity[1]
        ):
            return None
        if self.app_name is not None and not _glob(message.app_name, self.app_name):
            return None
        if self.hostname is not None and not _glob(host, self.hostname):
            return None
        if self.message is None:
            return {}
        found = self.message.search(message.message)
        if found is None:
            return None
        return {name: value for name, value in found.groupdict().items() if value is not None}


@dataclass(frozen=True)
class Action:
    """What a rule sets; None leaves the field to the default."""

    alert_group: Template | None = None
    alert_key: Template | None = None
    node: Template | None = None
    summary: Template | None = None
    severity: Severity | None = None
    type: EventType | None = None
    alarm_class: AlarmClass | None = None
    runbook: Template | None = None
    drop: bool = False


@dataclass(frozen=True)
class SyslogRule:
    name: str
    match: Match
    action: Action


_BUILTIN = Action(
    alert_group=Template.compile("syslog.{facility}"),
    alert_key=Template.compile("{app_name}"),
    node=Template.compile("{hostname}"),
    summary=Template.compile("{message}"),
    type=EventType.PROBLEM,
)


@dataclass(frozen=True)
class SyslogRules:
    """An ordered rule set with its default; `apply` turns a message into an event."""

    rules: tuple[SyslogRule, ...] = ()
    default: Action = field(default_factory=Action)
    keep_debug: bool = False

    def decide(
        self, message: SyslogMessage, *, peer: str | None = None
    ) -> tuple[str, Action, dict[str, str]]:
        """The name of the rule that decides `message`, its action and its regex groups."""
        host = _host(message, peer)
        for rule in self.rules:
            groups = rule.match.groups(message, host)
            if groups is not None:
                return rule.name, rule.action, groups
        return "default", self.default, {}

    def apply(
        self, message: SyslogMessage, *, peer: str | None = None, now: datetime | None = None
    ) -> Event | None:
        """The event for `message`, or None when it is dropped."""
        name, action, groups = self.decide(message, peer=peer)
        if action.drop or (name == "default" and message.severity == DEBUG and not self.keep_debug):
            return None
        values = _values(message, peer)
        values.update(groups)
        chosen = _Chooser(action, self.default)
        group = _GROUP_CHARS.sub("_", chosen.text("alert_group", values)).strip("_.:/-")
        summary = chosen.text("summary", values) or (
            f"syslog {values['facility']}.{values['severity']} from {values['hostname']}"
        )
        occurred = message.timestamp
        now = now or datetime.now(UTC)
        if occurred is not None and occurred > now:
            occurred = now  # a sender whose clock runs ahead
        attributes = _attributes(message, peer, name)
        severity: Severity | None = chosen.pick(lambda a: a.severity)
        return Event(
            node=chosen.text("node", values) or values["hostname"],
            alert_group=group or "syslog",
            alert_key=chosen.text("alert_key", values),
            summary=summary,
            severity=SEVERITY_MAP[message.severity] if severity is None else severity,
            type=chosen.pick(lambda a: a.type) or EventType.PROBLEM,
            alarm_class=chosen.pick(lambda a: a.alarm_class),
            runbook=chosen.text("runbook", values) or None,
            source=EventSource.SYSLOG,
            occurred_at=occurred,
            attributes=attributes,
        )


@dataclass(frozen=True)
class _Chooser:
    """A field from the rule, else from the default, else the built-in."""

    action: Action
    default: Action

    def pick(self, get: Callable[[Action], Any]) -> Any:
        for action in (self.action, self.default, _BUILTIN):
            value = get(action)
            if value is not None:
                return value
        return None

    def text(self, name: str, values: Mapping[str, str]) -> str:
        template: Template | None = self.pick(lambda a: getattr(a, name))
        return template.render(values) if template is not None else ""


def _glob(value: str | None, patterns: tuple[str, ...]) -> bool:
    text = (value or "").lower()
    return any(fnmatch.fnmatchcase(text, pattern) for pattern in patterns)


def _host(message: SyslogMessage, peer: str | None) -> str:
    """The sending host: the message's hostname, else the address it came from."""
    return message.hostname or peer or "unknown"


def _values(message: SyslogMessage, peer: str | None) -> dict[str, str]:
    values = {
        "hostname": _host(message, peer),
        "app_name": message.app_name or "",
        "procid": message.procid or "",
        "msgid": message.msgid or "",
        "facility": message.facility_name,
        "severity": message.severity_name,
        "message": message.message,
        "peer": peer or "",
    }
    for sd_id, params in message.structured_data.items():
        for param, value in params.items():
            values[f"sd.{sd_id}.{param}"] = value
    return values


def _attributes(message: SyslogMessage, peer: str | None, rule: str) -> dict[str, str]:
    attributes = {
        "syslog_facility": message.facility_name,
        "syslog_severity": message.severity_name,
        "syslog_format": message.format,
        "syslog_rule": rule,
    }
    optional = {
        "app_name": message.app_name,
        "procid": message.procid,
        "msgid": message.msgid,
        "syslog_host": message.hostname,
        "peer": peer,
    }
    attributes.update({name: value for name, value in optional.items() if value})
    room = min(MAX_SD_ATTRIBUTES, MAX_ATTRIBUTES - len(attributes))
    for sd_id, params in message.structured_data.items():
        for param, value in params.items():
            if room <= 0:
                return attributes
            attributes[f"sd.{sd_id}.{param}"] = value
            room -= 1
    return attributes


# -- loading ------------------------------------------------------------------------------------


def load_rules(path: str | Path) -> SyslogRules:
    """Read a rules file; SyslogRulesError names the file, the rule and the field at fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SyslogRulesError(f"cannot read syslog rules file {path}: {exc}") from None
    return parse_rules(text, source=str(path))


def default_rules() -> SyslogRules:
    """The rules shipped with the service (`DEFAULT_RULES`)."""
    return parse_rules(DEFAULT_RULES, source="built-in syslog rules")


def parse_rules(text: str, *, source: str = "syslog rules") -> SyslogRules:
    """Rules from TOML text; see the module docstring and docs/syslog.md for the format."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SyslogRulesError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(document) - {"rule", "default"}
    if unknown:
        raise SyslogRulesError(
            f"{source}: unknown top-level key {sorted(unknown)[0]!r} (use [[rule]] and [default])"
        )
    default_table = document.get("default", {})
    if not isinstance(default_table, dict):
        raise SyslogRulesError(f"{source}: [default] must be a table")
    where = f"{source}: [default]"
    options = {"keep_debug": default_table.get("keep_debug", False)}
    options["drop"] = default_table.get("drop", False)
    for option, value in options.items():
        if not isinstance(value, bool):
            raise SyslogRulesError(f"{where} field {option!r}: must be true or false")
    default_set = {k: v for k, v in default_table.items() if k not in options}
    default = _with_drop(_action(default_set, BUILTIN_FIELDS, where, prefix=""), options["drop"])
    raw_rules = document.get("rule", [])
    if not isinstance(raw_rules, list):
        raise SyslogRulesError(f"{source}: 'rule' must be an array of tables ([[rule]])")
    if len(raw_rules) > MAX_RULES:
        raise SyslogRulesError(f"{source}: at most {MAX_RULES} rules")
    rules: list[SyslogRule] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_rules, start=1):
        rule = _rule(raw, number, source)
        if rule.name in seen:
            raise SyslogRulesError(
                f"{source}: rule {number} field 'name': {rule.name!r} is used twice"
            )
        seen.add(rule.name)
        rules.append(rule)
    return SyslogRules(rules=tuple(rules), default=default, keep_debug=options["keep_debug"])


def _rule(raw: object, number: int, source: str) -> SyslogRule:
    if not isinstance(raw, dict):
        raise SyslogRulesError(f"{source}: rule {number} must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or name == "default":
        raise SyslogRulesError(
            f"{source}: rule {number} field 'name': required, a non-empty text other than 'default'"
        )
    where = f"{source}: rule {number} ({name!r})"
    unknown = set(raw) - {"name", "match", "set", "drop"}
    if unknown:
        raise SyslogRulesError(
            f"{where}: unknown field {sorted(unknown)[0]!r} (a rule has name, match, set, drop)"
        )
    match_table = _table(raw.get("match", {}), where, "match")
    match = _match(match_table, where)
    groups = frozenset(match.message.groupindex) if match.message is not None else frozenset()
    set_table = dict(_table(raw.get("set", {}), where, "set"))
    drop = raw.get("drop", False)
    if not isinstance(drop, bool):
        raise SyslogRulesError(f"{where} field 'drop': must be true or false")
    if not drop and not set_table:
        raise SyslogRulesError(f"{where}: needs a [rule.set] table or drop = true")
    action = _action(set_table, BUILTIN_FIELDS | groups, where, prefix="set.")
    return SyslogRule(name=name, match=match, action=_with_drop(action, drop))


def _with_drop(action: Action, drop: bool) -> Action:
    return replace(action, drop=True) if drop else action


def _table(value: object, where: str, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SyslogRulesError(f"{where} field {name!r}: must be a table")
    return value


def _match(table: dict[str, Any], where: str) -> Match:
    unknown = set(table) - _MATCH_KEYS
    if unknown:
        raise SyslogRulesError(
            f"{where} field 'match.{sorted(unknown)[0]}': unknown condition "
            f"(use {', '.join(sorted(_MATCH_KEYS))})"
        )

    def fail(key: str, problem: str) -> SyslogRulesError:
        return SyslogRulesError(f"{where} field 'match.{key}': {problem}")

    globs: dict[str, tuple[str, ...] | None] = {}
    for key in ("app_name", "hostname"):
        value = table.get(key)
        if value is None:
            globs[key] = None
            continue
        items = _strings(value)
        if items is None:
            raise fail(key, "must be a glob or a list of globs")
        globs[key] = tuple(item.lower() for item in items)
    facility = None
    if "facility" in table:
        raw = table["facility"]
        items = _strings(raw) if not isinstance(raw, int) else [str(raw)]
        codes = [_facility(item) for item in items] if items is not None else [None]
        if None in codes or isinstance(raw, bool):
            raise fail("facility", f"use facility names ({', '.join(FACILITIES)}) or codes 0-23")
        facility = frozenset(code for code in codes if code is not None)
    severity = None
    if "severity" in table:
        severity = _severity_range(table["severity"])
        if severity is None:
            raise fail("severity", 'a syslog severity ("err") or an inclusive range ("emerg..err")')
    message = None
    if "message" in table:
        if not isinstance(table["message"], str):
            raise fail("message", "must be a regular expression in a string")
        try:
            message = re.compile(table["message"])
        except re.error as exc:
            raise fail("message", f"invalid regular expression: {exc}") from None
    return Match(
        app_name=globs["app_name"],
        hostname=globs["hostname"],
        facility=facility,
        severity=severity,
        message=message,
    )


def _strings(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _facility(name: str) -> int | None:
    text = name.strip().lower()
    if text.isdigit():
        return int(text) if int(text) < len(FACILITIES) else None
    return FACILITIES.index(text) if text in FACILITIES else None


def syslog_severity(name: str | int) -> int | None:
    """``"err"``, ``"error"`` or ``3`` -> 3; None when it names no syslog severity."""
    if isinstance(name, bool):
        return None
    if isinstance(name, int):
        return name if 0 <= name < len(SEVERITIES) else None
    text = name.strip().lower()
    if text.isdigit():
        return syslog_severity(int(text))
    if text in SEVERITIES:
        return SEVERITIES.index(text)
    return SEVERITY_ALIASES.get(text)


def _severity_range(value: object) -> tuple[int, int] | None:
    if isinstance(value, int):
        code = syslog_severity(value)
        return None if code is None else (code, code)
    if not isinstance(value, str):
        return None
    low_text, _, high_text = value.partition("..")
    low = syslog_severity(low_text)
    high = syslog_severity(high_text) if high_text else low
    if low is None or high is None:
        return None
    return (min(low, high), max(low, high))


def _action(table: dict[str, Any], names: frozenset[str], where: str, *, prefix: str) -> Action:
    unknown = set(table) - _SET_KEYS
    if unknown:
        raise SyslogRulesError(
            f"{where} field '{prefix}{sorted(unknown)[0]}': unknown field "
            f"(use {', '.join(sorted(_SET_KEYS))})"
        )

    def fail(key: str, problem: str) -> SyslogRulesError:
        return SyslogRulesError(f"{where} field '{prefix}{key}': {problem}")

    templates: dict[str, Template | None] = {}
    for key in ("alert_group", "alert_key", "node", "summary", "runbook"):
        value = table.get(key)
        if value is None:
            templates[key] = None
            continue
        if not isinstance(value, str):
            raise fail(key, "must be a text")
        try:
            template = Template.compile(value)
        except ValueError as exc:
            raise fail(key, str(exc)) from None
        missing = {n for n in template.names if n not in names and not n.startswith("sd.")}
        if missing:
            raise fail(
                key, f"unknown field {{{sorted(missing)[0]}}} (not a message field or regex group)"
            )
        templates[key] = template
    if key_template := templates["alert_group"]:
        literal = _TEMPLATE_NAME.sub("x", key_template.text)
        if _GROUP_CHARS.search(literal):
            raise fail("alert_group", "letters, digits and . _ : / - only (e.g. syslog.kernel)")
    severity = None
    if "severity" in table:
        try:
            severity = Severity.parse(table["severity"])
        except (ValueError, TypeError) as exc:
            raise fail("severity", str(exc)) from None
    kind = None
    if "type" in table:
        try:
            kind = EventType(table["type"])
        except ValueError:
            raise fail("type", "must be 'problem' or 'resolution'") from None
    alarm_class = None
    if "alarm_class" in table:
        try:
            alarm_class = AlarmClass(table["alarm_class"])
        except ValueError:
            choices = ", ".join(c.value for c in AlarmClass)
            raise fail("alarm_class", f"must be one of {choices}") from None
    return Action(
        alert_group=templates["alert_group"],
        alert_key=templates["alert_key"],
        node=templates["node"],
        summary=templates["summary"],
        runbook=templates["runbook"],
        severity=severity,
        type=kind,
        alarm_class=alarm_class,
    )


DEFAULT_RULES = r"""
# Vaultwatch's built-in syslog rules. The first rule that matches decides;
# unset fields come from [default], then from the built-in mapping.

[default]
# node = "{hostname}", alert_group = "syslog.{facility}", alert_key = "{app_name}",
# summary = "{message}", severity from the syslog severity.
keep_debug = false

[[rule]]
name = "disk-io-error"
[rule.match]
app_name = "kernel"
message = 'I/O error,? (?:on )?dev(?:ice)? (?P<device>[A-Za-z0-9_-]+)'
[rule.set]
alert_group = "syslog.kernel.io"
alert_key = "{device}"
alarm_class = "hardware"
severity = "major"
summary = "Disk I/O error on {device}: {message}"

[[rule]]
name = "machine-check"
[rule.match]
app_name = "kernel"
message = '\[Hardware Error\]|EDAC \S+: .*error'
[rule.set]
alert_group = "syslog.kernel.hardware"
alert_key = ""
alarm_class = "hardware"
severity = "major"

[[rule]]
name = "filesystem-error"
[rule.match]
app_name = "kernel"
message = '(?P<fs>EXT4-fs|XFS|BTRFS)(?: error)? \(device (?P<device>[^)\s]+)\)(?::| error| critical)'
[rule.set]
alert_group = "syslog.kernel.fs"
alert_key = "{device}"
severity = "major"
summary = "{fs} error on {device}: {message}"

[[rule]]
name = "out-of-memory"
[rule.match]
app_name = "kernel"
message = 'Out of memory: Kill(?:ed)? process \d+ \((?P<process>[^)]+)\)'
[rule.set]
alert_group = "syslog.kernel.oom"
alert_key = "{process}"
alarm_class = "software"
severity = "major"
summary = "Out of memory: the kernel killed {process}"

[[rule]]
name = "nic-link-down"
[rule.match]
message = '\b(?P<interface>[A-Za-z][A-Za-z0-9_.-]*):? NIC Link is Down'
[rule.set]
alert_group = "syslog.link"
alert_key = "{interface}"
alarm_class = "network"
severity = "major"
type = "problem"
summary = "Link down on {interface}"

[[rule]]
name = "nic-link-up"
[rule.match]
message = '\b(?P<interface>[A-Za-z][A-Za-z0-9_.-]*):? NIC Link is Up'
[rule.set]
alert_group = "syslog.link"
alert_key = "{interface}"
alarm_class = "network"
type = "resolution"
summary = "Link up on {interface}"

[[rule]]
name = "carrier-lost"
[rule.match]
message = '^(?P<interface>[A-Za-z][A-Za-z0-9_.-]*): Lost carrier'
[rule.set]
alert_group = "syslog.link"
alert_key = "{interface}"
alarm_class = "network"
severity = "major"
summary = "Link down on {interface} (carrier lost)"

[[rule]]
name = "carrier-gained"
[rule.match]
message = '^(?P<interface>[A-Za-z][A-Za-z0-9_.-]*): Gained carrier'
[rule.set]
alert_group = "syslog.link"
alert_key = "{interface}"
alarm_class = "network"
type = "resolution"
summary = "Link up on {interface} (carrier gained)"

[[rule]]
name = "interface-down"
[rule.match]
message = 'Interface (?P<interface>[^,\s]+), changed state to (?:down|administratively down)'
[rule.set]
alert_group = "syslog.link"
alert_key = "{interface}"
alarm_class = "network"
severity = "major"
summary = "Link down on {interface}"

[[rule]]
name = "interface-up"
[rule.match]
message = 'Interface (?P<interface>[^,\s]+), changed state to up'
[rule.set]
alert_group = "syslog.link"
alert_key = "{interface}"
alarm_class = "network"
type = "resolution"
summary = "Link up on {interface}"
"""
"""The built-in rules: disk, memory and file-system errors, OOM kills, and link down/up pairs."""
