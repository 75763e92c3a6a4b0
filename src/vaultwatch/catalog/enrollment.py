"""Enrolling agents: single-use tokens in, per-agent credentials out.

A tenant admin (or the SOC) creates an enrollment token; the installer on the
customer's server redeems it once and receives the agent's own credential,
which it uses from then on. Both secrets are random, shown once, and stored
only as keyed digests (see `vaultwatch.catalog.security`).

Redeeming claims the token with one conditional UPDATE (unused, not revoked
and not expired), so when two servers present the same token at once exactly
one enrolls and the other is told the token is used. An unused token can be
revoked; a suspended or deleted tenant gets no tokens and enrolls nobody.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from vaultwatch.catalog import audit
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.errors import (
    AgentNotFoundError,
    EnrollmentTokenExpiredError,
    EnrollmentTokenNotFoundError,
    EnrollmentTokenRevokedError,
    EnrollmentTokenUnknownError,
    EnrollmentTokenUsedError,
    InvalidCredentialError,
    TenantDeletedError,
    TenantSuspendedError,
    ValidationError,
)
from vaultwatch.catalog.models import Agent, AgentCredential, EnrollmentToken, Tenant
from vaultwatch.catalog.security import (
    TokenPurpose,
    new_token,
    token_digest,
    token_has_purpose,
    token_prefix,
    verify_token,
)
from vaultwatch.catalog.tenants import get_tenant
from vaultwatch.catalog.types import utcnow

DEFAULT_ENROLLMENT_TTL = timedelta(hours=24)
MAX_ENROLLMENT_TTL = timedelta(days=30)
MAX_HOSTNAME_LENGTH = 255


@dataclass(frozen=True)
class IssuedEnrollmentToken:
    """A new token: the row, and the plaintext to hand over once (it is not stored)."""

    token: EnrollmentToken
    plaintext: str


@dataclass(frozen=True)
class EnrolledAgent:
    """A newly enrolled agent and its credential (shown once, not stored)."""

    agent: Agent
    credential: str


def create_enrollment_token(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    key: bytes,
    created_by: str,
    ttl: timedelta = DEFAULT_ENROLLMENT_TTL,
    note: str | None = None,
    now: datetime | None = None,
) -> IssuedEnrollmentToken:
    """Create a single-use token that enrolls one server into `tenant_id` before `ttl` ends."""
    if not timedelta(0) < ttl <= MAX_ENROLLMENT_TTL:
        raise ValidationError(
            "enrollment token lifetime must be more than 0 and at most "
            f"{MAX_ENROLLMENT_TTL.days} days"
        )
    if note is not None and len(note) > 200:
        raise ValidationError("enrollment token note must be at most 200 characters")
    check_tenant_accepts_agents(get_tenant(session, tenant_id))
    now = now or database_now(session)
    plaintext, digest = new_token(TokenPurpose.ENROLLMENT, key)
    token = EnrollmentToken(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        prefix=token_prefix(plaintext),
        digest=digest,
        created_by=created_by,
        note=note,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(token)
    audit.record(
        session,
        created_by,
        "enrollment_token.create",
        tenant_id,
        target=f"enrollment_token:{token.id}",
        details={"token_prefix": token.prefix, "expires_at": token.expires_at.isoformat()},
        at=now,
    )
    session.flush()
    return IssuedEnrollmentToken(token=token, plaintext=plaintext)


def check_tenant_accepts_agents(tenant: Tenant) -> None:
    """Refuse new enrollments (and tokens) for a suspended or deleted tenant."""
    if tenant.deleted_at is not None:
        raise TenantDeletedError(f"tenant {tenant.name} was deleted")
    if tenant.suspended_at is not None:
        raise TenantSuspendedError(f"tenant {tenant.name} is suspended: no new servers enroll")


def token_state(token: EnrollmentToken, now: datetime) -> str:
    """`active`, `used`, `revoked` or `expired`: what the console and the CLI show."""
    if token.used_at is not None:
        return "used"
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if token.expires_at <= now else "active"


def list_enrollment_tokens(
    session: Session,
    *,
    tenant_id: uuid.UUID | None = None,
    include_finished: bool = False,
    now: datetime | None = None,
    limit: int = 500,
) -> list[EnrollmentToken]:
    """Enrollment tokens newest first: unused and unexpired ones, or all with `include_finished`.

    A tenant-scoped session sees its own tenant's only. The secrets are not
    kept: a token is named by its prefix.
    """
    statement = select(EnrollmentToken).order_by(
        EnrollmentToken.created_at.desc(), EnrollmentToken.id
    )
    if tenant_id is not None:
        statement = statement.where(EnrollmentToken.tenant_id == tenant_id)
    if not include_finished:
        statement = statement.where(
            EnrollmentToken.used_at.is_(None),
            EnrollmentToken.revoked_at.is_(None),
            EnrollmentToken.expires_at > (now or database_now(session)),
        )
    return list(session.execute(statement.limit(limit)).scalars())


def find_enrollment_token(session: Session, ref: str) -> EnrollmentToken:
    """The token `ref` names: its id, or its prefix (`vwe_XXXXXXXX`)."""
    ref = ref.strip()
    try:
        found = session.get(EnrollmentToken, uuid.UUID(ref))
    except ValueError:
        rows = list(
            session.execute(select(EnrollmentToken).where(EnrollmentToken.prefix == ref)).scalars()
        )
        if len(rows) > 1:
            raise ValidationError(f"several tokens start with {ref}: give the id") from None
        found = rows[0] if rows else None
    if found is None:
        raise EnrollmentTokenNotFoundError(f"no enrollment token {ref!r}")
    return found


def revoke_enrollment_token(
    session: Session, ref: str, *, actor: str, now: datetime | None = None
) -> EnrollmentToken:
    """Withdraw an unused token so nobody can enroll with it; idempotent for a revoked one.

    A used token has done its work (revoke the agent's credential instead),
    so it is refused with a message saying so.
    """
    token = find_enrollment_token(session, ref)
    if token.used_at is not None:
        raise EnrollmentTokenUsedError(
            f"enrollment token {token.prefix}… was already used by agent {token.agent_id}: "
            "revoke that agent's credential instead"
        )
    if token.revoked_at is not None:
        return token
    now = now or database_now(session)
    # Conditional, like redeeming: a server enrolling at this instant either wins or is refused.
    claimed = session.execute(
        update(EnrollmentToken)
        .where(
            EnrollmentToken.id == token.id,
            EnrollmentToken.used_at.is_(None),
            EnrollmentToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(claimed, CursorResult)
    session.refresh(token)
    if claimed.rowcount != 1:
        if token.used_at is not None:
            raise EnrollmentTokenUsedError(
                f"enrollment token {token.prefix}… was used at this moment: "
                "revoke that agent's credential instead"
            )
        return token
    audit.record(
        session,
        actor,
        "enrollment_token.revoke",
        token.tenant_id,
        target=f"enrollment_token:{token.id}",
        details={"token_prefix": token.prefix},
        at=now,
    )
    session.flush()
    return token


def _normalize_hostname(hostname: str) -> str:
    hostname = hostname.strip()
    if not hostname or len(hostname) > MAX_HOSTNAME_LENGTH:
        raise ValidationError(f"hostname must be 1 to {MAX_HOSTNAME_LENGTH} characters")
    if not hostname.isprintable() or any(char.isspace() for char in hostname):
        raise ValidationError("hostname must not contain spaces or control characters")
    return hostname


def _find_token(session: Session, plaintext: str, key: bytes) -> EnrollmentToken:
    if not token_has_purpose(plaintext, TokenPurpose.ENROLLMENT):
        raise EnrollmentTokenUnknownError("this is not an enrollment token")
    candidates = session.execute(
        select(EnrollmentToken).where(EnrollmentToken.prefix == token_prefix(plaintext))
    ).scalars()
    for candidate in candidates:
        if verify_token(plaintext, candidate.digest, TokenPurpose.ENROLLMENT, key):
            return candidate
    raise EnrollmentTokenUnknownError("unknown enrollment token")


def redeem_enrollment_token(
    session: Session,
    plaintext: str,
    *,
    key: bytes,
    hostname: str,
    now: datetime | None = None,
) -> EnrolledAgent:
    """Enroll a server with a token: a new agent in the token's tenant, with its credential.

    Refuses unknown, used and expired tokens with distinct errors, so the
    installer can tell the person what to do (ask for a new token, or check
    which server already used it).
    """
    hostname = _normalize_hostname(hostname)
    token = _find_token(session, plaintext, key)
    now = now or database_now(session)
    if token.revoked_at is not None:
        raise EnrollmentTokenRevokedError(
            f"enrollment token {token.prefix}… was revoked at {token.revoked_at:%Y-%m-%d %H:%M} UTC"
        )
    if token.used_at is not None:
        raise EnrollmentTokenUsedError(
            f"enrollment token {token.prefix}… was already used at {token.used_at:%Y-%m-%d %H:%M} UTC"
        )
    if token.expires_at <= now:
        raise EnrollmentTokenExpiredError(
            f"enrollment token {token.prefix}… expired at {token.expires_at:%Y-%m-%d %H:%M} UTC"
        )
    check_tenant_accepts_agents(get_tenant(session, token.tenant_id))
    claimed = session.execute(
        update(EnrollmentToken)
        .where(
            EnrollmentToken.id == token.id,
            EnrollmentToken.used_at.is_(None),
            EnrollmentToken.revoked_at.is_(None),
            EnrollmentToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(claimed, CursorResult)
    if claimed.rowcount != 1:
        raise EnrollmentTokenUsedError(f"enrollment token {token.prefix}… was already used")

    agent = Agent(id=uuid.uuid4(), tenant_id=token.tenant_id, hostname=hostname, enrolled_at=now)
    session.add(agent)
    session.flush()
    credential = issue_agent_credential(session, agent, key=key, now=now)
    session.execute(
        update(EnrollmentToken)
        .where(EnrollmentToken.id == token.id)
        .values(agent_id=agent.id)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(token, "used_at", now)
    set_committed_value(token, "agent_id", agent.id)
    audit.record(
        session,
        audit.agent_actor(agent.id),
        "agent.enroll",
        token.tenant_id,
        target=f"agent:{agent.id}",
        details={"hostname": hostname, "token_prefix": token.prefix},
        at=now,
    )
    session.flush()
    return EnrolledAgent(agent=agent, credential=credential)


def issue_agent_credential(
    session: Session,
    agent: Agent,
    *,
    key: bytes,
    now: datetime | None = None,
    pending: bool = False,
) -> str:
    """Give `agent` a new credential and return its plaintext (older ones stay valid).

    Keeping the old ones until they are revoked lets an agent switch over
    without a window in which it cannot authenticate; a `pending` one
    revokes the others itself the first time it is used.
    """
    plaintext, digest = new_token(TokenPurpose.AGENT_CREDENTIAL, key)
    credential = AgentCredential(
        tenant_id=agent.tenant_id,
        agent_id=agent.id,
        prefix=token_prefix(plaintext),
        digest=digest,
        created_at=now or database_now(session),
        pending=pending,
    )
    session.add(credential)
    session.flush()
    return plaintext


def revoke_agent_credentials(
    session: Session,
    agent_id: uuid.UUID,
    *,
    actor: str,
    keep: str | None = None,
    key: bytes | None = None,
    now: datetime | None = None,
) -> int:
    """Revoke an agent's credentials (all, or all but `keep`); returns how many.

    Use it after a rotation (keep the new one) or when a server is
    compromised (keep none).
    """
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise AgentNotFoundError(f"no agent with id {agent_id}")
    now = now or database_now(session)
    statement = update(AgentCredential).where(
        AgentCredential.agent_id == agent_id, AgentCredential.revoked_at.is_(None)
    )
    if keep is not None:
        if key is None:
            raise ValidationError("revoking all but one credential needs the token key")
        statement = statement.where(
            AgentCredential.digest != token_digest(keep, TokenPurpose.AGENT_CREDENTIAL, key)
        )
    result = session.execute(
        statement.values(revoked_at=now).execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    audit.record(
        session,
        actor,
        "agent.credentials_revoke",
        agent.tenant_id,
        target=f"agent:{agent_id}",
        details={"revoked": result.rowcount, "kept_one": keep is not None},
        at=now,
    )
    return result.rowcount


@dataclass(frozen=True)
class AuthenticatedAgent:
    """Who presented a valid credential: what every request needs, read in one query."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    hostname: str
    checked_at: datetime
    """When the credential was checked, by the database's clock (see `database_now`)."""
    suspended: bool = False
    """The tenant is suspended: the agent may read its vault but not add to it."""


MAX_CREDENTIAL_LENGTH = 200

#: Built once: constructing this join and its cache key at every request cost more than
#: running it (every agent request starts with it). Revoked credentials are selected too,
#: so an agent whose credential was revoked is told so rather than "invalid".
_CREDENTIAL_OWNERS = (
    select(
        AgentCredential.digest,
        Agent.id,
        Agent.tenant_id,
        Tenant.name,
        Agent.hostname,
        Agent.retired_at,
        AgentCredential.revoked_at,
        AgentCredential.pending,
        AgentCredential.id,
        Tenant.suspended_at,
        Tenant.deleted_at,
    )
    .join(Agent, Agent.id == AgentCredential.agent_id)
    .join(Tenant, Tenant.id == Agent.tenant_id)
    .where(AgentCredential.prefix == bindparam("prefix"))
)
#: The same, with the database's clock (one statement fewer for a heartbeat).
_CREDENTIAL_OWNERS_AND_CLOCK = _CREDENTIAL_OWNERS.add_columns(func.clock_timestamp())

REVOKED_MESSAGE = (
    "this agent credential was revoked: enroll the server again with a new token "
    "(vaultwatch agent enroll --force)"
)
RETIRED_MESSAGE = "this agent was retired: enroll the server again with a new token if it returns"
DELETED_MESSAGE = "the tenant of this agent was deleted: ask the service to restore it"


def is_agent_credential_shaped(credential: str) -> bool:
    """Whether `credential` could be an agent credential at all (no database needed).

    Lets the API refuse garbage with 401 before it even parses the body.
    """
    return len(credential) <= MAX_CREDENTIAL_LENGTH and token_has_purpose(
        credential, TokenPurpose.AGENT_CREDENTIAL
    )


def authenticate_agent(session: Session, credential: str, *, key: bytes) -> AuthenticatedAgent:
    """The agent (and its tenant's name) that owns `credential`.

    Unknown and malformed credentials get one error that says nothing more.
    A genuine credential that was revoked, or whose agent was retired, gets
    the same 401 with a message saying which, so the server's owner knows
    to enroll again (whoever holds it held a valid secret: nothing is
    revealed). A deleted tenant's agents are refused with 403. The first
    use of a rotated-in credential revokes the agent's others. Every agent
    request starts here, so it selects the few columns it needs rather than
    loading entities (a third of a heartbeat's cost when it did).
    """
    if not is_agent_credential_shaped(credential):
        raise InvalidCredentialError("invalid agent credential")
    prefix = {"prefix": token_prefix(credential)}
    on_postgresql = session.get_bind().dialect.name == "postgresql"
    if on_postgresql:
        rows = session.execute(_CREDENTIAL_OWNERS_AND_CLOCK, prefix).all()
    else:
        rows = session.execute(_CREDENTIAL_OWNERS, prefix).all()
    for row in rows:
        digest, agent_id, tenant_id, tenant_name, hostname, retired_at = row[:6]
        revoked_at, pending, credential_id, suspended_at, deleted_at = row[6:11]
        if not verify_token(credential, digest, TokenPurpose.AGENT_CREDENTIAL, key):
            continue
        if deleted_at is not None:
            raise TenantDeletedError(DELETED_MESSAGE)
        if retired_at is not None:
            raise InvalidCredentialError(RETIRED_MESSAGE)
        if revoked_at is not None:
            raise InvalidCredentialError(REVOKED_MESSAGE)
        checked_at = row[11].astimezone(UTC) if on_postgresql else utcnow()
        if pending:
            _complete_rotation(session, agent_id, tenant_id, credential_id, checked_at)
        return AuthenticatedAgent(
            agent_id, tenant_id, tenant_name, hostname, checked_at, suspended_at is not None
        )
    raise InvalidCredentialError("invalid agent credential")


def _complete_rotation(
    session: Session,
    agent_id: uuid.UUID,
    tenant_id: uuid.UUID,
    credential_id: uuid.UUID,
    now: datetime,
) -> None:
    """The agent used its new credential, so it has stored it: the old ones stop working.

    Conditional on the credential still being pending, so two first requests
    at once revoke (and audit) once.
    """
    claimed = session.execute(
        update(AgentCredential)
        .where(AgentCredential.id == credential_id, AgentCredential.pending.is_(True))
        .values(pending=False)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(claimed, CursorResult)
    if claimed.rowcount != 1:
        return
    revoked = session.execute(
        update(AgentCredential)
        .where(
            AgentCredential.agent_id == agent_id,
            AgentCredential.id != credential_id,
            AgentCredential.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(revoked, CursorResult)
    audit.record(
        session,
        audit.agent_actor(agent_id),
        "agent.credential_rotated",
        tenant_id,
        target=f"agent:{agent_id}",
        details={"revoked": revoked.rowcount, "credential_id": str(credential_id)},
        at=now,
    )
