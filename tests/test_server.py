"""The server as an operator runs it: ``server init``, ``admin`` commands, ``server run`` with roles.

Everything goes through the ``vaultwatch`` command in subprocesses; the
agent side is the engine on a GatewayStore, over real TLS.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from sqlalchemy import select
from sqlalchemy.engine import URL

from tests.catalog.conftest import postgres_server_url, postgres_url
from vaultwatch.catalog import AuditEntry, Catalog, Role, User
from vaultwatch.catalog.security import verify_password
from vaultwatch.engine.backup import backup
from vaultwatch.engine.keys import KdfParams
from vaultwatch.engine.managed import ManagedRepository
from vaultwatch.engine.repository import Repository
from vaultwatch.engine.restore import restore
from vaultwatch.gateway.tls import create_ca_and_server_cert
from vaultwatch.server import build_app
from vaultwatch.server_config import ServerConfigError, load_settings, parse_roles
from vaultwatch.store.http import GatewayStore, RetryPolicy

__all__ = ["postgres_server_url", "postgres_url"]  # fixtures, shared with the catalog tests

VW = [sys.executable, "-c", "import sys; from vaultwatch.cli.main import main; sys.argv[0] = 'vaultwatch'; main()"]  # fmt: skip
FAST_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)


def vw(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*VW, *args], capture_output=True, text=True, timeout=120, check=False)
    if ok and proc.returncode != 0:
        raise AssertionError(
            f"vaultwatch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
        )
    return proc


def vw_json(*args: str) -> Any:
    return json.loads(vw(*args, "--json").stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Running:
    """A ``vaultwatch server run`` process."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.port = free_port()
        self.log = data_dir.parent / f"server-{self.port}.log"
        self.proc = subprocess.Popen(
            [*VW, "server", "run", "--data-dir", str(data_dir), "--port", str(self.port), *extra],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),  # noqa: SIM115 - the process owns it
        )
        settings = load_settings(data_dir)
        ca = settings.ca_cert
        self.context = (
            ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()
        )
        self.url = f"https://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if (
                    httpx.get(f"{self.url}/healthz", verify=self.context, timeout=2).status_code
                    == 200
                ):
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"server did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, verify=self.context, timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, verify=self.context, timeout=10, **kw)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "server"


def test_init_makes_a_private_data_dir(data_dir: Path) -> None:
    out = vw_json("server", "init", "--data-dir", str(data_dir), "--name", "backup.example.net")
    assert out["data_dir"] == str(data_dir)
    assert out["admin_email"] == "admin@localhost"
    password = out["admin_password"]
    assert len(password) >= 20
    assert mode(data_dir) == 0o700
    for secret in (
        "vaultwatch.toml",
        "catalog.db",
        "secrets/token.key",
        "tls/ca-key.pem",
        "tls/server-key.pem",
    ):
        assert mode(data_dir / secret) == 0o600, secret
    doc = tomllib.loads((data_dir / "vaultwatch.toml").read_text())
    assert doc["tls"] == {
        "cert": "tls/server.pem",
        "key": "tls/server-key.pem",
        "ca_cert": "tls/ca.pem",
    }
    assert doc["vault"]["url"] == str(data_dir / "vaults")
    assert password not in (data_dir / "vaultwatch.toml").read_text()

    ca = x509.load_pem_x509_certificate((data_dir / "tls/ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((data_dir / "tls/server.pem").read_bytes())
    now = datetime.now(UTC)
    assert ca.not_valid_after_utc - now > timedelta(days=3640)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName))
    addresses = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert {"localhost", socket.gethostname(), "backup.example.net"} <= names
    assert "127.0.0.1" in addresses
    assert out["ca_fingerprint"].count(":") == 31

    settings = load_settings(data_dir)
    catalog = Catalog(settings.catalog_url)
    try:
        with catalog.session() as session:
            admin = session.execute(
                select(User).where(User.role == Role.ADMINISTRATOR)
            ).scalar_one()
            assert admin.email == "admin@localhost"
            assert admin.password_hash.startswith("$argon2id$")
            assert verify_password(admin.password_hash, password)
            actions = set(session.execute(select(AuditEntry.action)).scalars())
        assert {"server.init", "user.create"} <= actions
    finally:
        catalog.dispose()

    again = vw("server", "init", "--data-dir", str(data_dir), ok=False)
    assert again.returncode == 2
    assert "already a server data directory" in again.stderr
    assert "Traceback" not in again.stderr


def test_init_with_given_certificates_and_postgresql(tmp_path: Path, postgres_url: URL) -> None:
    files = create_ca_and_server_cert(tmp_path / "corp-pki")
    url = postgres_url.render_as_string(hide_password=False)
    first = vw_json(
        "server", "init", "--data-dir", str(tmp_path / "a"), "--catalog-url", url,
        "--tls-cert", str(files.cert), "--tls-key", str(files.key),
    )  # fmt: skip
    assert first["ca_cert"] is None and first["ca_fingerprint"] is None
    assert first["admin_password"]
    assert not (tmp_path / "a" / "tls").exists()
    settings = load_settings(tmp_path / "a")
    assert settings.tls_cert == files.cert and settings.catalog_url == url
    # A second node on the same catalog: no second administrator.
    second = vw_json("server", "init", "--data-dir", str(tmp_path / "b"), "--catalog-url", url)
    assert second["admin_password"] is None
    # A key that does not belong to the certificate is caught at init.
    other = create_ca_and_server_cert(tmp_path / "other-pki")
    bad = vw(
        "server", "init", "--data-dir", str(tmp_path / "c"),
        "--tls-cert", str(files.cert), "--tls-key", str(other.key), ok=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "is not the private key" in bad.stderr
    half = vw(
        "server", "init", "--data-dir", str(tmp_path / "d"), "--tls-cert", str(files.cert), ok=False
    )
    assert half.returncode == 2 and "both --tls-cert and --tls-key" in half.stderr


def test_admin_tenants_and_tokens(data_dir: Path) -> None:
    vw("server", "init", "--data-dir", str(data_dir))
    d = ["--data-dir", str(data_dir)]
    acme = vw_json("admin", "tenant", "create", "Acme  Corp", *d)
    assert acme["name"] == "Acme Corp"
    assert Path(acme["vault"]) == data_dir / "vaults" / acme["id"]
    assert Path(acme["vault"]).is_dir()
    vw_json("admin", "tenant", "create", "Beta", *d, "--escrow")
    listed = vw_json("admin", "tenant", "list", *d)
    assert [t["name"] for t in listed] == ["Acme Corp", "Beta"]
    assert [t["escrow_allowed"] for t in listed] == [False, True]
    table = vw("admin", "tenant", "list", *d).stdout
    assert "Acme Corp" in table and acme["id"] in table
    dup = vw("admin", "tenant", "create", "acme corp", *d, ok=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr

    token = vw_json("admin", "token", "create", "--tenant", "ACME CORP", "--expires", "2h", *d)
    assert token["token"].startswith("vwe_")
    assert token["tenant"] == {"id": acme["id"], "name": "Acme Corp"}
    expires = datetime.fromisoformat(token["expires_at"])
    assert timedelta(minutes=119) < expires - datetime.now(UTC) <= timedelta(hours=2)
    assert token["ca_fingerprint"]
    by_id = vw_json("admin", "token", "create", "--tenant", acme["id"], *d)
    assert by_id["tenant"]["name"] == "Acme Corp"
    plain = vw("admin", "token", "create", "--tenant", "Beta", *d).stdout
    assert "vwe_" in plain
    zone = datetime.now().astimezone().strftime("%Z")
    assert re.search(rf"expires \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d {zone}\)", plain), plain
    for bad_args, message in (
        (["--tenant", "nobody"], "no tenant named"),
        (["--tenant", "Beta", "--expires", "soon"], "invalid duration"),
        (
            ["--tenant", "Beta", "--expires", "60d"],
            "lifetime must be more than 0 and at most 30 days",
        ),
    ):
        bad = vw("admin", "token", "create", *bad_args, *d, ok=False)
        assert bad.returncode != 0 and message in bad.stderr, bad.stderr
    missing = vw("admin", "tenant", "list", "--data-dir", str(data_dir.parent / "nope"), ok=False)
    assert missing.returncode == 2 and "server init" in missing.stderr

    settings = load_settings(data_dir)
    catalog = Catalog(settings.catalog_url)
    try:
        with catalog.session() as session:
            rows = session.execute(select(AuditEntry.actor, AuditEntry.action)).all()
    finally:
        catalog.dispose()
    cli_actions = {action for actor, action in rows if actor.startswith("system:cli:")}
    assert {"tenant.create", "enrollment_token.create", "vault.create"} <= cli_actions
    assert not any(token["token"] in str(row) for row in rows)


def test_run_enroll_backup_restore(data_dir: Path, tmp_path: Path) -> None:
    vw("server", "init", "--data-dir", str(data_dir))
    d = ["--data-dir", str(data_dir)]
    tenant = vw_json("admin", "tenant", "create", "Gamma", *d)
    token = vw_json("admin", "token", "create", "--tenant", "Gamma", *d)["token"]
    server = Running(data_dir)
    try:
        enrolled = server.post(
            "/api/v1/enroll",
            json={
                "token": token,
                "hostname": "db-01",
                "agent_version": "0.1.0",
                "platform": "linux",
            },
        )
        assert enrolled.status_code == 201, enrolled.text
        credential = enrolled.json()["credential"]
        assert enrolled.json()["tenant"]["id"] == tenant["id"]
        assert (
            server.post(
                "/api/v1/enroll",
                json={"token": token, "hostname": "x", "agent_version": "1", "platform": "p"},
            ).status_code
            == 409
        )

        source = tmp_path / "src"
        (source / "sub").mkdir(parents=True)
        (source / "sub" / "data.bin").write_bytes(os.urandom(2_500_000))
        (source / "notes.txt").write_text("restore me\n")
        ca = data_dir / "tls" / "ca.pem"
        store = GatewayStore(server.url, credential, ca, retry=RetryPolicy(max_attempts=3))
        repo = ManagedRepository.init(store, "pw", kdf=FAST_KDF)
        result = backup(repo, [str(source)])
        assert not result.errors
        repo.close()

        reader = Repository.open(GatewayStore(server.url, credential, ca), "pw")
        target = tmp_path / "restored"
        restored_result = restore(reader, reader.find_snapshot("latest"), target)
        reader.close()
        assert not restored_result.errors, restored_result.errors
        restored = target / source.relative_to("/")
        assert (restored / "sub" / "data.bin").read_bytes() == (
            source / "sub" / "data.bin"
        ).read_bytes()
        assert (restored / "notes.txt").read_text() == "restore me\n"
        # The bytes are in the tenant's vault on the server's disk, encrypted.
        vault = data_dir / "vaults" / tenant["id"]
        assert (vault / "config").is_file() and any((vault / "data").rglob("*"))
        assert b"restore me" not in b"".join(
            p.read_bytes() for p in vault.rglob("*") if p.is_file()
        )
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM)  # a clean shutdown (uvicorn re-raises the signal)
    log = server.log.read_text()
    assert credential not in log and token not in log
    first = json.loads(log.splitlines()[-1])
    assert {"time", "level", "logger", "message"} <= set(first)


def test_roles_choose_what_is_served(data_dir: Path) -> None:
    vw("server", "init", "--data-dir", str(data_dir))
    web = Running(data_dir, "--roles", "web,worker")
    try:
        health = web.get("/healthz")
        assert health.json()["roles"] == ["web", "worker"]
        gone = web.post("/api/v1/enroll", json={})
        assert gone.status_code == 404
        assert gone.headers["content-type"] == "application/problem+json"
    finally:
        assert web.stop() in (0, -signal.SIGTERM)
    bad = vw("server", "run", "--data-dir", str(data_dir), "--roles", "gateway,dns", ok=False)
    assert bad.returncode == 2 and "unknown role" in bad.stderr


def test_run_on_a_busy_port_says_so_and_never_claims_to_serve(data_dir: Path) -> None:
    vw("server", "init", "--data-dir", str(data_dir))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = vw(
            "server", "run", "--data-dir", str(data_dir), "--host", "127.0.0.1",
            "--port", str(port), ok=False,
        )  # fmt: skip
    assert busy.returncode == 2
    assert f"port {port} is in use on 127.0.0.1" in busy.stderr
    assert "serving" not in busy.stderr and "Traceback" not in busy.stderr


def test_parse_roles_and_build_app(tmp_path: Path) -> None:
    assert parse_roles("gateway, WEB,gateway") == ("gateway", "web")
    for bad in ("", "db", ",,"):
        with pytest.raises(ServerConfigError):
            parse_roles(bad)
    from vaultwatch.server import init_server

    settings = init_server(tmp_path / "d").settings
    worker = build_app(settings, "worker")
    assert set(worker.openapi()["paths"]) == {"/healthz"}
    gateway = build_app(settings, ("gateway",))
    assert "/api/v1/vault/objects/{name}" in gateway.openapi()["paths"]
