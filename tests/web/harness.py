"""Signing in through the login form as a browser does, and the CSRF token a page carries."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.soc.api.harness import PASSWORD, SocApi

OPERATOR = "op@soc.example"
CUSTOMER = "admin@acme.example"
EVENT: dict[str, Any] = {
    "node": "gw1",
    "alert_group": "gateway.down",
    "summary": "gateway gw1 does not answer",
    "severity": "critical",
}


def login_token(client: TestClient) -> str:
    """The login form's CSRF token (the form also sets its cookie)."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def login(
    client: TestClient, email: str = OPERATOR, password: str = PASSWORD, next_url: str = "/console"
) -> Any:
    """Submit the login form; the response (a 303 on success) is not followed."""
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": login_token(client),
            "next": next_url,
        },
        follow_redirects=False,
    )


def page_token(client: TestClient, path: str = "/console") -> str:
    """The CSRF token of the signed-in page at `path`."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert match, page.text
    return match.group(1)


def raise_alarm(api: SocApi, **changes: Any) -> int:
    """Post an event through the API as the operator; the alarm's id."""
    answer = api.client.post(
        "/api/v1/events", json={**EVENT, **changes}, headers=api.as_(api.operator_key)
    )
    assert answer.status_code == 202, answer.text
    return int(answer.json()["alarms"][0]["id"])
