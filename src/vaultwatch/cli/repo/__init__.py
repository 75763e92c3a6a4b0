"""``vaultwatch repo``: work with a repository directly, with restic's commands and flags.

Each command parses its options, calls one engine function and renders the
result; the rules (what to keep, what to prune, what is damaged) live in the
engine so the agent and the servers apply exactly the same ones. One module
per group of commands; importing them registers the commands on ``repo_app``.
"""

from vaultwatch.cli.repo import backup as backup
from vaultwatch.cli.repo import browse as browse
from vaultwatch.cli.repo import copy as copy
from vaultwatch.cli.repo import create as create
from vaultwatch.cli.repo import maintenance as maintenance
from vaultwatch.cli.repo import mount as mount
from vaultwatch.cli.repo import objects as objects
from vaultwatch.cli.repo import restore as restore
from vaultwatch.cli.repo import snapshots as snapshots
from vaultwatch.cli.repo.app import repo_app, terminate_as_interrupt
from vaultwatch.cli.repo.restore import restore_snapshot
from vaultwatch.cli.repo.snapshots import print_snapshots

__all__ = ["print_snapshots", "repo_app", "restore_snapshot", "terminate_as_interrupt"]
