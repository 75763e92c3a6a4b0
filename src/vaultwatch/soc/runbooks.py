"""Where the runbook for each kind of alarm lives (``docs/runbooks/``), linked from every alarm.

An alarm's runbook is the sender's (Alertmanager's `runbook_url`, a rule's
`runbook`) or, for the service's own alert groups, the page in the docs. A
group without its own page links the general triage runbook.
"""

from __future__ import annotations

RUNBOOK_BASE = "docs/runbooks/"

#: Alert groups (or their prefix before the first dot) that have their own runbook page.
RUNBOOKS: dict[str, str] = {
    "agent.heartbeat": "agent-heartbeat-missed.md",
    "backup.overdue": "backup-overdue.md",
    "job.stalled": "job-stalled.md",
    "job.failed": "job-failed.md",
    "backup.partial": "backup-partial.md",
    "restore": "restore.md",
    "node": "node-health.md",
    "gateway.down": "gateway-down.md",
    "probe": "probe-failed.md",
    "ransomware": "ransomware-guard.md",
    "syslog": "syslog-event.md",
    "snmp": "snmp-trap.md",
    "alertmanager": "alertmanager-alert.md",
    "catalog": "catalog-unavailable.md",
    "store": "store-errors.md",
}
GENERAL = "triage.md"


def runbook_for(alert_group: str) -> str:
    """The runbook page of `alert_group`: its own, its family's, or the general one."""
    page = RUNBOOKS.get(alert_group) or RUNBOOKS.get(alert_group.split(".", 1)[0]) or GENERAL
    return RUNBOOK_BASE + page
