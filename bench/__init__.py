"""Benchmarks of vaultwatch against restic and borg on the same generated data."""
