"""The vault object API: reads, ranges, pagination, append-only writes, hashes, limits, isolation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import blake3
import httpx
import pytest
from sqlalchemy import select

from tests.gateway.harness import (
    TEST_MAX_UPLOAD,
    GatewayServer,
    content_name,
    upload,
    upload_snapshot,
)
from vaultwatch.catalog import AuditEntry
from vaultwatch.gateway.vault import decode_cursor, encode_cursor

PROBLEM = "application/problem+json"
OBJ = "/api/v1/vault/objects"


def _problem(r: httpx.Response, status: int, slug: str | None = None) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    doc: dict[str, object] = r.json()
    assert {"type", "title", "status", "detail"} <= set(doc)
    assert doc["status"] == status
    if slug is not None:
        assert doc["type"] == f"urn:vaultwatch:problem:{slug}"
    return doc


@pytest.fixture
def agent_client(gateway: GatewayServer) -> httpx.Client:
    return gateway.client(gateway.enroll().credential)


def test_put_get_head(agent_client: httpx.Client) -> None:
    body = b'{"version": 1}'
    r = upload(agent_client, "config", body)
    assert r.status_code == 201, r.text
    assert r.json() == {"name": "config", "size": len(body)}
    assert r.headers["location"] == f"{OBJ}/config"
    got = agent_client.get(f"{OBJ}/config")
    assert got.status_code == 200 and got.content == body
    assert got.headers["content-type"] == "application/octet-stream"
    head = agent_client.head(f"{OBJ}/config")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(body)
    assert head.content == b""
    missing = agent_client.head(f"{OBJ}/keys/nothing")
    assert missing.status_code == 404
    assert missing.headers["x-vaultwatch-problem"] == "object-not-found"
    _problem(agent_client.get(f"{OBJ}/keys/nothing"), 404, "object-not-found")


def test_content_addressed_objects(agent_client: httpx.Client) -> None:
    pack = os.urandom(200_000)
    name = content_name(pack)
    assert upload(agent_client, name, pack).status_code == 201
    index = b"index bytes"
    assert upload(agent_client, content_name(index, "index"), index).status_code == 201
    upload_snapshot(agent_client, b"snapshot bytes", packs=[name.rsplit("/", 1)[1]])
    assert agent_client.get(f"{OBJ}/{name}").content == pack
    # Named by other content, or not by an id at all: refused, nothing stored.
    other = os.urandom(100)
    for bad_name in (
        content_name(other),
        f"data/zz/{blake3.blake3(pack).hexdigest()}",
        f"data/{blake3.blake3(pack).hexdigest()[2:4]}/{blake3.blake3(pack).hexdigest()}",
        "data/ab/pack",
        "index/notanid",
        f"snapshots/{'A' * 64}",
    ):
        r = upload(agent_client, bad_name, pack)
        assert r.status_code == 422, (bad_name, r.text)
        assert agent_client.head(f"{OBJ}/{bad_name}").status_code in (400, 404)


def test_blake3_header_checked(gateway: GatewayServer, agent_client: httpx.Client) -> None:
    data = os.urandom(5000)
    name = "keys/k1"
    _problem(upload(agent_client, name, data, digest="0" * 64), 422, "content-mismatch")
    _problem(upload(agent_client, name, data, digest="xyz"), 422)
    no_header = agent_client.put(f"{OBJ}/{name}", content=data)
    _problem(no_header, 422)
    assert agent_client.head(f"{OBJ}/{name}").status_code == 404
    # Upper-case hex is the same digest.
    ok = upload(agent_client, name, data, digest=blake3.blake3(data).hexdigest().upper())
    assert ok.status_code == 201
    # No spool file is left behind by the refused uploads.
    assert [p for p in gateway.settings.upload_spool.rglob("*") if p.is_file()] == []


def test_ranges(agent_client: httpx.Client) -> None:
    data = bytes(range(256)) * 8
    name = content_name(data)
    assert upload(agent_client, name, data).status_code == 201
    url = f"{OBJ}/{name}"

    def get(range_: str) -> httpx.Response:
        return agent_client.get(url, headers={"Range": range_})

    r = get("bytes=10-19")
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    r = get("bytes=2000-5000")
    assert r.status_code == 206 and r.content == data[2000:]
    r = get("bytes=2040-")
    assert r.status_code == 206 and r.content == data[2040:]
    r = get("bytes=-8")
    assert r.status_code == 206 and r.content == data[-8:]
    r = get(f"bytes={len(data)}-{len(data) + 10}")
    assert r.status_code == 416 and r.json()["status"] == 416
    assert r.headers["content-range"] == f"bytes */{len(data)}"
    for ignored in ("bytes=5-1", "items=0-1", "bytes=0-1,5-6", "garbage"):
        r = get(ignored)
        assert r.status_code == 200 and r.content == data, ignored


def test_listing_pagination(agent_client: httpx.Client) -> None:
    names = sorted(f"keys/k{i:03d}" for i in range(25))
    for n in names:
        assert upload(agent_client, n, n.encode()).status_code == 201
    assert upload(agent_client, "config", b"c").status_code == 201
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"prefix": "keys/", "limit": 7}
        if cursor:
            params["cursor"] = cursor
        r = agent_client.get(OBJ, params=params)
        assert r.status_code == 200, r.text
        doc = r.json()
        pages += 1
        assert len(doc["objects"]) <= 7
        seen += [o["name"] for o in doc["objects"]]
        assert all(o["size"] == len(o["name"]) for o in doc["objects"])
        cursor = doc["next_cursor"]
        if not cursor:
            break
    assert seen == names
    assert pages == 4
    everything = agent_client.get(OBJ).json()
    assert [o["name"] for o in everything["objects"]] == ["config", *names]
    assert agent_client.get(OBJ, params={"prefix": "keys/k01"}).json()["objects"] == [
        {"name": f"keys/k01{i}", "size": 9} for i in range(10)
    ]


def test_listing_cursor_survives_cache_loss(
    gateway: GatewayServer, agent_client: httpx.Client
) -> None:
    for i in range(6):
        assert upload(agent_client, f"keys/c{i}", b"x").status_code == 201
    first = agent_client.get(OBJ, params={"prefix": "keys/", "limit": 4}).json()
    # A cursor naming a listing this node does not hold (expired, or made by another node).
    _listing, after = decode_cursor(first["next_cursor"])
    foreign = encode_cursor("0123456789abcdef", after)
    rest = agent_client.get(OBJ, params={"prefix": "keys/", "limit": 4, "cursor": foreign})
    assert [o["name"] for o in rest.json()["objects"]] == ["keys/c4", "keys/c5"]
    _problem(agent_client.get(OBJ, params={"cursor": "%%%not-a-cursor"}), 400, "invalid-cursor")


def test_bad_listing_parameters(agent_client: httpx.Client) -> None:
    _problem(agent_client.get(OBJ, params={"prefix": "../"}), 400, "invalid-object-name")
    _problem(agent_client.get(OBJ, params={"limit": 0}), 422)
    _problem(agent_client.get(OBJ, params={"limit": 100000}), 422)
    _problem(agent_client.get(OBJ, params={"limit": "many"}), 422)


def test_append_only(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    assert upload(client, "config", b"original").status_code == 201
    _problem(upload(client, "config", b"original"), 409, "object-exists")
    _problem(upload(client, "config", b"replaced"), 409, "object-exists")
    _problem(upload(client, "config", b"replaced", overwrite="true"), 403, "store-permission")
    _problem(client.delete(f"{OBJ}/config"), 403, "store-permission")
    _problem(client.delete(f"{OBJ}/snapshots/{'a' * 64}"), 403, "store-permission")
    assert client.get(f"{OBJ}/config").content == b"original"
    assert gateway.vault(agent.tenant_id).get("config") == b"original"
    with gateway.catalog.session() as session:
        refused = list(
            session.execute(
                select(AuditEntry.action, AuditEntry.target).where(
                    AuditEntry.tenant_id == agent.tenant_id,
                    AuditEntry.action.like("vault.%_refused"),
                )
            )
        )
    assert ("vault.overwrite_refused", "object:config") in refused
    assert ("vault.delete_refused", "object:config") in refused


def test_locks_may_change(agent_client: httpx.Client) -> None:
    name = f"locks/{uuid.uuid4().hex}"
    assert upload(agent_client, name, b"v1").status_code == 201
    _problem(upload(agent_client, name, b"v2"), 409, "object-exists")
    assert upload(agent_client, name, b"v2", overwrite="true").status_code == 201
    assert agent_client.get(f"{OBJ}/{name}").content == b"v2"
    assert agent_client.delete(f"{OBJ}/{name}").status_code == 204
    _problem(agent_client.delete(f"{OBJ}/{name}"), 404, "object-not-found")
    assert agent_client.head(f"{OBJ}/{name}").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "a/%2E%2E/config",
        "%2E%2E/%2E%2E/etc/passwd",
        "keys/with%20space",
        "keys/.tmp-123",
        "keys/back%5Cslash",
        "keys//double",
        "keys/nul%00byte",
    ],
)
def test_malformed_names(agent_client: httpx.Client, path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        r = agent_client.request(
            method, f"{OBJ}/{path}", content=b"x", headers={"X-Content-Blake3": "0" * 64}
        )
        assert 400 <= r.status_code < 500, (method, path, r.status_code)
        assert r.headers["content-type"] == PROBLEM


def test_unknown_top_level_refused(agent_client: httpx.Client) -> None:
    _problem(upload(agent_client, "junk/file", b"x"), 422, "object-naming")
    _problem(upload(agent_client, "keys", b"x"), 422, "object-naming")


def test_upload_size_limit(gateway: GatewayServer, agent_client: httpx.Client) -> None:
    big = os.urandom(TEST_MAX_UPLOAD + 1)
    name = content_name(big)
    _problem(upload(agent_client, name, big), 413, "upload-too-large")

    def chunks() -> Iterator[bytes]:
        for _ in range((TEST_MAX_UPLOAD // (1 << 20)) + 2):
            yield os.urandom(1 << 20)

    streamed = agent_client.put(
        f"{OBJ}/keys/streamed",
        content=chunks(),  # chunked transfer: no Content-Length, refused while streaming
        headers={"X-Content-Blake3": "0" * 64},
    )
    _problem(streamed, 413, "upload-too-large")
    assert agent_client.head(f"{OBJ}/keys/streamed").status_code == 404
    assert [p for p in gateway.settings.upload_spool.rglob("*") if p.is_file()] == []
    exact = os.urandom(TEST_MAX_UPLOAD)
    assert upload(agent_client, content_name(exact), exact).status_code == 201


def test_json_body_limit(agent_client: httpx.Client) -> None:
    huge = {"agent_version": "1", "hostname": "h", "platform": "p", "x": "a" * (2 << 20)}
    _problem(agent_client.post("/api/v1/heartbeat", json=huge), 413)


def test_tenant_isolation(gateway: GatewayServer) -> None:
    a = gateway.enroll()
    b = gateway.enroll()
    assert a.tenant_id != b.tenant_id
    ca, cb = gateway.client(a.credential), gateway.client(b.credential)
    secret = b"tenant A's key slot"
    assert upload(ca, "keys/shared-name", secret).status_code == 201
    pack = os.urandom(1000)
    assert upload(ca, content_name(pack), pack).status_code == 201
    # B cannot see, read or size A's objects, whatever it asks for.
    assert cb.get(OBJ).json()["objects"] == []
    assert cb.get(OBJ, params={"prefix": "keys/"}).json()["objects"] == []
    assert cb.get(f"{OBJ}/keys/shared-name").status_code == 404
    assert cb.head(f"{OBJ}/{content_name(pack)}").status_code == 404
    # A cursor from A's listing gives B nothing of A's.
    page = ca.get(OBJ, params={"limit": 1}).json()
    assert page["next_cursor"]
    assert cb.get(OBJ, params={"limit": 1, "cursor": page["next_cursor"]}).json()["objects"] == []
    # B writing the same name lands in B's vault; A's object is untouched.
    assert upload(cb, "keys/shared-name", b"B's own").status_code == 201
    assert ca.get(f"{OBJ}/keys/shared-name").content == secret
    assert cb.get(f"{OBJ}/keys/shared-name").content == b"B's own"
    # Deleting A's lock as B is impossible: B's vault has no such lock.
    assert upload(ca, "locks/a-lock", b"l").status_code == 201
    assert cb.delete(f"{OBJ}/locks/a-lock").status_code == 404
    assert ca.head(f"{OBJ}/locks/a-lock").status_code == 200
    assert gateway.vault(a.tenant_id).get("keys/shared-name") == secret
    assert gateway.vault(b.tenant_id).get("keys/shared-name") == b"B's own"
    assert gateway.vault_dir(a.tenant_id) != gateway.vault_dir(b.tenant_id)


def test_missing_vault_storage_is_not_recreated(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    client = gateway.client(agent.credential)
    assert upload(client, "config", b"c").status_code == 201
    vault = gateway.vault_dir(agent.tenant_id)
    moved = vault.with_name(vault.name + "-moved")
    vault.rename(moved)
    try:
        # A fresh server process would not have the store cached; the rules are the same.
        r = client.get(OBJ)
        _problem(r, 404, "repository-not-found")
        _problem(upload(client, "keys/k", b"k"), 404, "repository-not-found")
        assert client.head(f"{OBJ}/config").headers["x-vaultwatch-problem"] == (
            "repository-not-found"
        )
        assert not vault.exists()
    finally:
        moved.rename(vault)


def test_errors_are_problem_json(agent_client: httpx.Client) -> None:
    _problem(agent_client.get("/api/v1/nothing-here"), 404)
    listing = agent_client.post(OBJ)
    _problem(listing, 405)
    assert listing.headers["allow"] == "GET"
    for refused in (agent_client.patch(f"{OBJ}/config"), agent_client.options(f"{OBJ}/config")):
        _problem(refused, 405)
        assert refused.headers["allow"] == "DELETE, GET, HEAD, PUT"  # every route of the path
    _problem(
        agent_client.post(
            "/api/v1/heartbeat", content=b"[", headers={"Content-Type": "application/json"}
        ),
        422,
    )
    schema = agent_client.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/enroll", "/api/v1/vault/objects", "/api/v1/heartbeat"} <= set(paths)
    assert "/api/v1/jobs/{job_uid}" in paths
