"""Hashing of secrets the catalog stores: tokens, credentials and passwords.

Two kinds of secret, two kinds of hash:

* Enrollment tokens, agent credentials and API keys are made here, from 256
  random bits. Nobody can guess or brute-force such a value, so a slow
  password hash (Argon2) would add nothing but CPU cost on every request.
  They are stored as a keyed BLAKE2b digest instead: fast, constant-time to
  compare, and keyed with a server secret kept outside the database, so
  someone who can write to the catalog still cannot mint a working
  credential by inserting a digest of their own. Each purpose hashes with
  its own personalization, so a digest of one kind never verifies as another.
  A short prefix of the token (its kind and 8 random characters, safe to
  show) is stored in clear to find the row and to name the token in the
  portal and the audit log.
* Passwords are chosen by people and can be guessed, so they get Argon2id
  (memory-hard, salted, tunable) through argon2-cffi.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: Random bytes in every token: 256 bits.
TOKEN_BYTES = 32

#: Characters of the random part kept in clear as the lookup prefix (48 bits).
PREFIX_RANDOM_CHARS = 8

MIN_KEY_BYTES = 32
MAX_KEY_BYTES = 64  # BLAKE2b's key limit


class TokenPurpose(enum.Enum):
    """What a token is for; the value is the token's visible prefix."""

    ENROLLMENT = "vwe"
    AGENT_CREDENTIAL = "vwa"
    API_KEY = "vwk"

    @property
    def person(self) -> bytes:
        """BLAKE2b personalization (at most 16 bytes) that separates the purposes."""
        return f"vaultwatch-{self.value}".encode()


def new_token_key() -> bytes:
    """A fresh server key for token digests; keep it with the server's other secrets."""
    return secrets.token_bytes(MIN_KEY_BYTES)


def _check_key(key: bytes) -> None:
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"token key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")


def token_digest(plaintext: str, purpose: TokenPurpose, key: bytes) -> str:
    """The keyed digest stored for a token (64 hex characters)."""
    _check_key(key)
    digest = hashlib.blake2b(
        plaintext.encode("utf-8"), digest_size=32, key=key, person=purpose.person
    )
    return digest.hexdigest()


def token_prefix(plaintext: str) -> str:
    """The part of a token that is stored in clear to look it up and to show it."""
    return plaintext[: len(TokenPurpose.ENROLLMENT.value) + 1 + PREFIX_RANDOM_CHARS]


def new_token(purpose: TokenPurpose, key: bytes) -> tuple[str, str]:
    """A new random token and its digest: `(plaintext, digest)`.

    The plaintext is shown once to whoever asked for it and never stored.
    """
    plaintext = f"{purpose.value}_{secrets.token_urlsafe(TOKEN_BYTES)}"
    return plaintext, token_digest(plaintext, purpose, key)


def token_has_purpose(plaintext: str, purpose: TokenPurpose) -> bool:
    """Cheap shape check before touching the database."""
    return plaintext.startswith(f"{purpose.value}_") and len(plaintext) > len(
        token_prefix(plaintext)
    )


def verify_token(plaintext: str, digest: str, purpose: TokenPurpose, key: bytes) -> bool:
    """True if `plaintext` is the token whose digest is `digest` (constant-time compare)."""
    return hmac.compare_digest(token_digest(plaintext, purpose, key), digest)


_password_hasher = PasswordHasher()  # Argon2id with RFC 9106's low-memory profile


def hash_password(password: str) -> str:
    """An Argon2id hash of `password`, with its salt and parameters, ready to store."""
    if not password:
        raise ValueError("password must not be empty")
    return _password_hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if `password` matches; False for a wrong password or a malformed hash."""
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """True when the hash uses weaker parameters than today's; rehash after a good login."""
    return _password_hasher.check_needs_rehash(password_hash)
