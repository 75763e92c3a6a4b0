"""Classification: first matching rule wins, and the alarm says which rule chose its class."""

from __future__ import annotations

import itertools

import pytest

from vaultwatch.catalog.soc_models import AlarmClass
from vaultwatch.soc.classify import DEFAULT_RULES, classify


@pytest.mark.parametrize(
    ("group", "summary", "expected", "reason"),
    [
        ("probe.tls", "certificate expires", AlarmClass.NETWORK, "alert group matches 'probe.*'"),
        ("gateway.unreachable", "x", AlarmClass.NETWORK, "alert group matches '*.unreachable'"),
        (
            "node.smart",
            "disk sda failing",
            AlarmClass.HARDWARE,
            "alert group matches 'node.smart*'",
        ),
        # Summary rules stand before the software groups: the words decide.
        ("agent.heartbeat", "I/O error on sdb", AlarmClass.HARDWARE, "summary matches /"),
        ("job.failed", "connection refused by gw1", AlarmClass.NETWORK, "summary matches /"),
        ("agent.heartbeat", "agent srv1 is silent", AlarmClass.SOFTWARE, "'agent.*'"),
        # A group rule ahead of the summary rules wins over the summary.
        ("node.disk", "link down on eth0", AlarmClass.HARDWARE, "'node.disk*'"),
        ("NODE.Disk", "full", AlarmClass.HARDWARE, "'node.disk*'"),  # groups compare lowercased
        ("custom.thing", "all is fine", AlarmClass.UNKNOWN, "no classification rule matched"),
    ],
)
def test_the_first_matching_rule_chooses_and_names_itself(
    group: str, summary: str, expected: AlarmClass, reason: str
) -> None:
    alarm_class, why = classify(group, summary)
    assert alarm_class == expected
    assert reason in why


def test_a_class_the_sender_set_is_kept() -> None:
    assert classify("probe.tls", "timeout", AlarmClass.HARDWARE) == (
        AlarmClass.HARDWARE,
        "set by the sender",
    )


def _first_match(group: str, summary: str) -> tuple[AlarmClass, str]:
    """The rules read one by one, as the module's docstring states them."""
    import fnmatch
    import re

    for rule in DEFAULT_RULES:
        if rule.group is not None:
            if fnmatch.fnmatchcase(group.lower(), rule.group.lower()):
                return rule.alarm_class, rule.reason()
        elif rule.summary is not None and re.search(rule.summary, summary):
            return rule.alarm_class, rule.reason()
    return AlarmClass.UNKNOWN, "no classification rule matched"


def test_the_per_group_shortcut_agrees_with_reading_every_rule() -> None:
    groups = [
        "probe.http",
        "site.unreachable",
        "snmp.linkdown",
        "node.raid",
        "my-hardware-check",
        "agent.heartbeat",
        "backup.overdue",
        "node.cpu",
        "alertmanager.DiskFull",
        "other",
    ]
    summaries = ["fan 2 stopped", "DNS lookup timed out", "nothing to see", "ECC error", ""]
    for group, summary in itertools.product(groups, summaries):
        assert classify(group, summary) == _first_match(group, summary), (group, summary)
