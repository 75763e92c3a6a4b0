"""``vaultwatch soc``: what the service knows, and what operators do to alarms, silences,
incidents and support cases (and the diagnostics they run), from a terminal.

Every command works over HTTPS with an API key (``--server``/``--api-key``,
or ``VAULTWATCH_SERVER``/``VAULTWATCH_API_KEY``; a customer's key sees its own
tenant only) or on the server itself with ``--data-dir`` as the console
operator (audited as ``system:cli:<user>``). ``--json`` prints the API's
documents for scripts.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from vaultwatch.catalog.soc_models import CaseState, IncidentState
from vaultwatch.cli.admin import cli_actor, parse_duration
from vaultwatch.cli.output import (
    cell,
    human_bytes,
    human_duration,
    json_or_line,
    line,
    local_time,
    new_table,
    note,
    out_console,
    plural,
    print_json,
    print_table,
    printable,
)
from vaultwatch.errors import VaultwatchError
from vaultwatch.job_states import JobState
from vaultwatch.server_config import DATA_DIR_ENV
from vaultwatch.soc.client import (
    API_KEY_ENV,
    CA_CERT_ENV,
    SERVER_ENV,
    SocAuthError,
    SocClient,
    connect,
)
from vaultwatch.soc.diagnostics import KINDS as DIAGNOSE_KINDS

soc_app = typer.Typer(
    help="The operations center: fleet status, jobs, alarms, silences, diagnostics, incidents and cases.",
    no_args_is_help=True,
)


class SocCliError(VaultwatchError):
    """Bad input to a soc command."""

    exit_code = 2


# -- options -----------------------------------------------------------------------------------

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar=SERVER_ENV,
        metavar="URL",
        help=f"The service's URL, e.g. https://soc.example:8443 [env: {SERVER_ENV}]",
        show_default=False,
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=API_KEY_ENV,
        metavar="KEY",
        help=f"API key (vwk_...) [env: {API_KEY_ENV}]",
        show_default=False,
        show_envvar=False,
    ),
]
CaCertOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-cert",
        envvar=CA_CERT_ENV,
        metavar="FILE",
        help=f"CA certificate (PEM) to verify the server with [env: {CA_CERT_ENV}]",
        show_default=False,
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        "-d",
        envvar=DATA_DIR_ENV,
        metavar="DIR",
        help=f"Work on this server data directory directly, as the console operator [env: {DATA_DIR_ENV}]",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout")]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many rows")]


@contextmanager
def _client(
    server: str | None, api_key: str | None, ca_cert: Path | None, data_dir: Path | None
) -> Iterator[SocClient]:
    client = connect(
        server=server, api_key=api_key, ca_cert=ca_cert, data_dir=data_dir, actor=cli_actor()
    )
    try:
        yield client
    finally:
        client.close()


# -- rendering ---------------------------------------------------------------------------------

SEVERITY_STYLES = {
    "critical": "bold red",
    "major": "red",
    "minor": "dark_orange",
    "warning": "yellow",
    "indeterminate": "magenta",
    "clear": "green",
}
STATE_STYLES = {
    "protected": "green",
    "at_risk": "yellow",
    "unprotected": "bold red",
    "not_configured": "dim",
    "paused": "blue",
    "maintenance": "cyan",
}
STATES = tuple(STATE_STYLES)
CHECK_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
INCIDENT_STYLES = {"triggered": "bold red", "acknowledged": "yellow", "resolved": "green"}
INCIDENT_STATES = tuple(s.value for s in IncidentState)
CASE_STYLES = {
    "open": "cyan",
    "escalated": "bold red",
    "waiting_on_customer": "yellow",
    "waiting_on_third_party": "yellow",
    "resolved": "green",
    "closed": "dim",
}
CASE_STATES = tuple(s.value for s in CaseState)
SILENCE_STYLES = {"active": "green", "pending": "cyan", "expired": "dim", "cancelled": "dim"}
JOB_STATE_STYLES = {
    JobState.FAILED: "bold red",
    JobState.PARTIAL: "yellow",
    JobState.SUCCEEDED: "green",
}


def styled(value: object, style: str | None) -> Text:
    """A cell in a colour (no markup is interpreted)."""
    return Text(printable(str(value)), style=style or "")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def ago(value: str | None, now: datetime | None = None) -> str:
    """``42s ago``, ``3m ago``, ``2h ago``, ``5d ago`` (or ``never``)."""
    at = _time(value)
    if at is None:
        return "never"
    seconds = max(0, int(((now or datetime.now(UTC)) - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _when(value: str | None) -> str:
    at = _time(value)
    return local_time(at) if at is not None else ""


def summary_view(doc: dict[str, Any]) -> Group:
    """The fleet at a glance: counts per state, per tenant, running jobs and nodes."""
    totals = new_table("State", "Agents", right=["Agents"])
    for state in STATES:
        count = doc["states"].get(state, 0)
        totals.add_row(styled(state, STATE_STYLES[state] if count else "dim"), cell(count))
    totals.add_row(cell("total"), cell(doc["agents"]))
    tenants = new_table("Tenant", *STATES, right=STATES)
    for tenant in doc["tenants"]:
        tenants.add_row(
            cell(tenant["tenant_name"] + (" (suspended)" if tenant.get("suspended") else "")),
            *(
                styled(tenant["states"][s], STATE_STYLES[s] if tenant["states"][s] else "dim")
                for s in STATES
            ),
        )
    lines = [f"running jobs: {doc['running_jobs']}"]
    if doc.get("nodes") is not None:
        lines.append(f"server nodes: {doc['nodes']} ({doc['nodes_down']} down)")
    return Group(totals, Text(""), tenants, Text("\n".join(lines)))


def agents_table(items: list[dict[str, Any]]) -> Table:
    """Agents with state, reason and what they last said."""
    table = new_table("Agent", "Host", "Tenant", "State", "Reason", "Heartbeat", "Version", "Sets")
    for a in items:
        sets = a["backup_sets"]
        enabled = sum(1 for s in sets if s["enabled"])
        table.add_row(
            cell(str(a["id"])[:8]),
            cell(a["hostname"]),
            cell(a["tenant_name"]),
            styled(a["state"], STATE_STYLES.get(a["state"])),
            cell(a["detail"]),
            cell(ago(a["last_heartbeat_at"])),
            cell(a["version"] or ""),
            cell(f"{enabled}/{len(sets)}"),
        )
    return table


def _progress(job: dict[str, Any]) -> str:
    done, total = job["bytes_done"], job["bytes_total"]
    text = human_bytes(done) + (f" / {human_bytes(total)}" if total is not None else "")
    if job["percent"] is not None:
        text += f" ({job['percent']:.0f}%)"
    return text


def jobs_table(items: list[dict[str, Any]]) -> Table:
    """Jobs with phase, progress, rate, ETA, resumed bytes and errors."""
    table = new_table(
        "Job",
        "Host",
        "Set",
        "Kind",
        "State",
        "Phase",
        "Progress",
        "Files",
        "Rate",
        "ETA",
        "Resumed",
        "Errors",
        "When",
        right=["Rate", "ETA", "Resumed", "Errors"],
    )
    for j in items:
        state_style = JOB_STATE_STYLES.get(j["state"], "cyan")
        state = j["state"] + (" (stalled)" if j["stalled"] else "")
        files = str(j["files_done"]) + (
            f"/{j['files_total']}" if j["files_total"] is not None else ""
        )
        rate = j["rate_bytes_per_second"]
        table.add_row(
            cell(str(j["id"])[:8]),
            cell(j["hostname"]),
            cell(j["backup_set"] or ""),
            cell(j["kind"]),
            styled(state, "bold red" if j["stalled"] else state_style),
            cell(j["phase"] or ""),
            cell(_progress(j)),
            cell(files),
            cell(f"{human_bytes(rate)}/s" if rate is not None else ""),
            cell(human_duration(j["eta_seconds"]) if j["eta_seconds"] is not None else ""),
            cell(human_bytes(j["resumed_bytes"]) if j["resumed_bytes"] else ""),
            styled(j["error_count"] or "", "red" if j["error_count"] else None),
            cell(ago(j["finished_at"] or j["updated_at"])),
        )
    return table


def alarms_table(items: list[dict[str, Any]]) -> Table:
    """The alarm list, worst first, coloured by severity."""
    table = new_table(
        "ID",
        "Severity",
        "Node",
        "Group",
        "Summary",
        "Count",
        "Last",
        "Ack",
        "Owner",
        right=["Count"],
    )
    for a in items:
        flags = "yes" if a["acknowledged"] else ""
        if a.get("silence_id") is not None:
            flags = (flags + " silenced").strip()
        table.add_row(
            cell(a["id"]),
            styled(a["severity"], SEVERITY_STYLES.get(a["severity"])),
            cell(a["node"]),
            cell(a["alert_group"]),
            cell(a["summary"]),
            cell(a["tally"]),
            cell(_when(a["last_occurrence"])),
            cell(flags),
            cell(a["owner"] or ""),
        )
    return table


def _matchers(matchers: list[dict[str, str]]) -> str:
    return ", ".join(f"{m['field']}{m['op']}{m['value']}" for m in matchers)


def silences_table(items: list[dict[str, Any]]) -> Table:
    """Silences with their state and how many open alarms each mutes now."""
    table = new_table(
        "ID", "Kind", "State", "Matches", "Mutes", "From", "Until", "By", "Comment", right=["Mutes"]
    )
    for s in items:
        table.add_row(
            cell(s["id"]),
            cell(s["kind"] + (f" ({s['recurrence']})" if s["recurrence"] else "")),
            styled(s["state"], SILENCE_STYLES.get(s["state"])),
            cell(_matchers(s["matchers"])),
            cell(s["muted_alarms"]),
            cell(_when(s["starts_at"])),
            cell(_when(s["ends_at"])),
            cell(s["created_by"]),
            cell(s["comment"]),
        )
    return table


def checks_table(checks: list[dict[str, Any]]) -> Table:
    """A diagnosis: each check with its status, what it found and how long it took."""
    table = new_table("Check", "Status", "Detail", "Latency", right=["Latency"])
    for c in checks:
        latency = c.get("latency_ms")
        table.add_row(
            cell(c["name"]),
            styled(c["status"], CHECK_STYLES.get(c["status"])),
            cell(c["detail"]),
            cell(f"{latency:.1f} ms" if latency is not None else ""),
        )
    return table


def incidents_table(items: list[dict[str, Any]]) -> Table:
    """Incidents, newest first, with who owns them."""
    table = new_table(
        "ID", "Severity", "State", "Title", "Tenants", "Level", "Opened", "Owner", right=["Tenants"]
    )
    for i in items:
        tenants = str(len(i["tenant_ids"])) + (" crisis" if i["crisis"] else "")
        table.add_row(
            cell(i["id"]),
            styled(i["severity"], SEVERITY_STYLES.get(i["severity"])),
            styled(i["state"], INCIDENT_STYLES.get(i["state"])),
            cell(i["title"]),
            styled(tenants, "bold red" if i["crisis"] else None),
            cell(i["escalation_level"]),
            cell(_when(i["created_at"])),
            cell(i["resolved_by"] or i["acknowledged_by"] or ""),
        )
    return table


def incident_header(doc: dict[str, Any]) -> Text:
    """An incident's title, state and who did what, above its timeline."""
    parts = [
        f"opened {_when(doc['created_at'])} by {doc['created_by']}",
        f"{plural(len(doc['tenant_ids']), 'tenant')} affected"
        + (" (crisis)" if doc["crisis"] else ""),
    ]
    if doc["root_alarm_id"] is not None:
        parts.append(f"alarm {doc['root_alarm_id']}")
    if doc["acknowledged_by"]:
        parts.append(f"acknowledged by {doc['acknowledged_by']} {_when(doc['acknowledged_at'])}")
    if doc["resolved_by"]:
        parts.append(f"resolved by {doc['resolved_by']} {_when(doc['resolved_at'])}")
    return Text.assemble(
        (f"incident {doc['id']}  ", "bold"),
        (doc["severity"], SEVERITY_STYLES.get(doc["severity"], "")),
        "  ",
        (doc["state"], INCIDENT_STYLES.get(doc["state"], "")),
        f"  {printable(doc['title'])}\n",
        printable("; ".join(parts)),
    )


def timeline_table(steps: list[dict[str, Any]]) -> Table:
    """An incident's steps, oldest first: pages (to whom, by what), acks, escalations, updates."""
    table = new_table("When", "Step", "Who", "What")
    for step in steps:
        what = step["text"]
        details = step["details"]
        if step["kind"] == "paged":
            recipient = str(details.get("recipient") or "")
            extra = [] if not recipient or recipient in what else [recipient]
            extra.append(f"level {details.get('level', 0)}, round {details.get('round', 0) + 1}")
            what = f"{what} ({', '.join(extra)})"
        table.add_row(cell(_when(step["at"])), cell(step["kind"]), cell(step["actor"]), cell(what))
    return table


def updates_table(items: list[dict[str, Any]]) -> Table:
    """An incident's customer updates with their state."""
    table = new_table("ID", "Tenant", "Kind", "State", "Drafted", "Published", "Text")
    for u in items:
        published = u["state"] == "published"
        table.add_row(
            cell(u["id"]),
            cell(str(u["tenant_id"])[:8]),
            cell(u["kind"]),
            styled(u["state"], "green" if published else "yellow"),
            cell(_when(u["created_at"])),
            cell(f"{_when(u['published_at'])} by {u['published_by']}" if published else ""),
            cell(u["text"]),
        )
    return table


def cases_table(items: list[dict[str, Any]]) -> Table:
    """Support cases, newest first."""
    table = new_table("ID", "Tenant", "Priority", "State", "Team", "Owner", "Opened", "Subject")
    for c in items:
        table.add_row(
            cell(c["id"]),
            cell(str(c["tenant_id"])[:8]),
            cell(c["priority"]),
            styled(c["state"], CASE_STYLES.get(c["state"])),
            cell(c["owner_team"]),
            cell(c["owner"] or ""),
            cell(_when(c["opened_at"])),
            cell(c["subject"]),
        )
    return table


def case_header(doc: dict[str, Any]) -> Text:
    """A case's subject, state and owner, above its history."""
    facts = [
        f"tenant {doc['tenant_id']}",
        f"priority {doc['priority']}",
        f"owned by {doc['owner'] or doc['owner_team']}",
        f"opened {_when(doc['opened_at'])} by {doc['opened_by']} via {doc['opened_via']}",
    ]
    if doc["alarm_ids"]:
        facts.append("alarms " + ", ".join(map(str, doc["alarm_ids"])))
    if doc["incident_id"] is not None:
        facts.append(f"incident {doc['incident_id']}")
    facts.extend(f"{t['party']} ticket {t['ticket']}" for t in doc["external_tickets"])
    return Text.assemble(
        (f"case {doc['id']}  ", "bold"),
        (doc["state"], CASE_STYLES.get(doc["state"], "")),
        f"  {printable(doc['subject'])}\n",
        printable("; ".join(facts)),
    )


def history_table(entries: list[dict[str, Any]]) -> Table:
    """A case's history, oldest first; internal entries are marked."""
    table = new_table("When", "Who", "Kind", "Seen by", "Text")
    for e in entries:
        table.add_row(
            cell(_when(e["at"])),
            cell(e["actor"]),
            cell(e["kind"]),
            styled(
                "customer" if e["visible_to_customer"] else "internal",
                None if e["visible_to_customer"] else "magenta",
            ),
            cell(e["text"]),
        )
    return table


# -- commands: status --------------------------------------------------------------------------


@soc_app.command("status")
def status_cmd(
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """The fleet summary: agents by protection state, per tenant; running jobs; nodes."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.status()
    if json:
        print_json(doc)
        return
    out_console().print(summary_view(doc))


@soc_app.command("agents")
def agents_cmd(
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    state: Annotated[
        str | None, typer.Option("--state", help=f"Only this state: {', '.join(STATES)}")
    ] = None,
    tenant: Annotated[
        uuid.UUID | None, typer.Option("--tenant", help="Only this tenant (id)")
    ] = None,
    limit: LimitOpt = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue after a previous page")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Protected servers with their state and why, in hostname order."""
    if state is not None and state not in STATES:
        raise SocCliError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    with _client(server, api_key, ca_cert, data_dir) as client:
        page = client.agents(state=state, tenant=tenant, limit=limit, cursor=cursor)
    if json:
        print_json(page)
        return
    print_table(agents_table(page["items"]))
    if page["next_cursor"]:
        note(f"more agents: --cursor {page['next_cursor']}")


@soc_app.command("agent")
def agent_cmd(
    agent_id: Annotated[uuid.UUID, typer.Argument(help="The agent's id")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """One agent: heartbeat, version, host facts and each backup set's protection."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.agent(agent_id)
    if json:
        print_json(doc)
        return
    console = out_console()
    console.print(
        Text.assemble(
            (printable(doc["hostname"]), "bold"),
            f"  {doc['tenant_name']}  ",
            (doc["state"], STATE_STYLES.get(doc["state"], "")),
            f": {printable(doc['detail'])}",
        )
    )
    line(f"last heartbeat: {ago(doc['last_heartbeat_at'])}; version {doc['version'] or '?'}")
    table = new_table("Set", "Mode", "RPO", "State", "Reason", "RPO used", "Last good snapshot")
    for s in doc["backup_sets"]:
        snap = s["last_good_snapshot"]
        used = s["rpo_used"]
        table.add_row(
            cell(s["name"]),
            cell(s["mode"]),
            cell(human_duration(s["rpo_target_seconds"])),
            styled(s["state"], STATE_STYLES.get(s["state"])),
            cell(s["detail"]),
            cell(f"{used:.0%}" if used is not None else ""),
            cell(_when(snap["finished_at"]) if snap else "none"),
        )
    print_table(table)


@soc_app.command("jobs")
def jobs_cmd(
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    running: Annotated[
        bool, typer.Option("--running", help="Only jobs not finished yet, with their progress")
    ] = False,
    limit: LimitOpt = 50,
    json: JsonOpt = False,
) -> None:
    """Recent jobs with results and errors, or the running ones with phase, rate and ETA."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        items = client.jobs(running=running, limit=limit)
    if json:
        print_json(items)
        return
    print_table(jobs_table(items))
    for j in items:
        if j["state"] in (JobState.FAILED, JobState.PARTIAL) and j["errors"]:
            note(f"{str(j['id'])[:8]} {j['hostname']}: {j['errors'][-1]}")


@soc_app.command("snapshots")
def snapshots_cmd(
    backup_set_id: Annotated[uuid.UUID, typer.Argument(help="The backup set's id")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    limit: LimitOpt = 100,
    json: JsonOpt = False,
) -> None:
    """A backup set's snapshots, newest first."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        items = client.snapshots(backup_set_id, limit=limit)
    if json:
        print_json(items)
        return
    table = new_table(
        "Snapshot", "Finished", "Files", "Size", "Added", right=["Files", "Size", "Added"]
    )
    for snap in items:
        table.add_row(
            cell(snap["vault_snapshot_id"][:8]),
            cell(_when(snap["finished_at"])),
            cell(snap["files_total"]),
            cell(human_bytes(snap["bytes_total"])),
            cell(human_bytes(snap["bytes_added"])),
        )
    print_table(table)


@soc_app.command("nodes")
def nodes_cmd(
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """The service's server nodes and their health (operations center only)."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        items = client.nodes()
    if json:
        print_json(items)
        return
    table = new_table("Node", "Site", "Roles", "State", "Last seen", "Version")
    for node in items:
        table.add_row(
            cell(node["name"]),
            cell(node["site"]),
            cell(",".join(node["roles"])),
            styled("up" if node["up"] else "down", "green" if node["up"] else "bold red"),
            cell(ago(node["last_seen_at"])),
            cell(node["version"] or ""),
        )
    print_table(table)


# -- commands: alarms --------------------------------------------------------------------------


@soc_app.command("alarms")
def alarms_cmd(
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    severity: Annotated[
        str | None,
        typer.Option("--severity", help="This severity and worse: warning, minor, major, critical"),
    ] = None,
    group: Annotated[str | None, typer.Option("--group", help="Only this alert group")] = None,
    node: Annotated[str | None, typer.Option("--node", help="Only this node")] = None,
    tenant: Annotated[
        uuid.UUID | None, typer.Option("--tenant", help="Only this tenant (id)")
    ] = None,
    include_cleared: Annotated[bool, typer.Option("--all", help="Include cleared alarms")] = False,
    limit: LimitOpt = 100,
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch", metavar="SECONDS", min=0.5, help="Refresh every SECONDS until Ctrl-C"
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """The alarm list, worst first."""
    if watch is not None and json:
        raise SocCliError("--watch draws a live table: it cannot be combined with --json")
    filters: dict[str, Any] = {
        "min_severity": severity,
        "alert_group": group,
        "node": node,
        "tenant": tenant,
        "include_cleared": include_cleared,
        "limit": limit,
    }
    with _client(server, api_key, ca_cert, data_dir) as client:
        if watch is None:
            items = client.alarms(**filters)
            if json:
                print_json(items)
            else:
                print_table(alarms_table(items))
            return
        _watch(client, filters, watch)


def _watch(client: SocClient, filters: dict[str, Any], every: float) -> None:
    """Redraw the alarm list every `every` seconds on a terminal (appended otherwise); Ctrl-C ends it."""

    def frame() -> Group:
        items = client.alarms(**filters)
        stamp = Text(f"{len(items)} alarms at {local_time(datetime.now(UTC))} (Ctrl-C to stop)")
        return Group(stamp, alarms_table(items))

    console = out_console()
    try:
        if not console.is_terminal:  # a pipe or a file: one full list per round, appended
            while True:
                console.print(frame())
                sys.stdout.flush()
                time.sleep(every)
        with Live(frame(), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(every)
                live.update(frame(), refresh=True)
    except KeyboardInterrupt:
        return


def _alarm_line(doc: dict[str, Any], what: str) -> str:
    return f"alarm {doc['id']} {what}: {doc['severity']} {doc['node']} {doc['summary']}"


@soc_app.command("ack")
def ack_cmd(
    alarm_id: Annotated[int, typer.Argument(help="The alarm's id")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Acknowledge an alarm: it is seen and being handled."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.ack(alarm_id)
    json_or_line(json, doc, _alarm_line(doc, "acknowledged"))


@soc_app.command("unack")
def unack_cmd(
    alarm_id: Annotated[int, typer.Argument(help="The alarm's id")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Take back an acknowledgement."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.unack(alarm_id)
    json_or_line(json, doc, _alarm_line(doc, "no longer acknowledged"))


@soc_app.command("clear")
def clear_cmd(
    alarm_id: Annotated[int, typer.Argument(help="The alarm's id")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in its journal)")] = "",
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Clear an alarm by hand: the problem is over though no resolution arrived."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.clear(alarm_id, reason)
    json_or_line(json, doc, _alarm_line(doc, "cleared"))


@soc_app.command("note")
def note_cmd(
    alarm_id: Annotated[int, typer.Argument(help="The alarm's id")],
    text: Annotated[str, typer.Argument(help="The note")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add a note to an alarm's journal."""
    if not text.strip():
        raise SocCliError("a note must not be empty")
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.note(alarm_id, text)
    json_or_line(json, doc, f"note {doc['id']} added to alarm {alarm_id}")


@soc_app.command("assign")
def assign_cmd(
    alarm_id: Annotated[int, typer.Argument(help="The alarm's id")],
    owner: Annotated[str, typer.Argument(help="A person or team; '-' takes the alarm back")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Give an alarm an owner."""
    wanted = None if owner.strip() in ("", "-") else owner.strip()
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.assign(alarm_id, wanted)
    json_or_line(
        json,
        doc,
        _alarm_line(doc, f"assigned to {doc['owner']}" if doc["owner"] else "unassigned"),
    )


# -- commands: silences ------------------------------------------------------------------------


def parse_match(text: str) -> dict[str, str]:
    """``node=gw1``, ``node!=gw1`` or ``node=~gw.*`` -> a matcher document."""
    for op in ("=~", "!=", "="):
        name, found, value = text.partition(op)
        if found and name.strip():
            return {"field": name.strip(), "op": op, "value": value}
    raise SocCliError(f"invalid --match {text!r}: use FIELD=VALUE, FIELD!=VALUE or FIELD=~REGEX")


@soc_app.command("silence")
def silence_cmd(
    match: Annotated[
        list[str],
        typer.Option(
            "--match",
            metavar="FIELD=VALUE",
            help="Mute alarms whose FIELD equals VALUE (also != and =~ regex); repeat to narrow",
        ),
    ],
    duration: Annotated[str, typer.Option("--duration", help="How long from now: 30m, 2h, 1d ...")],
    comment: Annotated[str, typer.Option("--comment", help="Why (shown with the silence)")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Mute matching alarms from now for --duration (they stay listed but page no one)."""
    matchers = [parse_match(m) for m in match]
    length = parse_duration(duration)
    if not comment.strip():
        raise SocCliError("a silence needs a --comment saying why")
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.silence(matchers, length, comment)
    json_or_line(
        json,
        doc,
        f"silence {doc['id']} until {_when(doc['ends_at'])}: mutes {doc['muted_alarms']} open alarms",
    )


@soc_app.command("silences")
def silences_cmd(
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    include_ended: Annotated[
        bool, typer.Option("--all", help="Include expired and cancelled silences")
    ] = False,
    limit: LimitOpt = 100,
    json: JsonOpt = False,
) -> None:
    """Silences and maintenance windows, newest first, with their state and how many alarms each mutes."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        items = client.silences(include_ended=include_ended, limit=limit)
    if json:
        print_json(items)
        return
    print_table(silences_table(items))


@soc_app.command("unsilence")
def unsilence_cmd(
    silence_id: Annotated[int, typer.Argument(help="The silence's id")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Cancel a silence or maintenance window now: its alarms page again unless another mutes them."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.unsilence(silence_id)
    json_or_line(json, doc, f"{doc['kind']} {doc['id']} cancelled ({_matchers(doc['matchers'])})")


# -- commands: diagnostics ---------------------------------------------------------------------

EXIT_CHECK_FAILED = 1


@soc_app.command("diagnose")
def diagnose_cmd(
    kind: Annotated[str, typer.Argument(help=f"What to check: {', '.join(DIAGNOSE_KINDS)}")],
    name: Annotated[
        str, typer.Argument(help="Its name (an agent: hostname or id; a tenant: name or id)")
    ],
    alarm: Annotated[
        int | None,
        typer.Option("--alarm", metavar="ID", help="Keep the report in this alarm's journal"),
    ] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Run the checks an operator would run by hand against a node, gateway, agent or tenant.

    Exit status: 0 when no check failed (warnings and skipped checks included),
    1 when any check failed, 5 when there is no such node, gateway, agent or
    tenant (or alarm), so scripts can act on the outcome.
    """
    if kind not in DIAGNOSE_KINDS:
        raise SocCliError(f"cannot diagnose {kind!r}: choose one of {', '.join(DIAGNOSE_KINDS)}")
    with _client(server, api_key, ca_cert, data_dir) as client:
        report = client.diagnose(kind, name, alarm_id=alarm)
    if json:
        print_json(report)
    else:
        print_table(checks_table(report["checks"]))
        status = report["status"]
        line(f"{report['kind']} {report['target']}: {status}")
        if alarm is not None:
            note(f"report kept in the journal of alarm {alarm}")
    if report["status"] == "fail":
        raise typer.Exit(EXIT_CHECK_FAILED)


# -- commands: incidents -----------------------------------------------------------------------

incident_app = typer.Typer(
    help="One incident: show it with its timeline, acknowledge, resolve, open, customer updates.",
    no_args_is_help=True,
)
soc_app.add_typer(incident_app, name="incident")


@soc_app.command("incidents")
def incidents_cmd(
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    state: Annotated[
        str | None,
        typer.Option("--state", help=f"Only this state: {', '.join(INCIDENT_STATES)}"),
    ] = None,
    limit: LimitOpt = 50,
    json: JsonOpt = False,
) -> None:
    """Incidents, newest first."""
    _check_choice("state", state, INCIDENT_STATES)
    with _client(server, api_key, ca_cert, data_dir) as client:
        items = client.incidents(state=state, limit=limit)
    if json:
        print_json(items)
        return
    print_table(incidents_table(items))


@incident_app.command("show")
def incident_show_cmd(
    incident_id: Annotated[int, typer.Argument(help="The incident's id")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """One incident and its timeline: who was paged, how and when; acks, escalations, updates."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.incident(incident_id)
        try:
            steps: list[dict[str, Any]] | None = client.incident_timeline(incident_id)
        except SocAuthError:  # a customer's key sees the incident, not the SOC's paging
            steps = None
    if json:
        print_json({**doc, "timeline": steps})
        return
    console = out_console()
    console.print(incident_header(doc))
    if steps is None:
        note("the timeline is shown to the operations center only")
        return
    print_table(timeline_table(steps))


def _incident_line(doc: dict[str, Any], what: str) -> str:
    return f"incident {doc['id']} {what}: {doc['severity']} {doc['title']}"


@incident_app.command("ack")
def incident_ack_cmd(
    incident_id: Annotated[int, typer.Argument(help="The incident's id")],
    note_text: Annotated[str, typer.Option("--note", help="A comment for the timeline")] = "",
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Acknowledge an incident: you own it, and its paging stops until the acknowledgement expires."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.ack_incident(incident_id, note_text)
    until = f" until {_when(doc['ack_expires_at'])}" if doc["ack_expires_at"] else ""
    json_or_line(json, doc, _incident_line(doc, f"acknowledged{until}"))


@incident_app.command("resolve")
def incident_resolve_cmd(
    incident_id: Annotated[int, typer.Argument(help="The incident's id")],
    note_text: Annotated[str, typer.Option("--note", help="A comment for the timeline")] = "",
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Resolve an incident: everyone paged is told, and a resolution notice is drafted for customers."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.resolve_incident(incident_id, note_text)
    json_or_line(json, doc, _incident_line(doc, "resolved"))


@incident_app.command("open")
def incident_open_cmd(
    alarm: Annotated[
        int,
        typer.Option("--alarm", metavar="ID", help="The alarm it is about (its tenants follow)"),
    ],
    title: Annotated[
        str | None, typer.Option("--title", help="The title (default: the alarm's summary)")
    ] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Open an incident for an alarm by hand (even a minor one): its escalation policy pages at once."""
    if title is not None and not title.strip():
        raise SocCliError("a --title must not be empty")
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.open_incident(alarm, title=title)
    json_or_line(
        json,
        doc,
        _incident_line(
            doc, f"opened for alarm {alarm}, {plural(len(doc['tenant_ids']), 'tenant')}"
        ),
    )


@incident_app.command("updates")
def incident_updates_cmd(
    incident_id: Annotated[int, typer.Argument(help="The incident's id")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """An incident's customer updates, drafts and published ones, oldest first."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        items = client.incident_updates(incident_id)
    if json:
        print_json(items)
        return
    print_table(updates_table(items))


@incident_app.command("publish")
def incident_publish_cmd(
    incident_id: Annotated[int, typer.Argument(help="The incident's id")],
    update_id: Annotated[int, typer.Argument(help="The draft update's id")],
    text: Annotated[
        str | None, typer.Option("--text", help="Send this corrected text instead of the draft's")
    ] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Approve and send a customer update: email, webhook and the status page (in a crisis, to every tenant)."""
    if text is not None and not text.strip():
        raise SocCliError("a --text must not be empty")
    with _client(server, api_key, ca_cert, data_dir) as client:
        items = client.publish_update(incident_id, update_id, text=text)
    json_or_line(
        json,
        items,
        f"customer update {update_id} of incident {incident_id} published to "
        f"{plural(len(items), 'tenant')}",
    )


# -- commands: support cases -------------------------------------------------------------------

case_app = typer.Typer(
    help="One support case: show it with its history, escalate, add notes, resolve.",
    no_args_is_help=True,
)
soc_app.add_typer(case_app, name="case")


@soc_app.command("cases")
def cases_cmd(
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    state: Annotated[
        str | None, typer.Option("--state", help=f"Only this state: {', '.join(CASE_STATES)}")
    ] = None,
    limit: LimitOpt = 50,
    json: JsonOpt = False,
) -> None:
    """Support cases, newest first."""
    _check_choice("state", state, CASE_STATES)
    with _client(server, api_key, ca_cert, data_dir) as client:
        items = client.cases(state=state, limit=limit)
    if json:
        print_json(items)
        return
    print_table(cases_table(items))


@case_app.command("show")
def case_show_cmd(
    case_id: Annotated[int, typer.Argument(help="The case's id")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """One case and its history (internal notes are shown to staff only)."""
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.case(case_id)
    if json:
        print_json(doc)
        return
    out_console().print(case_header(doc))
    print_table(history_table(doc["history"] or []))


def _case_line(doc: dict[str, Any], what: str) -> str:
    return f"case {doc['id']} {what}: {doc['subject']}"


@case_app.command("escalate")
def case_escalate_cmd(
    case_id: Annotated[int, typer.Argument(help="The case's id")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why (an internal note the customer does not see)")
    ] = "escalated to the operations center",
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Hand a case to the operations center, which owns it from now until it is resolved."""
    _not_empty("--reason", reason)
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.escalate_case(case_id, reason)
    json_or_line(json, doc, _case_line(doc, f"escalated, now owned by {doc['owner_team']}"))


@case_app.command("note")
def case_note_cmd(
    case_id: Annotated[int, typer.Argument(help="The case's id")],
    text: Annotated[str, typer.Argument(help="The note")],
    internal: Annotated[bool, typer.Option("--internal", help="Hide it from the customer")] = False,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add a note to a case's history (the customer sees it unless --internal)."""
    _not_empty("a note", text)
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.case_note(case_id, text, internal=internal)
    seen = "internal" if not doc["visible_to_customer"] else "visible to the customer"
    json_or_line(json, doc, f"note {doc['id']} added to case {case_id} ({seen})")


@case_app.command("resolve")
def case_resolve_cmd(
    case_id: Annotated[int, typer.Argument(help="The case's id")],
    resolution: Annotated[
        str, typer.Option("--resolution", help="How it was solved (sent to the customer)")
    ] = "The problem you reported is resolved.",
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    ca_cert: CaCertOpt = None,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Resolve a case: the customer is told, and regular status updates stop."""
    _not_empty("--resolution", resolution)
    with _client(server, api_key, ca_cert, data_dir) as client:
        doc = client.resolve_case(case_id, resolution)
    json_or_line(json, doc, _case_line(doc, "resolved"))


def _check_choice(what: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise SocCliError(f"unknown {what} {value!r}: use one of {', '.join(choices)}")


def _not_empty(what: str, text: str) -> None:
    if not text.strip():
        raise SocCliError(f"{what} must not be empty")
