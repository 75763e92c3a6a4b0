"""The `vaultwatch` command."""
