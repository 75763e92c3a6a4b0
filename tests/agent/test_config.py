"""Agent configuration: valid files parse to what they say; every bad key is named in the error."""

from __future__ import annotations

import os
import stat
from datetime import time
from pathlib import Path
from typing import Any

import pytest

from tests.agent.conftest import base_doc, config_from
from vaultwatch.agent.config import (
    ConfigError,
    config_document,
    dump_config,
    load_config,
    parse_duration,
)
from vaultwatch.files import write_private

CONTINUOUS = {
    "name": "www",
    "paths": ["/srv/www", "/etc/nginx/"],
    "mode": "continuous",
    "excludes": ["*.tmp", "/srv/www/cache"],
    "quiet": "3s",
    "max_delay": 20,
    "rescan": "30m",
}
SCHEDULED = {
    "name": "db",
    "paths": ["/var/backups/db"],
    "mode": "scheduled",
    "at": ["02:30", "14:00"],
}


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "agent.toml"
    path.write_bytes(dump_config(doc))
    return path


def test_full_config_parses(tmp_path: Path) -> None:
    doc = base_doc(tmp_path, a=CONTINUOUS, b=SCHEDULED)
    doc["server"]["urls"] = ["https://gw1:8443/", "https://gw2:8443"]
    doc["metrics"] = {"enabled": True, "port": 9999}
    doc["network"] = {"backoff_initial": "500ms", "backoff_max": "2m"}
    cfg = load_config(write(tmp_path, doc))
    assert cfg.server.urls == ["https://gw1:8443", "https://gw2:8443"]
    assert cfg.server.credential == "vwa_secret-credential"
    assert "secret" not in repr(cfg.server)
    assert cfg.metrics.enabled and cfg.metrics.port == 9999 and cfg.metrics.address == "127.0.0.1"
    assert cfg.network.backoff_initial == 0.5 and cfg.network.backoff_max == 120
    www, db = cfg.backup_sets
    assert www.paths == ["/srv/www", "/etc/nginx"]
    assert (www.quiet, www.max_delay, www.rescan) == (3.0, 20.0, 1800.0)
    assert www.excludes == ["*.tmp", "/srv/www/cache"]
    assert www.rpo == 900
    assert db.mode == "scheduled" and db.at == [time(2, 30), time(14, 0)] and db.interval is None
    assert db.rpo == 86400 + 3600
    assert cfg.upload_workers == 1
    assert cfg.state_dir == tmp_path / "state"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    doc = base_doc(tmp_path)
    doc["agent"]["passphrase_file"] = "passphrase"
    doc["server"]["ca_cert"] = "ca.pem"
    cfg = load_config(write(tmp_path, doc))
    assert cfg.passphrase_file == tmp_path / "passphrase"
    assert cfg.server.ca_cert == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5, 5.0),
        (2.5, 2.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("250ms", 0.25),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


def _set(**changes: Any) -> dict[str, Any]:
    out = dict(CONTINUOUS)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    ("mutate", "key", "words"),
    [
        (lambda d: d.pop("agent"), "agent", "required"),
        (lambda d: d["agent"].pop("id"), "agent.id", "required"),
        (lambda d: d["agent"].update(heartbeat="soon"), "agent.heartbeat", "duration"),
        (lambda d: d["agent"].update(hartbeat="60s"), "agent.hartbeat", "unknown key"),
        (lambda d: d["agent"].update(upload_workers=0), "agent.upload_workers", "between 1 and 16"),
        (lambda d: d["agent"].update(log_level="loud"), "agent.log_level", "debug, info"),
        (lambda d: d["server"].update(urls=[]), "server.urls", "at least one"),
        (lambda d: d["server"].update(urls=["gw1:8443"]), "server.urls", "http(s) URLs"),
        (lambda d: d["server"].pop("credential"), "server.credential", "required"),
        (lambda d: d.update(metrics={"port": 70000}), "metrics.port", "between 1 and 65535"),
        (lambda d: d.update(metrics={"enabled": "yes"}), "metrics.enabled", "true or false"),
        (
            lambda d: d.update(network={"backoff_initial": 10, "backoff_max": 5}),
            "network.backoff_max",
            "at least backoff_initial",
        ),
        (lambda d: d.update(backup_sets=[]), "backup_sets", "unknown key"),
        (
            lambda d: d.update(backup_set=[_set(mode="contiuous")]),
            "backup_set[1].mode",
            "'continuous' or 'scheduled'",
        ),
        (
            lambda d: d.update(backup_set=[_set(paths=["srv/www"])]),
            "backup_set[1].paths",
            "absolute",
        ),
        (lambda d: d.update(backup_set=[_set(paths=[])]), "backup_set[1].paths", "at least one"),
        (lambda d: d.update(backup_set=[_set(paths="/srv")]), "backup_set[1].paths", "array"),
        (lambda d: d.update(backup_set=[_set(name="a b")]), "backup_set[1].name", "letters"),
        (lambda d: d.update(backup_set=[_set(name=None)]), "backup_set[1].name", "required"),
        (lambda d: d.update(backup_set=[_set(quiet="-1s")]), "backup_set[1].quiet", "duration"),
        (
            lambda d: d.update(backup_set=[_set(quiet=0)]),
            "backup_set[1].quiet",
            "greater than zero",
        ),
        (
            lambda d: d.update(backup_set=[_set(max_delay=1)]),
            "backup_set[1].max_delay",
            "at least quiet",
        ),
        (lambda d: d.update(backup_set=[_set(at=["02:00"])]), "backup_set[1].at", "scheduled"),
        (
            lambda d: d.update(backup_set=[_set(exclude=["x"])]),
            "backup_set[1].exclude",
            "unknown key",
        ),
        (
            lambda d: d.update(backup_set=[CONTINUOUS, CONTINUOUS]),
            "backup_set[2].name",
            "used twice",
        ),
        (
            lambda d: d.update(backup_set=[dict(SCHEDULED, at=None)]),
            "backup_set[1].interval",
            "needs interval",
        ),
        (
            lambda d: d.update(backup_set=[{**SCHEDULED, "at": ["25:00"]}]),
            "backup_set[1].at",
            "HH:MM",
        ),
        (
            lambda d: d.update(backup_set=[{**SCHEDULED, "interval": "1h"}]),
            "backup_set[1].at",
            "either interval or at",
        ),
        (
            lambda d: d.update(backup_set=[{**SCHEDULED, "weekdays": ["funday"]}]),
            "backup_set[1].weekdays",
            "weekday",
        ),
        (
            lambda d: d.update(backup_set=[{**SCHEDULED, "quiet": "2s"}]),
            "backup_set[1].quiet",
            "continuous",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, mutate: Any, key: str, words: str) -> None:
    doc = base_doc(tmp_path, a=CONTINUOUS)
    doc["backup_set"] = [{k: v for k, v in s.items() if v is not None} for s in doc["backup_set"]]
    mutate(doc)
    if "backup_set" in doc:
        doc["backup_set"] = [
            {k: v for k, v in s.items() if v is not None} for s in doc["backup_set"]
        ]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, doc))
    message = str(info.value)
    assert f": {key}: " in message, message
    assert words in message, message
    assert str(tmp_path / "agent.toml") in message


def test_unreadable_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such file.*enroll first"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[agent\nid = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_written_config_is_private_and_round_trips(tmp_path: Path) -> None:
    doc = config_document(
        agent_id="a1",
        tenant="acme",
        urls=["https://gw:8443"],
        credential="vwa_xyz",
        ca_cert=tmp_path / "ca.pem",
        state_dir=tmp_path / "state",
        passphrase_file=tmp_path / "pp",
        backup_sets=[SCHEDULED],
    )
    path = tmp_path / "etc" / "agent.toml"
    old_umask = os.umask(0)
    try:
        write_private(path, dump_config(doc))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = load_config(path)
    assert cfg.agent_id == "a1" and cfg.server.credential == "vwa_xyz"
    assert cfg.backup_sets[0].name == "db"
    assert not cfg.metrics.enabled


def test_reconnect_backoff_defaults_to_a_short_cap(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, base_doc(tmp_path)))
    assert (cfg.network.backoff_initial, cfg.network.backoff_max) == (1.0, 5.0)
    doc = base_doc(tmp_path)
    doc["network"] = {"backoff_initial": "10s"}  # the cap is never below the first delay
    cfg = load_config(write(tmp_path, doc))
    assert (cfg.network.backoff_initial, cfg.network.backoff_max) == (10.0, 10.0)


def test_key_slot_is_optional_and_must_be_a_slot_id(tmp_path: Path) -> None:
    doc = base_doc(tmp_path)
    assert config_from(doc, tmp_path).key_slot is None
    doc["agent"]["key_slot"] = "ab" * 16
    assert config_from(doc, tmp_path).key_slot == "ab" * 16
    doc["agent"]["key_slot"] = "../keys/x"
    with pytest.raises(ConfigError, match=r"agent\.key_slot: must be a key slot id"):
        config_from(doc, tmp_path)


def test_a_set_may_ask_the_service_to_keep_more(tmp_path: Path) -> None:
    src = tmp_path / "srv"
    src.mkdir()
    wanted = {"within": "2d", "daily": 90, "monthly": -1}
    doc = base_doc(
        tmp_path,
        a={"name": "db", "paths": [str(src)], "mode": "continuous", "retention": wanted},
        b={"name": "www", "paths": [str(src)], "mode": "continuous"},
    )
    config = config_from(doc, tmp_path)
    assert config.backup_sets[0].retention == wanted
    assert config.backup_sets[1].retention is None


@pytest.mark.parametrize(
    ("retention", "words"),
    [
        ({"dialy": 7}, "unknown rule 'dialy'"),
        ({"daily": "seven"}, "daily must be a whole number"),
        ({"within": "soon"}, "duration"),
        ({}, "empty policy"),
        ("daily", "must be a table"),
    ],
)
def test_bad_retention_names_the_set(tmp_path: Path, retention: object, words: str) -> None:
    src = tmp_path / "srv"
    src.mkdir()
    doc = base_doc(
        tmp_path,
        a={"name": "db", "paths": [str(src)], "mode": "continuous", "retention": retention},
    )
    with pytest.raises(ConfigError, match=words) as caught:
        config_from(doc, tmp_path)
    assert "backup_set[1].retention" in str(caught.value)
