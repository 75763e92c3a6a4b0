"""`repo init`: creating a repository, its KDF and escrow options, asking for the passphrase."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.cli.conftest import FAST_KDF, Cli


def test_init_prints_the_repository_id(cli: Cli, tmp_path: Path) -> None:
    result = cli.ok("repo", "init", "-r", tmp_path / "r", *FAST_KDF)
    config = json.loads((tmp_path / "r" / "config").read_text())
    assert result.stdout == f"created repository {config['id']} at {tmp_path / 'r'}\n"
    assert "Keep the passphrase safe" in result.stderr


def test_init_json_and_kdf_options(cli: Cli, tmp_path: Path) -> None:
    doc = cli.json("repo", "init", "-r", tmp_path / "r", "--kdf-memory", "9", "--kdf-time", "2")
    assert doc["location"] == str(tmp_path / "r") and doc["escrow"] is False
    slots = cli.json("repo", "key", "list", "-r", tmp_path / "r")
    assert len(slots) == 1 and slots[0]["current"] is True
    assert slots[0]["kdf"]["memory_kib"] == 9 * 1024 and slots[0]["kdf"]["time_cost"] == 2
    assert "salt" not in slots[0]["kdf"]


def test_kdf_memory_below_the_minimum_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("repo", "init", "-r", tmp_path / "r", "--kdf-memory", "1")
    assert result.exit_code == 2
    assert not (tmp_path / "r").exists()


def _pem(public: object) -> bytes:
    return public.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_init_with_escrow_slot(cli: Cli, tmp_path: Path) -> None:
    key = X25519PrivateKey.generate()
    pem = tmp_path / "escrow.pem"
    pem.write_bytes(_pem(key.public_key()))
    doc = cli.json("repo", "init", "-r", tmp_path / "r", *FAST_KDF, "--escrow-public-key", pem)
    assert doc["escrow"] is True
    slots = cli.json("repo", "key", "list", "-r", tmp_path / "r")
    assert sorted(s["kind"] for s in slots) == ["escrow", "passphrase"]
    # The escrow key really opens the repository.
    from vaultwatch.engine.repository import Repository
    from vaultwatch.store.local import LocalStore

    Repository.open(LocalStore(tmp_path / "r"), escrow_key=key)


def test_escrow_key_of_the_wrong_type(cli: Cli, tmp_path: Path) -> None:
    pem = tmp_path / "ed.pem"
    pem.write_bytes(_pem(Ed25519PrivateKey.generate().public_key()))
    result = cli("repo", "init", "-r", tmp_path / "r", *FAST_KDF, "--escrow-public-key", pem)
    assert result.exit_code == 1
    assert "must be an X25519 public key" in result.stderr


def test_init_asks_twice_on_a_terminal(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vaultwatch.cli.options.stdin_is_tty", lambda: True)
    result = cli(
        "repo", "init", "-r", tmp_path / "r", *FAST_KDF, passphrase=None, input="s3cret\nother\n"
    )
    assert result.exit_code == 1
    assert "the passphrases do not match" in result.stderr
    assert not (tmp_path / "r" / "config").exists()

    cli.ok(
        "repo", "init", "-r", tmp_path / "r", *FAST_KDF, passphrase=None, input="s3cret\ns3cret\n"
    )
    # The prompt went to stderr and the secret was not echoed anywhere.
    cli.ok("repo", "snapshots", "-r", tmp_path / "r", passphrase=None, input="s3cret\n")
    wrong = cli("repo", "snapshots", "-r", tmp_path / "r", passphrase=None, input="nope\n")
    assert wrong.exit_code == 12
    assert "s3cret" not in wrong.output
