"""Vaultwatch: managed continuous online backup and its Service Operations Center."""

__version__ = "0.1.0"
