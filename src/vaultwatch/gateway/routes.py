"""The agent-facing HTTP API under ``/api/v1``: parse, authorize, call the domain, render.

Every route except enrollment and the CA certificate needs an agent
credential (``Authorization: Bearer ...``); the tenant always comes from that
credential, so no request can name another tenant's vault.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vaultwatch import __version__
from vaultwatch.catalog.enrollment import is_agent_credential_shaped
from vaultwatch.catalog.errors import InvalidCredentialError
from vaultwatch.gateway import schemas
from vaultwatch.gateway.problems import problem_response
from vaultwatch.gateway.service import GatewayService, HeartbeatReport
from vaultwatch.gateway.vault import (
    CURSOR_REGEX,
    DEFAULT_PAGE,
    DIGEST_REGEX,
    MAX_PAGE,
    UPLOAD_NAME_REGEX,
    AgentIdentity,
    parse_digest,
)
from vaultwatch.protocol import API_PREFIX, PROBLEM_JSON
from vaultwatch.store.base import NAME_REGEX, PREFIX_REGEX, check_name

OBJECTS = "/vault/objects"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AgentCredential",
    description="The credential an agent received when it enrolled.",
)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

_PROBLEMS: dict[int | str, dict[str, object]] = {
    status: {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, description in {
        400: "Malformed request (bad object name, cursor ...)",
        401: "Missing, unknown or revoked credential, or a retired agent",
        403: "Not allowed for agents (delete, overwrite), or the tenant is suspended or deleted",
        404: "No such object or vault",
        409: "The object exists (agents cannot replace objects)",
        413: "Body too large",
        422: "Invalid body, or content that does not match its hash or name",
    }.items()
}


async def service_of(request: Request) -> GatewayService:
    """The app's GatewayService (async: FastAPI runs a plain function in a worker thread)."""
    service: GatewayService = request.app.state.gateway
    return service


async def bearer_credential(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The bearer credential, not yet checked (401 problem when there is none)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidCredentialError("an agent credential is required: Authorization: Bearer …")
    if not is_agent_credential_shaped(credentials.credentials):
        raise InvalidCredentialError("invalid agent credential")
    return credentials.credentials


Credential = Annotated[str, Depends(bearer_credential)]
Service = Annotated[GatewayService, Depends(service_of)]


async def current_agent(credential: Credential, service: Service) -> AgentIdentity:
    """The calling agent, from its bearer credential (401 problem otherwise).

    Checked before the body is validated, so a caller without a valid
    credential learns nothing but 401.
    """
    return await anyio.to_thread.run_sync(service.authenticate, credential)


Agent = Annotated[AgentIdentity, Depends(current_agent)]
# The name rules are published in the schema only: the vault's own checks answer a bad name
# (400 invalid-object-name, 422 object-naming), as they always have, not FastAPI's validation.
ObjectName = Annotated[
    str,
    Path(
        description="Object name, e.g. data/ab/ab12… or locks/…",
        json_schema_extra={"pattern": f"^{NAME_REGEX}$"},
    ),
]
UploadName = Annotated[
    str,
    Path(
        description="A repository object's name: config, keys/…, locks/…, data/<first 2 hex of"
        " id>/<id>, index/<id>, snapshots/<id> or manifests/<snapshot id> (ids: 64 hex digits)",
        json_schema_extra={"pattern": f"^(?:{UPLOAD_NAME_REGEX})$"},
    ),
]

router = APIRouter(prefix=API_PREFIX, responses=_PROBLEMS)


@router.get("/health", response_model=schemas.Health, tags=["health"], summary="Liveness")
def health(request: Request) -> schemas.Health:
    """Unauthenticated, for agents probing which gateways they can reach."""
    return schemas.Health(status="ok", roles=list(request.app.state.roles), version=__version__)


# -- enrollment ------------------------------------------------------------------------------


@router.post(
    "/enroll",
    status_code=201,
    response_model=schemas.EnrollResponse,
    tags=["enrollment"],
    summary="Enroll a server with a single-use token",
)
def enroll(body: schemas.EnrollRequest, service: Service) -> schemas.EnrollResponse:
    """Redeem the token for an agent credential (shown once) in the token's tenant."""
    result = service.enroll(body.token, body.hostname, body.agent_version, body.platform)
    return schemas.EnrollResponse(
        agent_id=result.agent_id,
        credential=result.credential,
        tenant=schemas.TenantOut(id=result.tenant_id, name=result.tenant_name),
        server_time=result.server_time,
    )


@router.get(
    "/ca",
    tags=["enrollment"],
    summary="The CA certificate agents should trust",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
def ca_certificate(request: Request) -> Response:
    """The server's CA (PEM), for installers that pin its fingerprint before trusting it."""
    ca = request.app.state.settings.ca_cert
    if ca is None or not ca.is_file():
        return JSONResponse(
            {
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "detail": "this server uses certificates from an outside CA",
            },
            status_code=404,
            media_type=PROBLEM_JSON,
        )
    return Response(ca.read_bytes(), media_type="application/x-pem-file")


# -- vault objects ----------------------------------------------------------------------------


@router.get(
    OBJECTS, response_model=schemas.ObjectList, tags=["vault"], summary="List vault objects"
)
def list_objects(
    agent: Agent,
    service: Service,
    prefix: Annotated[
        str, Query(max_length=1024, json_schema_extra={"pattern": f"^{PREFIX_REGEX}$"})
    ] = "",
    cursor: Annotated[
        str | None, Query(max_length=4096, json_schema_extra={"pattern": f"^{CURSOR_REGEX}$"})
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> schemas.ObjectList:
    """Objects whose names start with ``prefix``, sorted by name, ``limit`` at a time."""
    page = service.vaults.list_page(agent, prefix, cursor, limit)
    return schemas.ObjectList(
        objects=[schemas.ObjectOut(name=o.name, size=o.size) for o in page.objects],
        next_cursor=page.next_cursor,
    )


@router.head(
    OBJECTS + "/{name:path}",
    tags=["vault"],
    summary="Size of a vault object",
    response_class=Response,
)
def head_object(name: ObjectName, agent: Agent, service: Service) -> Response:
    """Content-Length is the object's size."""
    size = service.vaults.size(agent, name)
    return Response(
        status_code=200,
        headers={"Content-Length": str(size), "Accept-Ranges": "bytes"},
        media_type="application/octet-stream",
    )


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """(offset, length) of a single ``bytes=`` range; None when absent or unusable (RFC 9110 ignores those)."""
    if not value:
        return None
    m = _RANGE.match(value.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        return (max(0, size - n), min(n, size)) if n > 0 else None
    start = int(first)
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1) - start + 1


@router.get(
    OBJECTS + "/{name:path}",
    tags=["vault"],
    summary="Read a vault object (optionally a byte range)",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        206: {"description": "The requested range", "content": {"application/octet-stream": {}}},
        416: {
            "description": "The range starts past the end of the object",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
    },
)
def get_object(
    name: ObjectName,
    agent: Agent,
    service: Service,
    range_: Annotated[str | None, Header(alias="Range", max_length=200)] = None,
) -> Response:
    """The object's bytes; with ``Range: bytes=a-b`` only those (206)."""
    vaults = service.vaults
    check_name(name)
    if range_ is None:
        data = vaults.read(agent, name)
        return Response(
            data, media_type="application/octet-stream", headers={"Accept-Ranges": "bytes"}
        )
    size = vaults.size(agent, name)
    span = _parse_range(range_, size)
    if span is None:
        data = vaults.read(agent, name)
        return Response(
            data, media_type="application/octet-stream", headers={"Accept-Ranges": "bytes"}
        )
    offset, length = span
    if offset >= size:
        return problem_response(
            416,
            f"the range starts at byte {offset}, past the end of the object ({size} bytes)",
            headers={"Content-Range": f"bytes */{size}"},
        )
    data = vaults.read_range(agent, name, offset, length)
    return Response(
        data,
        status_code=206,
        media_type="application/octet-stream",
        headers={
            "Content-Range": f"bytes {offset}-{offset + len(data) - 1}/{size}",
            "Accept-Ranges": "bytes",
        },
    )


@router.put(
    OBJECTS + "/{name:path}",
    status_code=201,
    response_model=schemas.PutResponse,
    tags=["vault"],
    summary="Store a new vault object",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_object(
    name: UploadName,
    request: Request,
    agent: Agent,
    service: Service,
    x_content_blake3: Annotated[
        str,
        Header(
            alias="X-Content-Blake3",
            description="BLAKE3 of the body, 64 hex digits",
            max_length=200,
            json_schema_extra={"pattern": f"^{DIGEST_REGEX}$"},
        ),
    ],
    overwrite: Annotated[
        bool, Query(description="Replace an existing object (locks/ only)")
    ] = False,
) -> JSONResponse:
    """Store the raw body under ``name``; existing objects are never replaced (except locks)."""
    vaults = service.vaults
    content_id = await anyio.to_thread.run_sync(vaults.check_put, agent, name, overwrite)
    digest = parse_digest(x_content_blake3)
    length_header = request.headers.get("content-length")
    declared = int(length_header) if length_header and length_header.isdigit() else None

    spooled = await vaults.receive(request.stream(), declared, digest, content_id)
    try:
        size = await anyio.to_thread.run_sync(vaults.store_upload, agent, name, spooled, overwrite)
    finally:
        spooled.unlink(missing_ok=True)
    return JSONResponse(
        schemas.PutResponse(name=name, size=size).model_dump(),
        status_code=201,
        headers={"Location": f"{API_PREFIX}{OBJECTS}/{name}"},
    )


@router.delete(
    OBJECTS + "/{name:path}",
    status_code=204,
    tags=["vault"],
    summary="Delete a lock",
    response_class=Response,
)
def delete_object(name: ObjectName, agent: Agent, service: Service) -> Response:
    """Agents may delete only repository locks (``locks/…``)."""
    service.vaults.check_delete(agent, name)
    service.vaults.delete(agent, name)
    return Response(status_code=204)


# -- the agent's own credential -----------------------------------------------------------------


@router.post(
    "/agents/self/credential",
    status_code=201,
    response_model=schemas.CredentialOut,
    tags=["agents"],
    summary="Rotate the calling agent's credential",
)
def rotate_credential(agent: Agent, service: Service) -> schemas.CredentialOut:
    """A new credential (shown once). The current one keeps working until the new one is used.

    The first request made with the new credential proves the agent stored
    it, and revokes every other credential of the agent.
    """
    rotated = service.rotate_credential(agent)
    return schemas.CredentialOut(
        agent_id=rotated.agent_id, credential=rotated.credential, created_at=rotated.created_at
    )


# -- heartbeats and jobs ------------------------------------------------------------------------


@router.post(
    "/heartbeat",
    response_model=schemas.HeartbeatResponse,
    tags=["agents"],
    summary="Report that the agent is alive, with its facts and backup sets",
)
async def heartbeat(
    body: schemas.HeartbeatRequest, credential: Credential, service: Service
) -> schemas.HeartbeatResponse:
    """Updates last_seen, host facts and the agent's backup sets.

    Async, with the credential check and the catalog work in one
    worker-thread call (a plain function would cost three more: FastAPI runs
    its dependencies and the response's validation in threads too), since
    every hop waits for the event loop, which uploads keep busy. So a
    well-formed but wrong credential with an invalid body gets 422 where
    other routes answer 401; no body is acted on without a valid credential.
    """
    report = HeartbeatReport(
        agent_version=body.agent_version,
        hostname=body.hostname,
        platform=body.platform,
        free_disk_bytes=body.free_disk_bytes,
        gateways=dict(body.gateways),
        backup_sets=[bs.to_domain() for bs in body.backup_sets],
    )
    ack = await anyio.to_thread.run_sync(service.heartbeat, credential, report)
    return schemas.HeartbeatResponse(server_time=ack.server_time, backup_sets=ack.backup_sets)


@router.put(
    "/jobs/{job_uid}",
    response_model=schemas.JobResponse,
    tags=["agents"],
    summary="Create or update a job report (idempotent)",
    responses={201: {"description": "The job was created", "model": schemas.JobResponse}},
)
async def put_job(
    job_uid: uuid.UUID,
    body: schemas.JobReportIn,
    agent: Agent,
    service: Service,
) -> JSONResponse:
    """The job's state and progress; a succeeded or partial backup's snapshot is recorded too.

    One worker-thread call, as for heartbeats: agents report progress every few seconds.
    """
    ack = await anyio.to_thread.run_sync(service.report_job, agent, job_uid, body.to_domain())
    out = schemas.JobResponse(
        job_uid=ack.job_uid,
        state=body.state,
        catalog_state=ack.state,
        created=ack.created,
        snapshot_recorded=ack.snapshot_recorded,
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if ack.created else 200)
