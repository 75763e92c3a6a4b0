"""``vaultwatch server``: set up a data directory and run the server's roles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from vaultwatch.cli.output import line, note, print_json
from vaultwatch.server_config import (
    DATA_DIR_ENV,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SITE,
    ROLES,
    load_settings,
    parse_roles,
)

server_app = typer.Typer(
    help="Run the Vaultwatch server (gateway, web, worker).",
    no_args_is_help=True,
)

DataDirOpt = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        "-d",
        envvar=DATA_DIR_ENV,
        help=f"The server's data directory [env: {DATA_DIR_ENV}]",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout")]


@server_app.command("init")
def init(
    data_dir: DataDirOpt,
    catalog_url: Annotated[
        str | None,
        typer.Option(
            "--catalog-url",
            help="Catalog database (default: SQLite in the data directory; or postgresql://...)",
        ),
    ] = None,
    vault_url: Annotated[
        str | None,
        typer.Option(
            "--vault-url",
            help="Where tenants' vaults go (default: DATA_DIR/vaults; or s3:...); one per tenant below it",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="Server certificate (PEM) to use instead of our own CA"),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="Private key (PEM) of --tls-cert")
    ] = None,
    admin_email: Annotated[
        str, typer.Option("--admin-email", help="Login of the first administrator")
    ] = "admin@localhost",
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port")] = DEFAULT_PORT,
    names: Annotated[
        list[str] | None,
        typer.Option("--name", help="Extra DNS name or address for the server certificate"),
    ] = None,
    node_name: Annotated[
        str | None,
        typer.Option(
            "--node-name", help="This node's name in the operations center (default: host name)"
        ),
    ] = None,
    site: Annotated[
        str, typer.Option("--site", help="The site (data center) this node is in")
    ] = DEFAULT_SITE,
    json: JsonOpt = False,
) -> None:
    """Create the data directory: settings, catalog, TLS certificates and the first administrator."""
    from vaultwatch.server import init_server

    result = init_server(
        data_dir,
        catalog_url=catalog_url,
        vault_url=vault_url,
        tls_cert=tls_cert,
        tls_key=tls_key,
        admin_email=admin_email,
        host=host,
        port=port,
        server_names=names or [],
        node_name=node_name or "",
        site=site,
    )
    s = result.settings
    if json:
        print_json(
            {
                "data_dir": str(s.data_dir),
                "settings_file": str(s.settings_file),
                "vault_url": s.vault_url,
                "tls_cert": str(s.tls_cert),
                "ca_cert": str(s.ca_cert) if s.ca_cert else None,
                "ca_fingerprint": result.ca_fingerprint,
                "admin_email": result.admin_email,
                "admin_password": result.admin_password,
            }
        )
        return
    line(f"initialised server data directory {s.data_dir}")
    line(f"settings: {s.settings_file}")
    if s.ca_cert is not None:
        line(f"CA certificate (give it to agents): {s.ca_cert}")
        line(f"CA fingerprint (SHA-256): {result.ca_fingerprint}")
    if result.admin_password is not None:
        line(f"administrator: {result.admin_email}")
        line(f"password (shown only now, store it safely): {result.admin_password}")
    else:
        note("the catalog already has an administrator: none was created")


@server_app.command("run")
def run(
    data_dir: DataDirOpt,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on [default: from settings]")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=1, max=65535, help=f"Port [default: from settings, {DEFAULT_PORT}]"
        ),
    ] = None,
    roles: Annotated[
        str | None,
        typer.Option("--roles", help=f"Comma-separated roles to serve: {','.join(ROLES)}"),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error")
    ] = "info",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            max=64,
            help="Server processes sharing the port (0: one per CPU core)",
        ),
    ] = 0,
    node_name: Annotated[
        str | None,
        typer.Option("--node-name", help="This node's name [default: from settings, or host name]"),
    ] = None,
) -> None:
    """Serve the chosen roles over TLS until interrupted."""
    from vaultwatch.server import run_server

    settings = load_settings(data_dir)
    chosen = parse_roles(roles) if roles else settings.roles
    run_server(
        settings,
        host=host,
        port=port,
        roles=chosen,
        log_level=log_level.lower(),
        workers=workers or os.cpu_count() or 1,
        node_name=node_name,
        announce=lambda url: note(f"serving {','.join(chosen)} on {url} (pid {os.getpid()})"),
    )
