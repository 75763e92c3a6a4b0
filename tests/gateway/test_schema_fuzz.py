"""Property-based requests from the published OpenAPI schema: the gateway does what it says.

Schemathesis runs every check it ships (the equivalent of ``st run --checks
all``: its examples, coverage, fuzzing and stateful phases) over HTTPS
against the real server with a valid agent credential, so requests get past
authentication into the handlers and the catalog. A schema-valid request the
server refuses, a schema-invalid one it accepts, an undocumented status,
content type, header or body, a 405 without the right ``Allow``, or a
credential that is not enforced all fail the test. Kept small (a few
examples per operation, derandomized) so a run takes well under a minute;
``VAULTWATCH_FUZZ_EXAMPLES`` raises the count and ``VAULTWATCH_FUZZ_RANDOM``
draws new examples each run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from schemathesis.checks import CHECKS, CheckContext, load_all_checks
from schemathesis.core.failures import Failure
from schemathesis.core.transport import Response
from schemathesis.engine import events, from_schema
from schemathesis.engine.statistic import Statistic
from schemathesis.generation.case import Case
from schemathesis.hooks import HookContext
from schemathesis.schemas import BaseSchema

from tests.gateway.harness import GatewayServer

MAX_EXAMPLES = int(os.environ.get("VAULTWATCH_FUZZ_EXAMPLES", "10"))
PROBLEM_FIELDS = {"type", "title", "status", "detail"}

UPLOAD_OPERATION = "PUT /api/v1/vault/objects/{name}"
#: The service's rules that no JSON Schema can state, and the status each is refused with
#: (docs/api.md, "Errors"): a schema-valid request may get that status too. Every other
#: refusal of a schema-valid request (a 422 of request validation above all) still fails.
BEYOND_THE_SCHEMA = {
    # The body must hash to its X-Content-Blake3, and a content-addressed object's to its
    # name; a manifest must be one; a snapshot needs its manifest first.
    UPLOAD_OPERATION: "422",
    # Text must be printable in Unicode's sense (a pattern would need a class of 700
    # ranges per field), and an enrolling host name must have no spaces.
    "POST /api/v1/enroll": "400",
    # Printable text too, and backup set names unique within the report.
    "POST /api/v1/heartbeat": "400",
    # A reported snapshot must already be in the vault.
    "PUT /api/v1/jobs/{job_uid}": "400",
}
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]
#: Schemathesis' refusals, and 413: a body over the gateway's JSON limit is refused whole,
#: before it is parsed (the limit is on bytes, which a schema cannot state).
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
#: Headers that frame the HTTP message: a drawn value makes a request that is not HTTP at
#: all, which uvicorn refuses (400, text/plain) before the gateway ever sees it.
FRAMING_HEADERS = {"content-length", "transfer-encoding", "host", "connection"}


class ProblemDetailsNotUsed(Failure):
    """An error response that is not an RFC 7807 problem document."""

    code = "ST990"
    kind_title = "Error response is not a problem document"


@schemathesis.check
def problem_details(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every error the gateway answers (documented or not, 405s too) is problem+json."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    content_type = response.headers.get("content-type", [""])[0]
    body = response.json() if content_type == "application/problem+json" else None
    if (
        not isinstance(body, dict)
        or not set(body) >= PROBLEM_FIELDS
        or body["status"] != response.status_code
    ):
        raise ProblemDetailsNotUsed(
            operation=case.operation.label,
            message=f"{response.status_code} {content_type}: {response.text[:300]}",
        )
    return None


@dataclass
class Run:
    """What one schemathesis run found."""

    cases: int = 0
    operations: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run_all_checks(schema: BaseSchema) -> Run:
    """Run schemathesis' engine over ``schema`` as its CLI does, collecting every failure."""
    statistic = Statistic()
    run = Run()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
            statistic.on_scenario_finished(event.recorder)
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished) and event.failures:
            statistic.record_run_check_failures(event.failures, label="run")
    run.cases = statistic.total_cases
    run.operations = set(statistic.tested_operations)
    for label, groups in statistic.failures.items():
        for group in groups.values():
            answer = group.response
            got = f"{answer.status_code} {answer.text[:300]}" if answer is not None else ""
            for failure in group.failures:
                run.failures.append(f"{label}: {failure}\n{got}\n{group.code_sample or ''}")
    return run


def agent_schema(gateway: GatewayServer, credential: str) -> BaseSchema:
    """The gateway's published schema, set up to call it as the agent holding ``credential``."""
    doc = httpx.get(f"{gateway.url}/api/v1/openapi.json", verify=gateway.ca_context).json()
    config = schemathesis.Config.from_dict(
        {
            "seed": 1,
            "cache": {"enabled": False},
            "base-url": gateway.url,
            "tls-verify": str(gateway.ca_cert),
            "workers": 1,
            "request-timeout": 30,
            "auth": {"openapi": {"AgentCredential": {"bearer": credential}}},
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": os.environ.get("VAULTWATCH_FUZZ_RANDOM") is None,
            },
            "checks": {
                "enabled": True,  # every check, as `--checks all`
                "positive_data_acceptance": {"expected-statuses": ACCEPTED},
                "negative_data_rejection": {"expected-statuses": REFUSED},
            },
            "operations": [
                {
                    "include-name": label,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, status]}
                    },
                }
                for label, status in BEYOND_THE_SCHEMA.items()
            ],
        }
    )
    schema = schemathesis.openapi.from_dict(doc, config=config)
    schema.hook("map_case")(_framing_left_to_the_client)
    return schema


def _framing_left_to_the_client(_context: HookContext, case: Case[Any]) -> Case[Any]:
    """Drop drawn framing headers: the HTTP client frames the request, as any client does."""
    for name in [name for name in case.headers or {} if name.lower() in FRAMING_HEADERS]:
        del case.headers[name]
    return case


def test_every_check_passes(gateway: GatewayServer) -> None:
    agent = gateway.enroll(hostname="fuzz")
    schema = agent_schema(gateway, agent.credential)
    load_all_checks()
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema fails here
        enabled = schema.config.checks_config_for(operation=operation, phase=None)
        assert all(enabled.get_by_name(name=name).enabled for name in CHECKS.get_all_names())
    run = run_all_checks(schema)
    print(f"schemathesis: {run.cases} cases over {len(run.operations)} operations")
    assert not run.errors, "\n\n".join(run.errors)
    assert not run.failures, f"{len(run.failures)} failures:\n\n" + "\n\n".join(run.failures)
    assert {UPLOAD_OPERATION, "POST /api/v1/heartbeat", "PUT /api/v1/jobs/{job_uid}"} <= (
        run.operations
    )
    assert run.cases >= 10 * len(run.operations)
