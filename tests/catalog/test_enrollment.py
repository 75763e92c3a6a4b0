"""Enrollment tokens in, agent credentials out: single use, expiring, stored hashed."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from vaultwatch.catalog import Agent, AgentCredential, AuditEntry, Catalog, EnrollmentToken
from vaultwatch.catalog.enrollment import (
    authenticate_agent,
    create_enrollment_token,
    issue_agent_credential,
    redeem_enrollment_token,
    revoke_agent_credentials,
)
from vaultwatch.catalog.errors import (
    EnrollmentError,
    EnrollmentTokenExpiredError,
    EnrollmentTokenUnknownError,
    EnrollmentTokenUsedError,
    InvalidCredentialError,
    TenantNotFoundError,
    ValidationError,
)
from vaultwatch.catalog.security import TokenPurpose, new_token, new_token_key, token_digest

from .conftest import ACTOR, add_tenant, enroll

T0 = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


def _token(catalog: Catalog, tenant_id: uuid.UUID, key: bytes, **kwargs: object) -> str:
    with catalog.session() as session:
        issued = create_enrollment_token(
            session,
            tenant_id,
            key=key,
            created_by=ACTOR,
            **kwargs,  # type: ignore[arg-type]
        )
        return issued.plaintext


def test_token_is_stored_only_as_a_keyed_digest(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    plaintext = _token(catalog, tenant.id, key, ttl=timedelta(hours=2), now=T0, note="rack 4")
    assert plaintext.startswith("vwe_") and len(plaintext) > 40
    with catalog.session() as session:
        token = session.execute(select(EnrollmentToken)).scalar_one()
        assert token.digest == token_digest(plaintext, TokenPurpose.ENROLLMENT, key)
        assert plaintext.startswith(token.prefix) and len(token.prefix) == 12
        assert token.expires_at == T0 + timedelta(hours=2)
        assert token.used_at is None and token.note == "rack 4"
        dumped = " ".join(
            str(value)
            for table in ("enrollment_tokens", "audit_log")
            for row in session.execute(text(f"SELECT * FROM {table}"))
            for value in row
        )
    assert plaintext not in dumped
    assert plaintext[len(token.prefix) :] not in dumped


def test_redeem_creates_an_agent_in_the_tokens_tenant(catalog: Catalog, key: bytes) -> None:
    acme = add_tenant(catalog, "Acme")
    plaintext = _token(catalog, acme.id, key)
    with catalog.session() as session:
        enrolled = redeem_enrollment_token(session, plaintext, key=key, hostname="db-01")
    assert enrolled.agent.tenant_id == acme.id
    assert enrolled.agent.hostname == "db-01"
    assert enrolled.credential.startswith("vwa_")
    with catalog.session() as session:
        token = session.execute(select(EnrollmentToken)).scalar_one()
        assert token.used_at is not None and token.agent_id == enrolled.agent.id
        stored = session.execute(select(AgentCredential)).scalar_one()
        assert stored.digest != enrolled.credential
        assert stored.agent_id == enrolled.agent.id
        actions = session.execute(select(AuditEntry.action).order_by(AuditEntry.id)).scalars()
        assert list(actions) == ["tenant.create", "enrollment_token.create", "agent.enroll"]


def test_used_token_is_refused(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    plaintext = _token(catalog, tenant.id, key)
    with catalog.session() as session:
        redeem_enrollment_token(session, plaintext, key=key, hostname="srv1")
    used = pytest.raises(EnrollmentTokenUsedError, match="already used")
    with used, catalog.session() as session:
        redeem_enrollment_token(session, plaintext, key=key, hostname="srv2")
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Agent)) == 1


def test_expired_token_is_refused(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    plaintext = _token(catalog, tenant.id, key, ttl=timedelta(hours=1), now=T0)
    just_before = T0 + timedelta(minutes=59)
    at_expiry = T0 + timedelta(hours=1)
    expired = pytest.raises(EnrollmentTokenExpiredError, match="expired at 2024-06-01 10:00")
    with expired, catalog.session() as session:
        redeem_enrollment_token(session, plaintext, key=key, hostname="srv", now=at_expiry)
    with catalog.session() as session:
        redeem_enrollment_token(session, plaintext, key=key, hostname="srv", now=just_before)


def test_expiry_is_judged_by_the_database_clock_by_default(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    stale = _token(catalog, tenant.id, key, now=datetime.now(UTC) - timedelta(days=2))
    with pytest.raises(EnrollmentTokenExpiredError), catalog.session() as session:
        redeem_enrollment_token(session, stale, key=key, hostname="srv")
    fresh = _token(catalog, tenant.id, key)
    with catalog.session() as session:
        redeem_enrollment_token(session, fresh, key=key, hostname="srv")


@pytest.mark.parametrize(
    "presented",
    ["", "garbage", "vwe_", "vwa_" + "A" * 43, "vwe_" + "A" * 43],
    ids=["empty", "garbage", "prefix-only", "agent-credential", "random"],
)
def test_unknown_tokens_are_refused(catalog: Catalog, key: bytes, presented: str) -> None:
    tenant = add_tenant(catalog, "Acme")
    _token(catalog, tenant.id, key)
    with pytest.raises(EnrollmentTokenUnknownError), catalog.session() as session:
        redeem_enrollment_token(session, presented, key=key, hostname="srv")


def test_token_checked_with_another_key_is_unknown(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    plaintext = _token(catalog, tenant.id, key)
    with pytest.raises(EnrollmentTokenUnknownError), catalog.session() as session:
        redeem_enrollment_token(session, plaintext, key=new_token_key(), hostname="srv")


def test_the_three_refusals_are_distinct_errors() -> None:
    kinds = {EnrollmentTokenUnknownError, EnrollmentTokenUsedError, EnrollmentTokenExpiredError}
    assert all(issubclass(kind, EnrollmentError) for kind in kinds)
    assert not any(issubclass(a, b) for a in kinds for b in kinds if a is not b)


def test_concurrent_redemption_enrolls_exactly_one_agent(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    plaintext = _token(catalog, tenant.id, key)
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[object] = []
    lock = threading.Lock()

    def redeem(number: int) -> None:
        barrier.wait()
        outcome: object
        try:
            with catalog.session() as session:
                outcome = redeem_enrollment_token(
                    session, plaintext, key=key, hostname=f"srv{number}"
                ).agent.id
        except EnrollmentTokenUsedError as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=redeem, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    winners = [r for r in results if isinstance(r, uuid.UUID)]
    losers = [r for r in results if isinstance(r, EnrollmentTokenUsedError)]
    assert len(winners) == 1 and len(losers) == threads - 1
    with catalog.session() as session:
        agents = session.execute(select(Agent.id)).scalars().all()
        assert agents == winners
        assert session.scalar(select(func.count()).select_from(AgentCredential)) == 1
        token = session.execute(select(EnrollmentToken)).scalar_one()
        assert token.agent_id == winners[0]


def test_token_lifetime_and_hostname_are_validated(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    for ttl in (timedelta(0), timedelta(seconds=-1), timedelta(days=31)):
        with pytest.raises(ValidationError, match="lifetime"):
            _token(catalog, tenant.id, key, ttl=ttl)
    plaintext = _token(catalog, tenant.id, key)
    for hostname in ("", "two words", "x" * 256, "bad\nname"):
        with pytest.raises(ValidationError, match="hostname"), catalog.session() as session:
            redeem_enrollment_token(session, plaintext, key=key, hostname=hostname)
    with catalog.session() as session:  # a refused hostname did not burn the token
        redeem_enrollment_token(session, plaintext, key=key, hostname="srv")


def test_token_for_unknown_or_foreign_tenant_is_refused(catalog: Catalog, key: bytes) -> None:
    acme, zeta = add_tenant(catalog, "Acme"), add_tenant(catalog, "Zeta")
    with pytest.raises(TenantNotFoundError):
        _token(catalog, uuid.uuid4(), key)
    with pytest.raises(TenantNotFoundError), catalog.session(tenant_id=acme.id) as session:
        create_enrollment_token(session, zeta.id, key=key, created_by=ACTOR)


def test_authenticate_returns_the_agent_and_its_tenant(catalog: Catalog, key: bytes) -> None:
    acme = add_tenant(catalog, "Acme")
    enrolled = enroll(catalog, acme, key)
    enroll(catalog, add_tenant(catalog, "Zeta"), key)
    with catalog.session() as session:
        agent = authenticate_agent(session, enrolled.credential, key=key)
    # Usable after the session closed: plain values, nothing left to load.
    assert agent.id == enrolled.agent.id
    assert agent.tenant_id == acme.id
    assert agent.tenant_name == "Acme"
    assert agent.hostname == enrolled.agent.hostname


@pytest.mark.parametrize(
    "presented",
    ["", "vwa_nothing", "vwe_" + "A" * 43],
    ids=["empty", "unknown", "enrollment-token"],
)
def test_authenticate_refuses_unknown_credentials(
    catalog: Catalog, key: bytes, presented: str
) -> None:
    enroll(catalog, add_tenant(catalog, "Acme"), key)
    with pytest.raises(InvalidCredentialError), catalog.session() as session:
        authenticate_agent(session, presented, key=key)


def test_credentials_of_one_purpose_never_verify_as_another(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    enrolled = enroll(catalog, tenant, key)
    # An enrollment token whose random part equals a credential's cannot pass as it.
    disguised = "vwe_" + enrolled.credential[4:]
    with pytest.raises(InvalidCredentialError), catalog.session() as session:
        authenticate_agent(session, disguised, key=key)
    with pytest.raises(InvalidCredentialError), catalog.session() as session:
        authenticate_agent(session, enrolled.credential, key=new_token_key())


def test_revoked_credential_and_retired_agent_are_refused(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    enrolled = enroll(catalog, tenant, key)
    with catalog.session() as session:
        agent = session.get(Agent, enrolled.agent.id)
        assert agent is not None
        rotated = issue_agent_credential(session, agent, key=key)
    with catalog.session() as session:
        revoked = revoke_agent_credentials(
            session, enrolled.agent.id, actor=ACTOR, keep=rotated, key=key
        )
        assert revoked == 1
    with pytest.raises(InvalidCredentialError), catalog.session() as session:
        authenticate_agent(session, enrolled.credential, key=key)
    with catalog.session() as session:
        assert authenticate_agent(session, rotated, key=key).id == enrolled.agent.id
        agent = session.get(Agent, enrolled.agent.id)
        assert agent is not None
        agent.retired_at = datetime.now(UTC)
    with pytest.raises(InvalidCredentialError), catalog.session() as session:
        authenticate_agent(session, rotated, key=key)


def test_two_tokens_sharing_a_prefix_are_told_apart(catalog: Catalog, key: bytes) -> None:
    tenant = add_tenant(catalog, "Acme")
    first = _token(catalog, tenant.id, key)
    # Forge a second row whose prefix collides with the first token's.
    other, _ = new_token(TokenPurpose.ENROLLMENT, key)
    collided = first[:12] + other[12:]
    with catalog.session() as session:
        session.add(
            EnrollmentToken(
                tenant_id=tenant.id,
                prefix=first[:12],
                digest=token_digest(collided, TokenPurpose.ENROLLMENT, key),
                created_by=ACTOR,
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
    with catalog.session() as session:
        one = redeem_enrollment_token(session, collided, key=key, hostname="a").agent
    with catalog.session() as session:
        two = redeem_enrollment_token(session, first, key=key, hostname="b").agent
    assert one.id != two.id


def test_a_revoked_credential_is_told_it_was_revoked(catalog: Catalog, key: bytes) -> None:
    enrolled = enroll(catalog, add_tenant(catalog, "Acme"), key)
    with catalog.session() as session:
        revoke_agent_credentials(session, enrolled.agent.id, actor=ACTOR)
    with pytest.raises(InvalidCredentialError, match="was revoked"), catalog.session() as session:
        authenticate_agent(session, enrolled.credential, key=key)
    forged = "vwa_" + enrolled.credential[4:12] + "x" * (len(enrolled.credential) - 12)
    with pytest.raises(InvalidCredentialError) as unknown, catalog.session() as session:
        authenticate_agent(session, forged, key=key)
    assert str(unknown.value) == "invalid agent credential"  # same prefix, no secret: nothing told


def test_tokens_are_listed_by_state_and_revoked_with_an_audit_entry(
    catalog: Catalog, key: bytes
) -> None:
    from vaultwatch.catalog.enrollment import list_enrollment_tokens, revoke_enrollment_token
    from vaultwatch.catalog.errors import EnrollmentTokenRevokedError

    acme, globex = add_tenant(catalog, "Acme"), add_tenant(catalog, "Globex")
    open_token = _token(catalog, acme.id, key)
    doomed = _token(catalog, acme.id, key)
    _token(catalog, globex.id, key)
    enroll(catalog, acme, key)  # makes and uses a token
    with catalog.session() as session:
        assert len(list_enrollment_tokens(session)) == 3
        assert len(list_enrollment_tokens(session, include_finished=True)) == 4
        assert len(list_enrollment_tokens(session, tenant_id=globex.id)) == 1
        revoked = revoke_enrollment_token(session, doomed[:12], actor=ACTOR)
        assert revoked.revoked_at is not None
    with catalog.session(tenant_id=acme.id) as session:
        prefixes = {t.prefix for t in list_enrollment_tokens(session)}
        assert prefixes == {open_token[:12]}  # the revoked one is gone, Globex's never seen
    with pytest.raises(EnrollmentTokenRevokedError), catalog.session() as session:
        redeem_enrollment_token(session, doomed, key=key, hostname="srv9")
    with catalog.session() as session:
        entry = session.execute(
            select(AuditEntry).where(AuditEntry.action == "enrollment_token.revoke")
        ).scalar_one()
        assert entry.actor == ACTOR and entry.tenant_id == acme.id
        assert entry.details == {"token_prefix": doomed[:12]}


def test_a_used_token_cannot_be_revoked_and_other_tenants_tokens_are_not_found(
    catalog: Catalog, key: bytes
) -> None:
    from vaultwatch.catalog.enrollment import list_enrollment_tokens, revoke_enrollment_token
    from vaultwatch.catalog.errors import EnrollmentTokenNotFoundError

    acme, globex = add_tenant(catalog, "Acme"), add_tenant(catalog, "Globex")
    enroll(catalog, acme, key)
    theirs = _token(catalog, globex.id, key)
    with catalog.session() as session:
        (used,) = list_enrollment_tokens(session, include_finished=True, tenant_id=acme.id)
    refused = pytest.raises(EnrollmentTokenUsedError, match="revoke that agent's credential")
    with refused, catalog.session() as session:
        revoke_enrollment_token(session, str(used.id), actor=ACTOR)
    with pytest.raises(EnrollmentTokenNotFoundError), catalog.session(tenant_id=acme.id) as s:
        revoke_enrollment_token(s, theirs[:12], actor=ACTOR)
