"""``vaultwatch agent``: clear errors and exit codes, status output, no secret in logs."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from typer.testing import CliRunner

from tests.agent.conftest import base_doc
from vaultwatch.agent.config import dump_config
from vaultwatch.agent.logs import JsonFormatter, TextFormatter
from vaultwatch.agent.status import status_path, write_status
from vaultwatch.cli.main import app

runner = CliRunner()

SET = {"name": "www", "paths": ["/srv/www"], "mode": "continuous"}


def write_config(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "agent.toml"
    path.write_bytes(dump_config(doc))
    return path


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    bad = base_doc(tmp_path, a={**SET, "quiet": "soon"})
    result = runner.invoke(
        app, ["agent", "check-config", "--config", str(write_config(tmp_path, bad))]
    )
    assert result.exit_code == 2
    assert "backup_set[1].quiet" in result.output
    assert "Traceback" not in result.output


def test_check_config_lists_sets(tmp_path: Path) -> None:
    www, db = tmp_path / "www", tmp_path / "db"
    www.mkdir()
    db.mkdir()
    good = base_doc(
        tmp_path,
        a={**SET, "paths": [str(www)]},
        b={"name": "db", "paths": [str(db)], "mode": "scheduled", "at": ["02:30"]},
    )
    result = runner.invoke(
        app, ["agent", "check-config", "--config", str(write_config(tmp_path, good))]
    )
    assert result.exit_code == 0, result.output
    assert f"www: {www} - continuous (quiet 2s, max delay 4s, rescan 3600s)" in result.output
    assert f"db: {db} - at 02:30" in result.output
    assert "vwa_secret" not in result.output


def test_check_config_reports_paths_that_do_not_exist(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    doc = base_doc(tmp_path, a={**SET, "paths": [str(www), str(tmp_path / "typo")]})
    path = write_config(tmp_path, doc)
    result = runner.invoke(app, ["agent", "check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert f"backup set 'www': {tmp_path / 'typo'}" in result.output
    assert "valid" not in result.output and "Traceback" not in result.output


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, base_doc(tmp_path))
    result = runner.invoke(
        app, ["agent", "check-config"], env={"VAULTWATCH_AGENT_CONFIG": str(path)}
    )
    assert result.exit_code == 0, result.output
    assert "protect nothing" in result.output


def test_enroll_refuses_bad_input_before_calling_the_server(tmp_path: Path) -> None:
    existing = write_config(tmp_path, base_doc(tmp_path))
    result = runner.invoke(
        app,
        [
            "agent",
            "enroll",
            "--server",
            "https://gw:1",
            "--token",
            "vwe_x",
            "--config",
            str(existing),
        ],
    )
    assert result.exit_code == 2 and "already enrolled" in result.output
    result = runner.invoke(
        app,
        [
            "agent",
            "enroll",
            "--server",
            "gw:1",
            "--token",
            "vwe_x",
            "--config",
            str(tmp_path / "new.toml"),
        ],
    )
    assert result.exit_code == 2 and "https:// URL" in result.output
    result = runner.invoke(
        app,
        [
            "agent",
            "enroll",
            "--server",
            "https://127.0.0.1:1",
            "--token",
            "vwe_x",
            "--config",
            str(tmp_path / "new.toml"),
            "--ca-cert",
            str(tmp_path / "nope.pem"),
        ],
    )
    assert result.exit_code == 2 and "nope.pem: no such file" in result.output
    # Nothing listens on port 1: a clear network error, and no config written.
    result = runner.invoke(
        app,
        [
            "agent",
            "enroll",
            "--server",
            "https://127.0.0.1:1",
            "--token",
            "vwe_x",
            "--config",
            str(tmp_path / "new.toml"),
        ],
    )
    assert result.exit_code == 1 and "cannot reach https://127.0.0.1:1" in result.output
    assert not (tmp_path / "new.toml").exists()


def test_status(tmp_path: Path) -> None:
    doc = base_doc(tmp_path, a=SET)
    path = write_config(tmp_path, doc)
    result = runner.invoke(app, ["agent", "status", "--config", str(path)])
    assert result.exit_code == 1 and "no status yet" in result.output

    state_dir = tmp_path / "state"
    state_dir.mkdir()
    status = {
        "pid": os.getpid(),
        "agent_id": "a1",
        "hostname": "web1",
        "state": "waiting_for_network",
        "job": {
            "job_uid": "j-1",
            "backup_set": "www",
            "state": "waiting_for_network",
            "bytes_done": 512 * 1024,
            "bytes_total": 1024 * 1024,
            "files_done": 3,
            "attempts": 2,
            "last_error": "cannot reach a gateway",
        },
        "gateways": {"https://gw1.example:8443": False},
        "last_heartbeat": None,
        "pending_reports": 2,
        "backup_sets": {
            "www": {
                "mode": "continuous",
                "last_success": 1_700_000_000.0,
                "last_state": "succeeded",
                "last_snapshot": "abcdef0123456789",
                "next_due": None,
            }
        },
    }
    write_status(status_path(state_dir), status)
    result = runner.invoke(app, ["agent", "status", "--config", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "agent a1 on web1: waiting_for_network" in out
    assert "job j-1 of www: waiting_for_network, 512.00 KiB of 1.00 MiB (50%)" in out
    assert "gateway https://gw1.example:8443: UNREACHABLE" in out
    assert "job reports waiting for the network: 2" in out
    assert "abcdef01" in out and "on change" in out

    result = runner.invoke(app, ["agent", "status", "--config", str(path), "--json"])
    assert json.loads(result.output)["running"] is True

    status["pid"] = 2**22 + 12345  # no such process
    write_status(status_path(state_dir), status)
    result = runner.invoke(app, ["agent", "status", "--config", str(path), "--json"])
    doc_out = json.loads(result.output)
    assert doc_out["running"] is False and doc_out["state"] == "stopped"


def test_logs_mask_credentials() -> None:
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "sent %s with Bearer %s",
        ("vwa_AbCdEfGhIjKlMnOpQrStUv", "tok"),
        None,
    )
    for formatter in (JsonFormatter(), TextFormatter()):
        text = formatter.format(record)
        assert "vwa_AbCd" not in text and "Bearer tok" not in text
        assert "***" in text
    assert json.loads(JsonFormatter().format(record))["level"] == "info"
