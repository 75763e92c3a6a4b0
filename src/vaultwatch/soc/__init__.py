"""The Service Operations Center: status, events and alarms, monitors, incidents, cases.

Everything here is domain code over the catalog; `vaultwatch.soc.api` is the
thin HTTP layer over it and `vaultwatch.cli.soc` the command line.
"""
