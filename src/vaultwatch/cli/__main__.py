"""`python -m vaultwatch.cli`: the same as the `vaultwatch` command."""

from vaultwatch.cli.main import main

main()
