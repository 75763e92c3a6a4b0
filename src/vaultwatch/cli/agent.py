"""``vaultwatch agent``: enroll this server, run the backup daemon, show what it is doing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from vaultwatch.agent.config import (
    DEFAULT_STATE_DIR,
    ConfigError,
    load_config,
    missing_paths,
)
from vaultwatch.agent.status import pid_alive, read_status, status_path
from vaultwatch.cli import agent_credential, agent_keys, agent_restore
from vaultwatch.cli import output as out
from vaultwatch.cli.agent_options import ConfigOpt
from vaultwatch.cli.agent_options import config_path as _config_path

agent_app = typer.Typer(
    name="agent",
    help="The backup agent on a protected server: enroll, run, status, restore.",
    no_args_is_help=True,
)


@agent_app.command("enroll")
def enroll_cmd(
    server: Annotated[str, typer.Option("--server", metavar="URL", help="Gateway URL")],
    token: Annotated[
        str, typer.Option("--token", metavar="TOKEN", help="Enrollment token (single use)")
    ],
    ca_cert: Annotated[
        Path | None,
        typer.Option("--ca-cert", metavar="FILE", help="The service's CA certificate (PEM)"),
    ] = None,
    config: ConfigOpt = None,
    state_dir: Annotated[
        Path,
        typer.Option("--state-dir", metavar="DIR", help="Where the agent keeps its journal"),
    ] = DEFAULT_STATE_DIR,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file",
            metavar="FILE",
            help=(
                "First server of a tenant: the vault's passphrase (default: a new one next to "
                "the config). Later servers: a passphrase that opens the tenant's vault; this "
                "agent then gets a passphrase and key slot of its own"
            ),
        ),
    ] = None,
    hostname: Annotated[
        str | None, typer.Option("--hostname", help="Name to enroll under [default: this host]")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Enroll again, replacing the credential")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Redeem an enrollment token and write the agent's configuration (0600)."""
    from vaultwatch.agent.enroll import enroll_agent

    path = _config_path(config)
    result = enroll_agent(
        server,
        token,
        config_path=path,
        ca_cert=ca_cert,
        state_dir=state_dir.absolute(),
        passphrase_file=passphrase_file.absolute() if passphrase_file else None,
        hostname=hostname,
        force=force,
    )
    if json_output:
        out.print_json(
            {
                "agent_id": result.agent_id,
                "tenant": result.tenant,
                "config": str(result.config_path),
                "passphrase_file": str(result.passphrase_file),
                "passphrase_created": result.passphrase_created,
                "key_slot": result.key_slot,
                "vault_created": result.vault_created,
                "joined_with": str(result.joined_with) if result.joined_with else None,
            }
        )
    else:
        out.line(f"enrolled as agent {result.agent_id} of tenant {result.tenant or '?'}")
        out.line(f"configuration written to {result.config_path}")
        if result.vault_created:
            out.line(f"created the tenant's vault; this agent's key slot is {result.key_slot[:8]}")
        else:
            out.line(
                f"joined the tenant's vault with key slot {result.key_slot[:8]} "
                f"(passphrase in {result.passphrase_file})"
            )
    if result.vault_created:
        out.warn(
            f"the tenant's vault was created with the passphrase in {result.passphrase_file}. "
            "Make a recovery passphrase and keep it off this server: `vaultwatch agent key add "
            "--out FILE`. Without one nobody can restore if this server is lost, and other "
            "servers of the tenant join the vault with it."
        )
    elif result.joined_with is not None:
        out.note(
            f"{result.joined_with} is no longer needed on this server: this agent unlocks the "
            f"vault with its own {result.passphrase_file}"
        )
    out.note(f"next: add [[backup_set]] tables to {result.config_path}, then start the agent")


@agent_app.command("run")
def run_cmd(
    config: ConfigOpt = None,
    log_format: Annotated[
        str, typer.Option("--log-format", help="json (for journald) or text")
    ] = "json",
) -> None:
    """Run the backup daemon in the foreground (systemd runs it this way)."""
    from vaultwatch.agent.daemon import run_agent
    from vaultwatch.agent.logs import setup_logging

    if log_format not in ("json", "text"):
        raise typer.BadParameter("must be json or text", param_hint="--log-format")
    cfg = load_config(_config_path(config))
    setup_logging(cfg.log_level, log_format)
    run_agent(cfg)


@agent_app.command("check-config")
def check_config_cmd(config: ConfigOpt = None) -> None:
    """Validate the configuration and show the backup sets it defines."""
    cfg = load_config(_config_path(config))
    missing = missing_paths(cfg)
    if missing:
        listed = "; ".join(f"backup set {name!r}: {path}" for name, path in missing)
        raise ConfigError(f"{cfg.path}: these paths do not exist: {listed}")
    out.line(f"{cfg.path}: valid; agent {cfg.agent_id}, gateways {', '.join(cfg.server.urls)}")
    for s in cfg.backup_sets:
        how = (
            f"continuous (quiet {s.quiet:g}s, max delay {s.max_delay:g}s, rescan {s.rescan:g}s)"
            if s.mode == "continuous"
            else (
                f"every {s.interval:g}s"
                if s.interval is not None
                else "at " + ", ".join(t.strftime("%H:%M") for t in s.at)
            )
        )
        out.line(f"  {s.name}: {', '.join(s.paths)} - {how}")
    if not cfg.backup_sets:
        out.warn("no [[backup_set]] defined: the agent will protect nothing")


def _ts(value: Any) -> str:
    if not isinstance(value, int | float):
        return "never"
    return out.local_time(datetime.fromtimestamp(value).astimezone())


@agent_app.command("status")
def status_cmd(
    config: ConfigOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the status as JSON")] = False,
) -> None:
    """Show whether the agent runs, its current job and each backup set's last backup."""
    cfg = load_config(_config_path(config))
    doc = read_status(status_path(cfg.state_dir))
    if doc is None:
        if json_output:
            out.print_json({"running": False, "state": "unknown"})
        else:
            out.line("agent: no status yet (has it ever run?)")
        raise typer.Exit(1)
    running = pid_alive(int(doc.get("pid", 0)))
    doc["running"] = running
    if not running:
        doc["state"] = "stopped"
    if json_output:
        out.print_json(doc)
        return
    out.line(f"agent {doc.get('agent_id')} on {doc.get('hostname')}: {doc['state']}")
    if doc.get("blocked"):
        out.error(f"no backups run: {doc['blocked']}")
    job = doc.get("job")
    if running and isinstance(job, dict):
        done, total = job.get("bytes_done", 0), job.get("bytes_total")
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        total_text = out.human_bytes(total) if total else "?"
        out.line(
            f"  job {job['job_uid']} of {job['backup_set']}: {job['state']}, "
            f"{out.human_bytes(done)} of {total_text}{pct}, "
            f"{job.get('files_done', 0)} files, try {job.get('attempts', 1)}"
        )
        if job.get("last_error"):
            out.line(f"  last error: {job['last_error']}")
    gateways = doc.get("gateways") or {}
    for url, up in gateways.items():
        out.line(f"  gateway {url}: {'reachable' if up else 'UNREACHABLE'}")
    out.line(f"  last heartbeat: {_ts(doc.get('last_heartbeat'))}")
    if doc.get("pending_reports"):
        out.line(f"  job reports waiting for the network: {doc['pending_reports']}")
    for refused in doc.get("refused_reports") or []:
        out.line(
            f"  job report for {refused.get('job_uid')} ({refused.get('state')}) refused by the"
            f" service (HTTP {refused.get('http_status')}): {refused.get('problem')}"
        )
    table = out.new_table("Set", "Mode", "Last backup", "Result", "Snapshot", "Next")
    for name, s in (doc.get("backup_sets") or {}).items():
        table.add_row(
            out.cell(name),
            out.cell(s.get("mode", "")),
            out.cell(_ts(s.get("last_success"))),
            out.cell(s.get("last_state") or "-"),
            out.cell((s.get("last_snapshot") or "-")[:8]),
            out.cell("on change" if s.get("next_due") is None else _ts(s.get("next_due"))),
        )
    out.print_table(table)


# The commands of their own modules, listed after these.
agent_keys.register(agent_app)
agent_restore.register(agent_app)
agent_credential.register(agent_app)
