"""Classification: is an alarm the network team's, the hardware team's or the software team's?

Rules are ordered (first match wins) and each names why it matched, because an
operator who disagrees with a class must see which rule chose it. A sender
may set the class itself; then the reason says so.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass

from vaultwatch.catalog.soc_models import AlarmClass


@dataclass(frozen=True)
class ClassRule:
    """Alert groups matching `group` (a glob), or summaries matching `summary` (a regex)."""

    alarm_class: AlarmClass
    group: str | None = None
    summary: str | None = None

    def reason(self) -> str:
        """Why this rule matched, for the alarm's `class_reason`."""
        if self.group is not None:
            return f"alert group matches {self.group!r}"
        return f"summary matches /{self.summary}/"


DEFAULT_RULES: tuple[ClassRule, ...] = (
    ClassRule(AlarmClass.NETWORK, group="probe.*"),
    ClassRule(AlarmClass.NETWORK, group="*.unreachable"),
    ClassRule(AlarmClass.NETWORK, group="snmp.link*"),
    ClassRule(AlarmClass.NETWORK, group="gateway.down"),
    ClassRule(AlarmClass.NETWORK, group="site.down"),
    ClassRule(AlarmClass.NETWORK, group="*network*"),
    ClassRule(AlarmClass.HARDWARE, group="node.smart*"),
    ClassRule(AlarmClass.HARDWARE, group="node.raid*"),
    ClassRule(AlarmClass.HARDWARE, group="*hardware*"),
    ClassRule(AlarmClass.HARDWARE, group="node.disk*"),
    ClassRule(
        AlarmClass.HARDWARE,
        summary=r"(?i)\b(i/o error|smart|raid|degraded array|fan|temperature|power supply|ecc)\b",
    ),
    ClassRule(
        AlarmClass.NETWORK,
        summary=r"(?i)\b(link down|link up|unreachable|timed? ?out|connection refused|dns|packet loss)\b",
    ),
    ClassRule(AlarmClass.SOFTWARE, group="agent.*"),
    ClassRule(AlarmClass.SOFTWARE, group="job.*"),
    ClassRule(AlarmClass.SOFTWARE, group="backup.*"),
    ClassRule(AlarmClass.SOFTWARE, group="restore.*"),
    ClassRule(AlarmClass.SOFTWARE, group="catalog.*"),
    ClassRule(AlarmClass.SOFTWARE, group="store.*"),
    ClassRule(AlarmClass.SOFTWARE, group="vault.*"),
    ClassRule(AlarmClass.SOFTWARE, group="ransomware.*"),
    ClassRule(AlarmClass.SOFTWARE, group="node.*"),
    ClassRule(AlarmClass.SOFTWARE, group="alertmanager.*"),
)


def _compiled(rules: tuple[ClassRule, ...]) -> list[tuple[ClassRule, re.Pattern[str]]]:
    compiled = []
    for rule in rules:
        if rule.group is not None:
            pattern = re.compile(fnmatch.translate(rule.group.lower()))
        else:
            assert rule.summary is not None
            pattern = re.compile(rule.summary)
        compiled.append((rule, pattern))
    return compiled


_DEFAULT = _compiled(DEFAULT_RULES)


def classify(
    alert_group: str, summary: str, given: AlarmClass | None = None
) -> tuple[AlarmClass, str]:
    """The class of an alarm and the reason it has that class."""
    if given is not None:
        return given, "set by the sender"
    summary_rules, by_group = _plan(alert_group.lower())
    for pattern, result in summary_rules:
        if pattern.search(summary):
            return result
    return by_group


_Result = tuple[AlarmClass, str]


@functools.lru_cache(maxsize=4096)
def _plan(group: str) -> tuple[tuple[tuple[re.Pattern[str], _Result], ...], _Result]:
    """For one alert group: the summary rules to try, in order, and the result if none matches.

    The group decides every group rule once; only the summary rules ahead of
    its first matching group rule are left for each alarm's summary.
    """
    summary_rules: list[tuple[re.Pattern[str], _Result]] = []
    for rule, pattern in _DEFAULT:
        if rule.group is None:
            summary_rules.append((pattern, (rule.alarm_class, rule.reason())))
        elif pattern.match(group):
            return tuple(summary_rules), (rule.alarm_class, rule.reason())
    return tuple(summary_rules), (AlarmClass.UNKNOWN, "no classification rule matched")
