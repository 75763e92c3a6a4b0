"""API keys for people and scripts, and the principal a request acts as.

A key acts as its user with the user's role; a customer's key is confined to
the user's tenant. Keys are 256 random bits, shown once and stored as a keyed
digest (see `vaultwatch.catalog.security`), revocable and optionally
expiring. Logging in with a password issues a short-lived key the same way,
so the administrator made by ``server init`` can use the API and the CLI.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from vaultwatch.catalog import Catalog, audit
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.models import CUSTOMER_ROLES, Role, User
from vaultwatch.catalog.security import (
    TokenPurpose,
    new_token,
    token_has_purpose,
    token_prefix,
    verify_password,
    verify_token,
)
from vaultwatch.catalog.soc_models import ApiKey

MAX_KEY_LENGTH = 100
LOGIN_KEY_LIFETIME = timedelta(hours=12)

#: Roles that work in the operations center and see every tenant.
SOC_ROLES = frozenset({Role.SOC_OPERATOR, Role.SOC_SUPERVISOR, Role.ADMINISTRATOR})


class InvalidApiKeyError(CatalogError):
    """The API key is unknown, revoked or expired, or its user is disabled."""

    http_status = 401


class LoginFailedError(CatalogError):
    """The email or password is wrong (which of them is not said)."""

    http_status = 401


class ForbiddenError(CatalogError):
    """The caller's role may not do this."""

    http_status = 403


class ApiKeyNotFoundError(CatalogError):
    """No API key has this id."""

    http_status = 404


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user, with the role and tenant that limit what it sees."""

    user_id: uuid.UUID
    email: str
    role: Role
    tenant_id: uuid.UUID | None
    key_id: uuid.UUID | None = None

    @property
    def actor(self) -> str:
        """How this principal appears in journals and the audit log."""
        return audit.user_actor(self.user_id)

    @property
    def is_staff(self) -> bool:
        """Operations center staff: they see every tenant."""
        return self.role in SOC_ROLES

    @property
    def is_customer(self) -> bool:
        """A customer's user: confined to its tenant."""
        return self.role in CUSTOMER_ROLES

    def require(self, *roles: Role) -> None:
        """Refuse with 403 unless the principal has one of `roles`."""
        if self.role not in roles:
            allowed = ", ".join(sorted(r.value for r in roles))
            raise ForbiddenError(f"this needs one of the roles {allowed}")


@dataclass(frozen=True)
class IssuedKey:
    """A new key: the plaintext is shown once, here, and never stored."""

    id: uuid.UUID
    plaintext: str
    prefix: str
    expires_at: datetime | None


def find_user(session: Session, email: str) -> User:
    """The account with this email (case-insensitive); ValidationError if none."""
    user = session.scalars(
        select(User).where(func.lower(User.email) == email.strip().lower())
    ).first()
    if user is None:
        raise ValidationError(f"no user {email.strip()!r}")
    return user


def create_api_key(
    session: Session,
    user: User,
    name: str,
    *,
    key: bytes,
    actor: str,
    lifetime: timedelta | None = None,
) -> IssuedKey:
    """Issue a key acting as `user`; audited with its prefix, never its secret."""
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise ValidationError("an API key's name must be 1 to 200 characters")
    if user.disabled_at is not None:
        raise ValidationError(f"user {user.email} is disabled")
    plaintext, digest = new_token(TokenPurpose.API_KEY, key)
    now = database_now(session)
    row = ApiKey(
        id=uuid.uuid4(),
        user_id=user.id,
        tenant_id=user.tenant_id,
        name=name,
        prefix=token_prefix(plaintext),
        digest=digest,
        created_at=now,
        created_by=actor,
        expires_at=now + lifetime if lifetime is not None else None,
    )
    session.add(row)
    audit.record(
        session,
        actor,
        "apikey.create",
        user.tenant_id,
        target=f"apikey:{row.id}",
        details={"user": user.email, "name": name, "prefix": row.prefix},
    )
    return IssuedKey(row.id, plaintext, row.prefix, row.expires_at)


def list_api_keys(session: Session) -> list[tuple[ApiKey, str]]:
    """Every key with its user's email, newest first."""
    rows = session.execute(
        select(ApiKey, User.email)
        .join(User, User.id == ApiKey.user_id)
        .order_by(ApiKey.created_at.desc())
    ).all()
    return [(row[0], row[1]) for row in rows]


def revoke_api_key(session: Session, key_ref: str, *, actor: str) -> ApiKey:
    """Revoke a key named by its id or its prefix; audited. Revoking twice is harmless."""
    ref = key_ref.strip()
    statement = select(ApiKey)
    try:
        statement = statement.where(ApiKey.id == uuid.UUID(ref))
    except ValueError:
        statement = statement.where(ApiKey.prefix == ref)
    row = session.scalars(statement).first()
    if row is None:
        raise ApiKeyNotFoundError(f"no API key {ref!r}")
    if row.revoked_at is None:
        row.revoked_at = database_now(session)
        audit.record(
            session,
            actor,
            "apikey.revoke",
            row.tenant_id,
            target=f"apikey:{row.id}",
            details={"prefix": row.prefix},
        )
    return row


def is_api_key_shaped(plaintext: str) -> bool:
    """Whether a bearer value could be an API key at all (no database needed)."""
    return len(plaintext) <= MAX_KEY_LENGTH and token_has_purpose(plaintext, TokenPurpose.API_KEY)


def authenticate_api_key(session: Session, plaintext: str, *, key: bytes) -> Principal:
    """The principal of a key; one error for unknown, revoked, expired and disabled."""
    if not is_api_key_shaped(plaintext):
        raise InvalidApiKeyError("invalid API key")
    now = database_now(session)
    rows = session.execute(
        select(
            ApiKey.id,
            ApiKey.digest,
            ApiKey.expires_at,
            ApiKey.revoked_at,
            ApiKey.last_used_at,
            User,
        )
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.prefix == token_prefix(plaintext))
    ).all()
    for key_id, digest, expires_at, revoked_at, last_used_at, user in rows:
        if not verify_token(plaintext, digest, TokenPurpose.API_KEY, key):
            continue
        if revoked_at is not None or user.disabled_at is not None:
            break
        if expires_at is not None and expires_at <= now:
            break
        if last_used_at is None or now - last_used_at > timedelta(minutes=1):
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .values(last_used_at=now)
                .execution_options(synchronize_session=False)
            )
        return Principal(user.id, user.email, user.role, user.tenant_id, key_id)
    raise InvalidApiKeyError("invalid API key")


def check_password(catalog: Catalog, email: str, password: str) -> Principal:
    """The principal of an email and password, issuing nothing (browser sessions make their own).

    A failure is audited as ``login.failed`` in its own transaction (it must
    outlive the refusal) and answered with one error whichever was wrong.
    """
    wanted = email.strip().lower()
    with catalog.session() as session:
        user = session.scalars(select(User).where(func.lower(User.email) == wanted)).first()
        if (
            user is not None
            and user.disabled_at is None
            and verify_password(user.password_hash, password)
        ):
            user.last_login_at = database_now(session)
            return Principal(user.id, user.email, user.role, user.tenant_id)
        tenant_id = user.tenant_id if user is not None else None
        audit.record(
            session,
            audit.system_actor("login"),
            "login.failed",
            tenant_id,
            details={"email": wanted[:320]},
        )
    raise LoginFailedError("wrong email or password")


def login(catalog: Catalog, email: str, password: str, *, key: bytes) -> IssuedKey:
    """Check a password (see `check_password`) and issue a key valid for `LOGIN_KEY_LIFETIME`."""
    principal = check_password(catalog, email, password)
    with catalog.session() as session:
        user = session.get(User, principal.user_id)
        if user is None:  # deleted between the two transactions
            raise LoginFailedError("wrong email or password")
        return create_api_key(
            session,
            user,
            "login",
            key=key,
            actor=principal.actor,
            lifetime=LOGIN_KEY_LIFETIME,
        )
