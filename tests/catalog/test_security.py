"""Secret hashing: keyed digests for random tokens, Argon2id for passwords."""

from __future__ import annotations

import pytest

from vaultwatch.catalog.security import (
    TokenPurpose,
    hash_password,
    new_token,
    new_token_key,
    password_needs_rehash,
    token_digest,
    token_has_purpose,
    token_prefix,
    verify_password,
    verify_token,
)


def test_tokens_are_random_prefixed_and_verify_only_with_their_key_and_purpose() -> None:
    key = new_token_key()
    plaintext, digest = new_token(TokenPurpose.API_KEY, key)
    again, _ = new_token(TokenPurpose.API_KEY, key)
    assert plaintext != again
    assert plaintext.startswith("vwk_") and len(plaintext) == 4 + 43  # 32 bytes, base64url
    assert token_prefix(plaintext) == plaintext[:12]
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert token_has_purpose(plaintext, TokenPurpose.API_KEY)
    assert not token_has_purpose(plaintext, TokenPurpose.ENROLLMENT)
    assert verify_token(plaintext, digest, TokenPurpose.API_KEY, key)
    assert not verify_token(plaintext, digest, TokenPurpose.API_KEY, new_token_key())
    assert not verify_token(plaintext, digest, TokenPurpose.AGENT_CREDENTIAL, key)
    tampered = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    assert not verify_token(tampered, digest, TokenPurpose.API_KEY, key)


def test_digest_is_deterministic_per_key() -> None:
    key = new_token_key()
    one = token_digest("vwe_abc", TokenPurpose.ENROLLMENT, key)
    assert one == token_digest("vwe_abc", TokenPurpose.ENROLLMENT, key)
    assert one != token_digest("vwe_abc", TokenPurpose.ENROLLMENT, new_token_key())


@pytest.mark.parametrize("size", [0, 16, 31, 65])
def test_short_or_oversized_keys_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="token key"):
        new_token(TokenPurpose.ENROLLMENT, b"k" * size)


def test_password_hash_is_salted_argon2id_and_verifies() -> None:
    first = hash_password("correct horse battery staple")
    second = hash_password("correct horse battery staple")
    assert first.startswith("$argon2id$")
    assert first != second  # salted
    assert "correct horse" not in first
    assert verify_password(first, "correct horse battery staple")
    assert verify_password(second, "correct horse battery staple")
    assert not password_needs_rehash(first)


@pytest.mark.parametrize(
    "attempt", ["correct horse battery stapl", "Correct horse battery staple", "", " " * 4]
)
def test_wrong_passwords_are_rejected(attempt: str) -> None:
    stored = hash_password("correct horse battery staple")
    assert not verify_password(stored, attempt)


def test_malformed_hash_is_a_rejection_not_a_crash() -> None:
    assert not verify_password("not-a-hash", "anything")
    assert not verify_password("$argon2id$v=19$m=65536,t=3,p=4$broken", "anything")


def test_empty_password_cannot_be_set() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_password("")
