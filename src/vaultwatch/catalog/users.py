"""People who log in: creating accounts with Argon2id passwords.

Emails are the login names and are unique ignoring case, so "Ann@Example.com"
and "ann@example.com" cannot become two accounts of one person.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vaultwatch.catalog import audit
from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.models import Role, User
from vaultwatch.catalog.security import hash_password
from vaultwatch.catalog.tenants import get_tenant

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
MIN_PASSWORD_LENGTH = 12


class UserExistsError(CatalogError):
    """An account with this email already exists."""


def normalize_email(email: str) -> str:
    """The stored form of an email: trimmed and lower-cased; malformed ones are refused."""
    email = email.strip().lower()
    if len(email) > 320 or not _EMAIL_RE.match(email):
        raise ValidationError(f"{email!r} is not an email address")
    return email


def create_user(
    session: Session,
    *,
    email: str,
    display_name: str,
    role: Role,
    password: str,
    actor: str,
    tenant_id: uuid.UUID | None = None,
) -> User:
    """Create an account (customer roles need a tenant, staff roles must have none) and audit it."""
    email = normalize_email(email)
    display_name = " ".join(display_name.split())
    if not display_name or len(display_name) > 200:
        raise ValidationError("display name must be 1 to 200 characters")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if role.is_customer != (tenant_id is not None):
        raise ValidationError(
            f"role {role.value} {'needs' if role.is_customer else 'must not have'} a tenant"
        )
    if tenant_id is not None:
        get_tenant(session, tenant_id)
    taken = session.execute(
        select(User.id).where(func.lower(User.email) == email)
    ).scalar_one_or_none()
    if taken is not None:
        raise UserExistsError(f"an account for {email} already exists")
    user = User(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        email=email,
        display_name=display_name,
        password_hash=hash_password(password),
        role=role,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor,
        "user.create",
        tenant_id,
        target=f"user:{user.id}",
        details={"email": email, "role": role.value},
    )
    return user


def count_users(session: Session, role: Role | None = None) -> int:
    """How many accounts exist (of one role)."""
    statement = select(func.count()).select_from(User)
    if role is not None:
        statement = statement.where(User.role == role)
    return int(session.execute(statement).scalar_one())
