"""The lifecycle API: tokens and agents for managers, tenant states for administrators, audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.catalog.conftest import enroll
from tests.soc.api.harness import SocApi, add_user_with_key
from vaultwatch.catalog import AuditEntry, Role
from vaultwatch.catalog.enrollment import authenticate_agent, create_enrollment_token
from vaultwatch.catalog.errors import InvalidCredentialError
from vaultwatch.catalog.tenants import get_tenant


def _admin(api: SocApi) -> dict[str, str]:
    key = add_user_with_key(api.catalog, api.token_key, "root@soc.example", Role.ADMINISTRATOR)
    return api.as_(key)


def _token(api: SocApi, tenant_id: object) -> str:
    with api.catalog.session() as session:
        return create_enrollment_token(
            session,
            tenant_id,
            key=api.token_key,
            created_by="system:test",  # type: ignore[arg-type]
        ).token.prefix


def test_a_customer_admin_lists_and_revokes_only_its_own_tokens(api: SocApi) -> None:
    mine, theirs = _token(api, api.tenant_id), _token(api, api.other_tenant_id)
    customer = api.as_(api.customer_key)
    listed = api.client.get("/api/v1/enrollment-tokens", headers=customer)
    assert listed.status_code == 200
    assert [t["prefix"] for t in listed.json()] == [mine]
    assert listed.json()[0]["state"] == "active"
    foreign = api.client.post(f"/api/v1/enrollment-tokens/{theirs}/revoke", headers=customer)
    assert foreign.status_code == 404
    revoked = api.client.post(f"/api/v1/enrollment-tokens/{mine}/revoke", headers=customer)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert api.client.get("/api/v1/enrollment-tokens", headers=customer).json() == []
    everything = api.client.get(
        "/api/v1/enrollment-tokens", params={"include_finished": "true"}, headers=_admin(api)
    )
    assert {t["prefix"]: t["state"] for t in everything.json()} == {
        mine: "revoked",
        theirs: "active",
    }
    operator = api.client.get("/api/v1/enrollment-tokens", headers=api.as_(api.operator_key))
    assert operator.status_code == 403
    with api.catalog.session() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "enrollment_token.revoke")
        ).one()
        assert entry.actor.startswith("user:") and entry.tenant_id == api.tenant_id


def test_agents_are_revoked_and_retired_over_the_api(api: SocApi) -> None:
    with api.catalog.session() as session:
        tenant = get_tenant(session, api.tenant_id)
    one = enroll(api.catalog, tenant, api.token_key, hostname="db1")
    two = enroll(api.catalog, tenant, api.token_key, hostname="web1")
    customer = api.as_(api.customer_key)
    other = api.client.post(
        f"/api/v1/agents/{one.agent.id}/retire", headers=api.as_(api.other_customer_key)
    )
    assert other.status_code == 404
    revoked = api.client.post(f"/api/v1/agents/{one.agent.id}/credentials/revoke", headers=customer)
    assert revoked.status_code == 200 and revoked.json()["credentials_revoked"] == 1
    retired = api.client.post(f"/api/v1/agents/{two.agent.id}/retire", headers=customer)
    assert retired.status_code == 200 and retired.json()["retired_at"] is not None
    for enrolled, why in ((one, "revoked"), (two, "retired")):
        with pytest.raises(InvalidCredentialError, match=why), api.catalog.session() as session:
            authenticate_agent(session, enrolled.credential, key=api.token_key)
    fleet = api.client.get("/api/v1/agents", headers=customer).json()
    assert [a["hostname"] for a in fleet["items"]] == ["db1"]  # the retired one left the fleet


def test_only_an_administrator_suspends_and_deletes_tenants(api: SocApi) -> None:
    admin = _admin(api)
    url = f"/api/v1/tenants/{api.tenant_id}"
    body = {"reason": "contract ended"}
    for key in (api.operator_key, api.customer_key):
        assert api.client.post(f"{url}/suspend", json=body, headers=api.as_(key)).status_code == 403
        assert api.client.delete(url, headers=api.as_(key)).status_code == 403
    suspended = api.client.post(f"{url}/suspend", json=body, headers=admin)
    assert suspended.status_code == 200 and suspended.json()["state"] == "suspended"
    summary = api.client.get("/api/v1/status", headers=api.as_(api.operator_key)).json()
    (acme,) = [t for t in summary["tenants"] if t["tenant_id"] == str(api.tenant_id)]
    assert acme["suspended"] is True and acme["suspension_reason"] == "contract ended"
    seen = api.client.get(url, headers=api.as_(api.customer_key))
    assert seen.json()["state"] == "suspended"  # the customer sees it too
    assert api.client.post(f"{url}/suspend", json={}, headers=admin).status_code == 422
    assert api.client.post(f"{url}/resume", headers=admin).json()["state"] == "active"
    again = api.client.post(f"{url}/resume", headers=admin)
    assert again.status_code == 409 and again.json()["type"].endswith("tenant-state")

    deleted = api.client.delete(url, params={"grace_days": 3}, headers=admin)
    assert deleted.status_code == 200 and deleted.json()["state"] == "deleted"
    summary = api.client.get("/api/v1/status", headers=api.as_(api.operator_key)).json()
    assert str(api.tenant_id) not in {t["tenant_id"] for t in summary["tenants"]}
    # The deletion disabled the tenant's users, so their keys stop working too.
    assert api.client.get(url, headers=api.as_(api.customer_key)).status_code == 401
    restored = api.client.post(f"{url}/undelete", headers=admin)
    assert restored.status_code == 200 and restored.json()["state"] == "active"
    assert api.client.get(url, headers=api.as_(api.customer_key)).status_code == 200
    listed = api.client.get("/api/v1/tenants", headers=admin).json()
    assert {t["name"] for t in listed} == {"Acme", "Globex"}
    with api.catalog.session() as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    for action in ("tenant.suspend", "tenant.resume", "tenant.delete", "tenant.undelete"):
        assert actions.count(action) == 1, action
