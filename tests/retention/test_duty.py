"""Retention as a leased duty: settings, and a run started by the duty runner's call."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.retention.harness import ManagedVault, random_files
from vaultwatch.retention.duty import RetentionSettings, retention_duty
from vaultwatch.server_config import ServerConfigError
from vaultwatch.soc.duties import DutyContext


def test_settings_default_and_bad_values(vault: ManagedVault) -> None:
    settings = vault.gateway.settings
    assert RetentionSettings.from_settings(settings) == RetentionSettings()
    custom = settings.with_overrides(extra={"retention": {"interval": 600, "grace_days": 2}})
    assert RetentionSettings.from_settings(custom) == RetentionSettings(600.0, timedelta(days=2))
    for table, why in (
        ({"interval": 0}, "positive"),
        ({"grace_days": "a week"}, "positive"),
        ({"every": 5}, "unknown setting"),
    ):
        with pytest.raises(ServerConfigError, match=why):
            RetentionSettings.from_settings(settings.with_overrides(extra={"retention": table}))


def test_the_duty_runs_retention_in_a_thread_of_its_own(vault: ManagedVault) -> None:
    ids = [vault.backup(random_files(f"{n}.bin", size=30_000)).id for n in "ab"]
    vault.set_policy({"last": 1})
    duty = retention_duty(vault.gateway.settings)
    assert duty.name == "retention.apply" and duty.interval == 3600.0 and duty.leased
    context = DutyContext(vault.gateway.catalog, "node-1", "node-1:1", "soc-duties", None)
    assert duty.run(context) == "started"
    deadline = time.monotonic() + 120
    while f"snapshots/{ids[0]}" in vault.names("snapshots/") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert vault.names("snapshots/") == {f"snapshots/{ids[1]}"}
