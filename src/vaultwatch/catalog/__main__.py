"""Catalog maintenance for operators and developers: `python -m vaultwatch.catalog --help`.

No alembic.ini is needed: the migrations ship inside the package.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from vaultwatch.catalog.db import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)

URL_ENV = "VAULTWATCH_CATALOG_URL"


def _next_revision_id() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    numbers = [int(rev.revision) for rev in script.walk_revisions() if rev.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: list[str] | None = None) -> int:
    """Run one maintenance command; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m vaultwatch.catalog")
    parser.add_argument("--url", default=os.environ.get(URL_ENV), help=f"catalog URL (${URL_ENV})")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="apply all migrations")
    commands.add_parser("current", help="show the database's revision and this code's head")
    revision = commands.add_parser(
        "revision", help="write a new migration from the difference between models and head"
    )
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)

    if args.command == "revision":
        # Compare the models with a scratch database at head, so no real database is needed.
        with tempfile.TemporaryDirectory() as scratch:
            url = f"sqlite:///{Path(scratch) / 'head.db'}"
            upgrade(url)
            config = alembic_config(url)
            config.attributes["autogenerate"] = True
            command.revision(
                config,
                message=args.message,
                autogenerate=True,
                rev_id=_next_revision_id(),
            )
        return 0
    if not args.url:
        parser.error(f"give --url or set {URL_ENV}")
    if args.command == "upgrade":
        upgrade(args.url)
        print(f"catalog at {head_revision()}")
        return 0
    engine = make_engine(args.url)
    try:
        print(f"database: {current_revision(engine) or 'empty'}  code: {head_revision()}")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
