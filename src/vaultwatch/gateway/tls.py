"""The server's own certificate authority, for agents' TLS when no certificates are given.

Agents trust exactly this CA (its file is handed to them with the enrollment
token, or pinned by fingerprint), not the system's store, so a certificate
from any public CA for the same name cannot intercept them. The CA key stays
in the data directory to issue the next server certificate before this one
expires.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vaultwatch.errors import VaultwatchError
from vaultwatch.files import write_private

CA_VALIDITY = timedelta(days=3652)
SERVER_VALIDITY = timedelta(days=825)  # the longest lifetime clients commonly accept
_KEY_MODE = 0o600


class CertificateError(VaultwatchError):
    """A certificate or key cannot be read or does not fit."""


@dataclass(frozen=True)
class TlsFiles:
    """Where the PEM files of one server's TLS identity are."""

    ca_cert: Path | None
    ca_key: Path | None
    cert: Path
    key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(path, pem, mode=_KEY_MODE, exclusive=True)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def server_names(extra: list[str] | None = None) -> list[str]:
    """The names a server certificate covers: localhost, loopback, this host, and any extra."""
    names = ["localhost", "127.0.0.1", "::1"]
    for name in (socket.gethostname(), socket.getfqdn(), *(extra or [])):
        if name and name not in names:
            names.append(name)
    return names


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def create_ca_and_server_cert(
    directory: Path, *, names: list[str] | None = None, now: datetime | None = None
) -> TlsFiles:
    """Make a private CA (10 years) and a server certificate it signs, under ``directory``."""
    now = now or datetime.now(UTC)
    files = TlsFiles(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca-key.pem",
        cert=directory / "server.pem",
        key=directory / "server-key.pem",
    )
    for path in (files.ca_cert, files.ca_key, files.cert, files.key):
        assert path is not None
        if path.exists():
            raise CertificateError(
                f"{path} exists already: refusing to replace a key or certificate"
            )
    host = socket.gethostname() or "vaultwatch"
    ca_key = _new_key()
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vaultwatch"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Vaultwatch CA ({host})"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _new_key()
    san_names = server_names(names)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vaultwatch"),
                    x509.NameAttribute(NameOID.COMMON_NAME, san_names[-1][:64]),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_VALIDITY, now + CA_VALIDITY))
        .add_extension(_san(san_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    assert files.ca_key is not None and files.ca_cert is not None
    _write_private(files.ca_key, ca_key)
    _write_cert(files.ca_cert, ca_cert)
    _write_private(files.key, server_key)
    _write_cert(files.cert, cert)
    return files


def load_certificate(path: Path) -> x509.Certificate:
    """The first certificate in a PEM file."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise CertificateError(f"cannot read certificate {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CertificateError(f"{path} is not a PEM certificate: {exc}") from None


def check_key_pair(cert_path: Path, key_path: Path) -> x509.Certificate:
    """Refuse a certificate and key that do not belong together (a typo found at init, not at run)."""
    cert = load_certificate(cert_path)
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        raise CertificateError(f"cannot read key {key_path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"{key_path} is not an unencrypted PEM private key: {exc}") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != cert.public_key().public_bytes(enc, pub):
        raise CertificateError(f"{key_path} is not the private key of {cert_path}")
    return cert


def fingerprint(path: Path) -> str:
    """SHA-256 of the certificate (DER) as colon-separated hex, as openssl prints it."""
    der = load_certificate(path).public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
