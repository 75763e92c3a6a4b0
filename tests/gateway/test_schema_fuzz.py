"""Property-based requests from the published OpenAPI schema: the gateway never answers 5xx.

Requests go over HTTPS to the real server with a valid agent credential, so
they get past authentication into the handlers and the catalog. Kept small
(a few examples per operation) so the run takes well under a minute.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.gateway.harness import GatewayServer

MAX_EXAMPLES = int(os.environ.get("VAULTWATCH_FUZZ_EXAMPLES", "30"))


def test_no_server_errors(gateway: GatewayServer) -> None:
    agent = gateway.enroll(hostname="fuzz")
    doc = httpx.get(f"{gateway.url}/api/v1/openapi.json", verify=gateway.ca_context).json()
    schema = schemathesis.openapi.from_dict(doc)
    session = requests.Session()
    session.verify = str(gateway.ca_cert)
    auth = {"Authorization": f"Bearer {agent.credential}"}
    labels = []

    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema fails here
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=os.environ.get("VAULTWATCH_FUZZ_RANDOM") is None,
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call(
                base_url=gateway.url,
                session=session,
                headers=auth,
                timeout=30,
                verify=str(gateway.ca_cert),
            )
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400 and case.method.upper() != "HEAD":
                content_type = response.headers.get("content-type", [""])
                if isinstance(content_type, list):
                    content_type = content_type[0] if content_type else ""
                assert content_type == "application/problem+json", response.text
                body = response.json()
                assert {"type", "title", "status", "detail"} <= set(body)
                assert body["status"] == response.status_code

        check()
    session.close()
    assert "PUT /api/v1/vault/objects/{name}" in labels
    assert "POST /api/v1/heartbeat" in labels
