"""`repo key`: adding, removing and changing key slots."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.cli.conftest import FAST_KDF, Cli


def _pem(public: object) -> bytes:
    return public.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_key_add_remove_and_passwd(cli: Cli, repo: Path, tmp_path: Path) -> None:
    newpw = tmp_path / "new"
    newpw.write_text("second passphrase\n")
    added = cli.json("repo", "key", "add", "-r", repo, "--new-passphrase-file", newpw, *FAST_KDF)
    assert added["kind"] == "passphrase" and added["kdf"]["memory_kib"] == 8 * 1024
    cli.ok("repo", "snapshots", "-r", repo, passphrase="second passphrase")

    slots = cli.json("repo", "key", "list", "-r", repo)
    assert len(slots) == 2
    [mine] = [s for s in slots if s["current"]]
    assert mine["id"] != added["id"]

    removed = cli.json("repo", "key", "remove", "-r", repo, added["id"][:10])
    assert removed == {"removed": added["id"], "kind": "passphrase"}
    assert cli("repo", "snapshots", "-r", repo, passphrase="second passphrase").exit_code == 12

    last = cli("repo", "key", "remove", "-r", repo, mine["id"])
    assert last.exit_code == 1
    assert "refusing to remove the last passphrase slot" in last.stderr

    newpw.write_text("third passphrase\n")
    changed = cli.json(
        "repo", "key", "passwd", "-r", repo, "--new-passphrase-file", newpw, *FAST_KDF
    )
    assert changed["removed"] == mine["id"]
    assert cli("repo", "snapshots", "-r", repo).exit_code == 12
    cli.ok("repo", "snapshots", "-r", repo, passphrase="third passphrase")


def test_key_add_needs_a_new_passphrase(cli: Cli, repo: Path) -> None:
    result = cli("repo", "key", "add", "-r", repo)
    assert result.exit_code == 1
    assert "no new passphrase" in result.stderr
    assert len(cli.json("repo", "key", "list", "-r", repo)) == 1


def test_key_add_prompts_twice(cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vaultwatch.cli.options.stdin_is_tty", lambda: True)
    result = cli("repo", "key", "add", "-r", repo, *FAST_KDF, input="typed\ntyped\n")
    assert result.exit_code == 0, result.output
    cli.ok("repo", "snapshots", "-r", repo, passphrase="typed")


def test_key_add_escrow(cli: Cli, repo: Path, tmp_path: Path) -> None:
    pem = tmp_path / "escrow.pem"
    pem.write_bytes(_pem(X25519PrivateKey.generate().public_key()))
    added = cli.json("repo", "key", "add", "-r", repo, "--escrow-public-key", pem)
    assert added["kind"] == "escrow" and len(added["recipient"]) == 16
    table = cli.ok("repo", "key", "list", "-r", repo).stdout
    assert f"recipient {added['recipient']}" in table
