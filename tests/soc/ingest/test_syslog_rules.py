"""Syslog rules: matching, templates, defaults, the shipped rule set and clear errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import AlarmClass, EventSource, EventType, Severity
from vaultwatch.soc.events import Event, check_event
from vaultwatch.soc.ingest.syslog import SyslogMessage, parse_message
from vaultwatch.soc.ingest.syslog_rules import (
    DEFAULT_RULES,
    SyslogRulesError,
    default_rules,
    load_rules,
    parse_rules,
    syslog_severity,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def message(
    text: str,
    *,
    severity: int = 3,
    facility: int = 1,
    hostname: str | None = "host1",
    app_name: str | None = "app",
) -> SyslogMessage:
    return SyslogMessage(
        facility=facility,
        severity=severity,
        message=text,
        format="rfc5424",
        timestamp=NOW - timedelta(minutes=1),
        hostname=hostname,
        app_name=app_name,
    )


def apply(rules_text: str, msg: SyslogMessage) -> Event | None:
    return parse_rules(rules_text).apply(msg, peer="192.0.2.9", now=NOW)


def event_of(rules_text: str, msg: SyslogMessage) -> Event:
    event = apply(rules_text, msg)
    assert event is not None
    return check_event(event)


# -- the built-in mapping and default ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, Severity.CRITICAL),
        (1, Severity.CRITICAL),
        (2, Severity.CRITICAL),
        (3, Severity.MAJOR),
        (4, Severity.WARNING),
        (5, Severity.INDETERMINATE),
        (6, Severity.INDETERMINATE),
    ],
)
def test_syslog_severity_maps_to_alarm_severity(code: int, expected: Severity) -> None:
    event = event_of("", message("something", severity=code))
    assert event.severity == expected


def test_debug_is_dropped_unless_kept() -> None:
    assert apply("", message("chatter", severity=7)) is None
    kept = event_of("[default]\nkeep_debug = true\n", message("chatter", severity=7))
    assert kept.severity == Severity.INDETERMINATE


def test_a_rule_can_keep_a_debug_message() -> None:
    rules = (
        '[[rule]]\nname = "dbg"\n[rule.match]\nseverity = "debug"\n[rule.set]\nseverity = "minor"\n'
    )
    assert event_of(rules, message("x", severity=7)).severity == Severity.MINOR


def test_default_event_fields() -> None:
    event = event_of("", message("disk full", facility=3, app_name="backupd"))
    assert (event.node, event.alert_group, event.alert_key) == ("host1", "syslog.daemon", "backupd")
    assert (event.summary, event.type, event.source) == (
        "disk full",
        EventType.PROBLEM,
        EventSource.SYSLOG,
    )
    assert event.alarm_class is None
    assert event.occurred_at == NOW - timedelta(minutes=1)
    assert event.attributes["syslog_rule"] == "default"
    assert event.attributes["syslog_severity"] == "err"
    assert event.attributes["peer"] == "192.0.2.9"


def test_a_message_without_hostname_is_the_peers() -> None:
    assert event_of("", message("x", hostname=None)).node == "192.0.2.9"
    rules = '[[rule]]\nname = "lab"\nmatch.hostname = "192.0.2.*"\nset.alert_group = "lab"\n'
    assert event_of(rules, message("x", hostname=None)).alert_group == "lab"


def test_an_empty_node_template_falls_back_to_the_host() -> None:
    rules = '[[rule]]\nname = "n"\nmatch.message = "(?P<who>z)?x"\nset.node = "{who}"\n'
    assert event_of(rules, message("x")).node == "host1"


def test_a_sender_clock_ahead_is_clamped_to_now() -> None:
    msg = SyslogMessage(1, 3, "x", "rfc5424", timestamp=NOW + timedelta(hours=5), hostname="h")
    assert event_of("", msg).occurred_at == NOW


def test_an_empty_message_still_gets_a_summary() -> None:
    assert event_of("", message("", facility=4)).summary == "syslog auth.err from host1"


def test_default_table_overrides_the_builtin() -> None:
    rules = '[default]\nalert_group = "syslog.other"\nalert_key = "{app_name}-{facility}"\n'
    event = event_of(rules, message("x"))
    assert (event.alert_group, event.alert_key) == ("syslog.other", "app-user")


def test_default_can_drop_what_no_rule_matched() -> None:
    rules = """
    [default]
    drop = true
    [[rule]]
    name = "keep"
    match.message = "important"
    set.summary = "kept: {message}"
    """
    assert apply(rules, message("routine")) is None
    assert event_of(rules, message("important news")).summary == "kept: important news"


# -- matching ------------------------------------------------------------------------------------

RULES = r"""
[default]
alert_group = "syslog.misc"

[[rule]]
name = "drop-cron"
drop = true
[rule.match]
app_name = ["cron", "CRON"]
severity = "notice..debug"

[[rule]]
name = "db-hosts"
[rule.match]
hostname = "db-*.example.com"
facility = ["local0", "local1"]
severity = "emerg..err"
message = 'replication lag (?P<seconds>\d+)s on (?P<replica>\S+)(?: \((?P<note>.*)\))?'
[rule.set]
alert_group = "db.replication"
alert_key = "{replica}"
node = "{replica}"
severity = "critical"
alarm_class = "software"
summary = "Replication lag {seconds}s on {replica} seen by {hostname} {{{note}}}"
runbook = "https://runbooks.example.com/db/{replica}"

[[rule]]
name = "db-hosts-any"
[rule.match]
hostname = "db-*.example.com"
[rule.set]
alert_key = "{app_name}"

[[rule]]
name = "relay"
[rule.match]
message = '^(?P<hostname>[\w.-]+) said: (?P<text>.*)'
[rule.set]
summary = "{text}"
"""


def test_first_matching_rule_wins_and_uses_regex_groups() -> None:
    msg = message("replication lag 42s on db-7 (behind)", facility=16, hostname="db-1.example.com")
    event = event_of(RULES, msg)
    assert (event.alert_group, event.alert_key, event.node) == ("db.replication", "db-7", "db-7")
    assert event.severity == Severity.CRITICAL
    assert event.alarm_class == AlarmClass.SOFTWARE
    assert event.summary == "Replication lag 42s on db-7 seen by db-1.example.com {behind}"
    assert event.runbook == "https://runbooks.example.com/db/db-7"
    assert event.attributes["syslog_rule"] == "db-hosts"


def test_an_optional_group_that_did_not_match_renders_empty() -> None:
    msg = message("replication lag 1s on db-2", facility=17, hostname="DB-3.example.com")
    assert event_of(RULES, msg).summary == "Replication lag 1s on db-2 seen by DB-3.example.com {}"


@pytest.mark.parametrize(
    ("facility", "severity", "hostname", "rule"),
    [
        (18, 3, "db-1.example.com", "db-hosts-any"),  # facility local2 is not in the list
        (16, 4, "db-1.example.com", "db-hosts-any"),  # warning is outside emerg..err
        (16, 3, "web-1.example.com", "default"),  # hostname glob does not match
    ],
)
def test_each_condition_must_hold(facility: int, severity: int, hostname: str, rule: str) -> None:
    msg = message(
        "replication lag 1s on db-2", facility=facility, severity=severity, hostname=hostname
    )
    event = event_of(RULES, msg)
    assert event.attributes["syslog_rule"] == rule
    if rule == "db-hosts-any":
        assert (event.alert_group, event.alert_key) == ("syslog.misc", "app")


def test_a_drop_rule_drops() -> None:
    assert apply(RULES, message("job ran", app_name="CRON", severity=6)) is None
    assert (
        event_of(RULES, message("job failed", app_name="cron", severity=3)).summary == "job failed"
    )


def test_a_regex_group_may_override_a_message_field() -> None:
    """A relay that wraps the original host into the text: the group names the node."""
    event = event_of(RULES, message("nas-4 said: fan failure", hostname="relay"))
    assert (event.node, event.summary) == ("nas-4", "fan failure")


def test_rendered_alert_group_is_made_valid() -> None:
    rules = '[default]\nalert_group = "syslog.{app_name}"\n'
    event = event_of(rules, message("x", app_name="my app[1]"))
    assert event.alert_group == "syslog.my_app_1"


def test_problem_and_resolution_share_the_identifier() -> None:
    rules = default_rules()
    down = rules.apply(parse_message(b"<11>1 - sw1 kernel - - - eth0: Lost carrier"), now=NOW)
    up = rules.apply(parse_message(b"<14>1 - sw1 kernel - - - eth0: Gained carrier"), now=NOW)
    assert down is not None and up is not None
    assert (down.type, up.type) == (EventType.PROBLEM, EventType.RESOLUTION)
    assert down.dedup_identifier == up.dedup_identifier == "sw1|syslog.link|eth0"


# -- the shipped rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "group", "key", "kind", "alarm_class"),
    [
        (
            "<3>1 - h kernel - - - blk_update_request: I/O error, dev sda, sector 12 op 0x0:(READ)",
            "syslog.kernel.io", "sda", EventType.PROBLEM, AlarmClass.HARDWARE,
        ),
        (
            "<3>1 - h kernel - - - I/O error, dev nvme0n1, sector 2048 op 0x1:(WRITE) flags 0x800",
            "syslog.kernel.io", "nvme0n1", EventType.PROBLEM, AlarmClass.HARDWARE,
        ),
        (
            "<3>1 - h kernel - - - mce: [Hardware Error]: Machine check events logged",
            "syslog.kernel.hardware", "", EventType.PROBLEM, AlarmClass.HARDWARE,
        ),
        (
            "<3>1 - h kernel - - - EXT4-fs error (device sdb1): ext4_find_entry:1455: comm ls",
            "syslog.kernel.fs", "sdb1", EventType.PROBLEM, None,
        ),
        (
            "<3>1 - h kernel - - - Out of memory: Killed process 4242 (postgres) total-vm:1kB",
            "syslog.kernel.oom", "postgres", EventType.PROBLEM, AlarmClass.SOFTWARE,
        ),
        (
            "<6>1 - h kernel - - - igb 0000:01:00.0 eth1: igb: eth1 NIC Link is Down",
            "syslog.link", "eth1", EventType.PROBLEM, AlarmClass.NETWORK,
        ),
        (
            "<6>1 - h kernel - - - e1000e: eth1 NIC Link is Up 1000 Mbps Full Duplex",
            "syslog.link", "eth1", EventType.RESOLUTION, AlarmClass.NETWORK,
        ),
        (
            "<187>Jun 15 11:00:00 sw1 12: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down",
            "syslog.link", "GigabitEthernet0/1", EventType.PROBLEM, AlarmClass.NETWORK,
        ),
        (
            "<189>Jun 15 11:00:01 sw1 13: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to up",
            "syslog.link", "GigabitEthernet0/1", EventType.RESOLUTION, AlarmClass.NETWORK,
        ),
        (
            "<30>1 - h systemd-networkd - - - enp3s0: Gained carrier",
            "syslog.link", "enp3s0", EventType.RESOLUTION, AlarmClass.NETWORK,
        ),
    ],
)  # fmt: skip
def test_default_rules(
    raw: str, group: str, key: str, kind: EventType, alarm_class: AlarmClass | None
) -> None:
    event = default_rules().apply(parse_message(raw.encode(), now=NOW), now=NOW)
    assert event is not None
    checked = check_event(event)
    assert (checked.alert_group, checked.alert_key, checked.type) == (group, key, kind)
    assert checked.alarm_class == alarm_class
    if kind == EventType.PROBLEM:
        assert checked.severity == Severity.MAJOR


def test_the_shipped_rules_parse_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "syslog-rules.toml"
    path.write_text(DEFAULT_RULES)
    loaded = load_rules(path)
    assert [rule.name for rule in loaded.rules] == [rule.name for rule in default_rules().rules]
    assert len(loaded.rules) >= 8


# -- bad rules files -----------------------------------------------------------------------------

GOOD_MATCH = '[rule.match]\nmessage = "x"\n'


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[[rule]\n", "not valid TOML"),
        ("[rules]\n", "unknown top-level key 'rules'"),
        ("rule = 3\n", "array of tables"),
        ("[[rule]]\nset.summary = 'x'\n", "rule 1 field 'name': required"),
        ("[[rule]]\nname = 'default'\nset.summary = 'x'\n", "rule 1 field 'name'"),
        ("[[rule]]\nname = 'a'\n" + GOOD_MATCH, "rule 1 ('a'): needs a [rule.set] table"),
        ("[[rule]]\nname = 'a'\nwhen = 1\n", "rule 1 ('a'): unknown field 'when'"),
        (
            "[[rule]]\nname = 'a'\nset.summary = 'x'\n[[rule]]\nname = 'a'\nset.summary = 'y'\n",
            "rule 2 field 'name': 'a' is used twice",
        ),
        ("[[rule]]\nname = 'a'\nmatch.message = '(unclosed'\nset.summary = 'x'\n", "rule 1 ('a') field 'match.message': invalid regular expression"),
        ("[[rule]]\nname = 'a'\nmatch.message = 5\nset.summary = 'x'\n", "field 'match.message': must be a regular expression"),
        ("[[rule]]\nname = 'a'\nmatch.facility = 'kernel'\nset.summary = 'x'\n", "field 'match.facility': use facility names"),
        ("[[rule]]\nname = 'a'\nmatch.facility = 24\nset.summary = 'x'\n", "field 'match.facility'"),
        ("[[rule]]\nname = 'a'\nmatch.severity = 'bad..err'\nset.summary = 'x'\n", "field 'match.severity'"),
        ("[[rule]]\nname = 'a'\nmatch.hostname = 7\nset.summary = 'x'\n", "field 'match.hostname': must be a glob"),
        ("[[rule]]\nname = 'a'\nmatch.program = 'x'\nset.summary = 'x'\n", "field 'match.program': unknown condition"),
        ("[[rule]]\nname = 'a'\nset.colour = 'x'\n", "field 'set.colour': unknown field"),
        ("[[rule]]\nname = 'a'\nset.severity = 'awful'\n", "rule 1 ('a') field 'set.severity': unknown severity"),
        ("[[rule]]\nname = 'a'\nset.type = 'fixed'\n", "field 'set.type': must be 'problem' or 'resolution'"),
        ("[[rule]]\nname = 'a'\nset.alarm_class = 'power'\n", "field 'set.alarm_class': must be one of"),
        ("[[rule]]\nname = 'a'\nset.summary = '{devce} failed'\n", "field 'set.summary': unknown field {devce}"),
        ("[[rule]]\nname = 'a'\nmatch.message = '(?P<dev>x)'\nset.summary = '{dev'\n", "field 'set.summary': unbalanced brace"),
        ("[[rule]]\nname = 'a'\nset.alert_group = 'my group'\n", "field 'set.alert_group': letters, digits"),
        ("[[rule]]\nname = 'a'\nset.node = 3\n", "field 'set.node': must be a text"),
        ("[[rule]]\nname = 'a'\ndrop = 'yes'\n", "field 'drop': must be true or false"),
        ("[default]\nkeep_debug = 1\n", "[default] field 'keep_debug'"),
        ("[default]\nsummary = '{set}'\n", "[default] field 'summary': unknown field {set}"),
        ("[default]\ndrop = 'no'\n", "[default] field 'drop': must be true or false"),
    ],
)  # fmt: skip
def test_malformed_rules_name_the_rule_and_field(text: str, error: str) -> None:
    with pytest.raises(SyslogRulesError, match=re.escape(error)):
        parse_rules(text, source="rules.toml")


def test_rules_errors_are_validation_errors_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[rule]]\nname = 'x'\nset.severity = 'awful'\n")
    with pytest.raises(
        ValidationError, match=re.escape(f"{path}: rule 1 ('x') field 'set.severity'")
    ):
        load_rules(path)
    with pytest.raises(SyslogRulesError, match="cannot read syslog rules file"):
        load_rules(tmp_path / "missing.toml")


def test_severity_names_and_aliases() -> None:
    assert [syslog_severity(n) for n in ("emerg", "ERROR", "warn", " info ", "7", 0)] == [
        0,
        3,
        4,
        6,
        7,
        0,
    ]
    assert syslog_severity("loud") is None and syslog_severity(8) is None
    assert syslog_severity(True) is None
