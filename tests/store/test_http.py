"""GatewayStore: the Store protocol over a real gateway (TLS on loopback), retries, failover, errors.

The shared conformance tests that fit an agent's append-only, content-addressed
view of its vault run here unchanged against GatewayStore; the others have
gateway versions below (content-addressed names, permission errors instead
of overwrites and deletes).
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from tests.e2e.tcpproxy import TcpProxy
from tests.gateway.harness import GatewayServer, content_name, running_gateway
from tests.store.test_conformance import (  # the protocol tests that hold for agents too
    test_delete,
    test_empty_object,
    test_holds_anything,
    test_implements_protocol,
    test_invalid_names_refused,
    test_leaves_no_cycles_means_refcounting_frees_everything,
    test_list_refuses_bad_prefixes,
    test_overwrite_refused_by_default,
    test_put_file_is_create_only_and_leaves_the_source,
    test_put_uses_a_view_only_until_it_returns,
    test_read_into,
    test_reads_in_place_means_no_bytes_in_between,
    test_round_trip,
)
from vaultwatch.gateway.tls import create_ca_and_server_cert
from vaultwatch.job_states import JobState
from vaultwatch.store.base import Store
from vaultwatch.store.errors import (
    InvalidStoreURLError,
    ObjectExistsError,
    ObjectNotFoundError,
    RepositoryNotFoundError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
)
from vaultwatch.store.http import (
    GatewayStore,
    RetryPolicy,
    open_gateway_store,
)

__all__ = [
    "test_delete",
    "test_empty_object",
    "test_holds_anything",
    "test_implements_protocol",
    "test_invalid_names_refused",
    "test_leaves_no_cycles_means_refcounting_frees_everything",
    "test_list_refuses_bad_prefixes",
    "test_overwrite_refused_by_default",
    "test_put_file_is_create_only_and_leaves_the_source",
    "test_put_uses_a_view_only_until_it_returns",
    "test_read_into",
    "test_reads_in_place_means_no_bytes_in_between",
    "test_round_trip",
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw") / "data", None, "sqlite") as gw:
        yield gw


@pytest.fixture
def credential(gateway: GatewayServer) -> str:
    """A new agent in a new tenant: an empty vault."""
    return gateway.enroll().credential


@pytest.fixture
def store(gateway: GatewayServer, credential: str) -> Iterator[GatewayStore]:
    s = gateway.store(credential)
    yield s
    s.close()


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"https://127.0.0.1:{port}"


class Sleeps:
    """A stand-in for time.sleep that records delays and can act on the n-th one."""

    def __init__(self, on: dict[int, object] | None = None) -> None:
        self.delays: list[float] = []
        self.on = on or {}

    def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        action = self.on.get(len(self.delays))
        if callable(action):
            action()


# -- the protocol, gateway flavour ------------------------------------------------------------


def test_capabilities_of_a_gateway(store: GatewayStore) -> None:
    # what restores and backups tune themselves by (see the Store protocol)
    assert not store.reads_cheaply
    assert not store.reads_in_place
    assert not store.leaves_no_cycles


def test_get_range(store: Store) -> None:
    data = bytes(range(256)) * 4
    name = content_name(data)
    store.put(name, data)
    assert store.get_range(name, 0, 16) == data[:16]
    assert store.get_range(name, 100, 300) == data[100:400]
    assert store.get_range(name, 1000, 24) == data[1000:]
    assert store.get_range(name, 1020, 100) == data[1020:]
    assert store.get_range(name, 1024, 10) == b""
    assert store.get_range(name, 5000, 10) == b""
    assert store.get_range(name, 10, 0) == b""
    with pytest.raises(ValueError):
        store.get_range(name, -1, 10)
    with pytest.raises(ObjectNotFoundError):
        store.get_range("keys/absent", 0, 0)


def test_missing_objects(store: Store) -> None:
    assert not store.exists("keys/absent")
    for call in (
        lambda: store.get("keys/absent"),
        lambda: store.get_range("keys/absent", 0, 4),
        lambda: store.size("keys/absent"),
        lambda: store.delete("locks/absent"),
    ):
        with pytest.raises(ObjectNotFoundError, match="absent"):
            call()


def test_list_with_prefixes(gateway: GatewayServer, credential: str) -> None:
    store = gateway.store(credential, page_size=3)  # several pages per listing
    packs = [os.urandom(50 + i) for i in range(7)]
    expected = {"config": 1, "keys/k1": 2, "keys/k2": 3}
    store.put("config", b"c")
    store.put("keys/k1", b"kk")
    store.put("keys/k2", b"kkk")
    for p in packs:
        store.put(content_name(p), p)
        expected[content_name(p)] = len(p)
    listed = [(o.name, o.size) for o in store.list()]
    assert [n for n, _ in listed] == sorted(expected)  # the gateway lists in name order
    assert dict(listed) == expected
    assert {o.name for o in store.list("keys/")} == {"keys/k1", "keys/k2"}
    assert {o.name for o in store.list("data/")} == {content_name(p) for p in packs}
    assert list(store.list("index/")) == []
    store.close()


@pytest.mark.slow
def test_large_object(store: Store) -> None:
    data = os.urandom(8 * 1024 * 1024)
    name = content_name(data)
    store.put(name, data)
    assert store.size(name) == len(data)
    assert store.get(name) == data
    middle = 3 * 1024 * 1024 + 17
    assert store.get_range(name, middle, 1 << 20) == data[middle : middle + (1 << 20)]


def test_concurrent_create_only_puts(store: Store) -> None:
    barrier = threading.Barrier(8)
    outcome: dict[int, object] = {}

    def write(i: int) -> None:
        barrier.wait()
        try:
            store.put("keys/race", bytes([i]) * 100_000)
            outcome[i] = "ok"
        except Exception as exc:
            outcome[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [i for i, r in outcome.items() if r == "ok"]
    assert len(winners) == 1
    assert all(isinstance(r, ObjectExistsError) for r in outcome.values() if r != "ok")
    assert store.get("keys/race") == bytes([winners[0]]) * 100_000


def test_append_only_errors(store: Store) -> None:
    store.put("keys/k1", b"one")
    with pytest.raises(StorePermissionError, match="append-only"):
        store.put("keys/k1", b"two", overwrite=True)
    with pytest.raises(StorePermissionError):
        store.delete("keys/k1")
    store.put("locks/l1", b"one")
    store.put("locks/l1", b"two", overwrite=True)
    assert store.get("locks/l1") == b"two"
    data = os.urandom(100)
    wrong = f"data/{'ab'}/{'ab' + blake3.blake3(data).hexdigest()[2:]}"
    with pytest.raises(StoreError, match="not the object's name") as refused:
        store.put(wrong, data)
    assert not isinstance(refused.value, StoreUnavailableError)


def test_missing_repository(gateway: GatewayServer) -> None:
    agent = gateway.enroll()
    store = gateway.store(agent.credential)
    store.put("config", b"c")
    vault = gateway.vault_dir(agent.tenant_id)
    moved = vault.with_name(vault.name + "-gone")
    vault.rename(moved)
    try:
        assert not store.exists("config")
        for call in (
            lambda: store.get("config"),
            lambda: store.get_range("config", 0, 1),
            lambda: store.size("config"),
            lambda: store.put("keys/x", b"x"),
            lambda: list(store.list()),
        ):
            with pytest.raises(RepositoryNotFoundError):
                call()
    finally:
        moved.rename(vault)
        store.close()


def test_bad_credential(gateway: GatewayServer) -> None:
    sleeps = Sleeps()
    store = gateway.store("vwa_" + "x" * 43, retry=RetryPolicy(sleep=sleeps))
    with pytest.raises(StorePermissionError, match="invalid agent credential"):
        store.get("config")
    assert sleeps.delays == []
    with pytest.raises(StorePermissionError):
        GatewayStore(gateway.url, "", gateway.ca_cert)


# -- retries, failover and network state ------------------------------------------------------


def test_failover_to_the_next_gateway(gateway: GatewayServer, credential: str) -> None:
    states: list[str] = []
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=5, sleep=sleeps, on_state=states.append)
    store = GatewayStore([_dead_url(), gateway.url], credential, gateway.ca_cert, retry=policy)
    store.put("config", b"c")
    assert states == [JobState.WAITING_FOR_NETWORK, JobState.RUNNING]
    assert sleeps.delays == []  # another gateway answered: no need to wait
    assert store.location == f"vw+https://127.0.0.1:{gateway.port}"
    assert store.get("config") == b"c"
    # It stays on the gateway that works.
    assert states == [JobState.WAITING_FOR_NETWORK, JobState.RUNNING]
    store.close()


def test_outage_backs_off_with_jitter_and_recovers(gateway: GatewayServer, credential: str) -> None:
    proxy = TcpProxy(("127.0.0.1", gateway.port))
    proxy.refuse()
    states: list[str] = []
    sleeps = Sleeps(on={4: proxy.accept})
    policy = RetryPolicy(
        max_attempts=None,
        base_delay=0.5,
        max_delay=1.5,
        sleep=sleeps,
        on_state=states.append,
        rng=random.Random(7),
    )
    store = GatewayStore(
        f"https://127.0.0.1:{proxy.port}", credential, gateway.ca_cert, retry=policy
    )
    try:
        store.put("config", b"after the outage")
    finally:
        proxy.close()
    assert len(sleeps.delays) == 4
    for round_, delay in enumerate(sleeps.delays):
        assert 0 <= delay <= min(1.5, 0.5 * 2**round_)
    assert states == [JobState.WAITING_FOR_NETWORK, JobState.RUNNING]
    assert gateway.store(credential).get("config") == b"after the outage"


def test_gives_up_after_max_attempts(credential: str, gateway: GatewayServer) -> None:
    states: list[str] = []
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=4, sleep=sleeps, on_state=states.append)
    store = GatewayStore([_dead_url(), _dead_url()], credential, gateway.ca_cert, retry=policy)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="after 4 attempts"):
        store.get("config")
    assert time.monotonic() - started < 10
    assert len(sleeps.delays) == 1  # two gateways per round: one pause between the rounds
    assert states == [JobState.WAITING_FOR_NETWORK]


def test_upload_cut_midway_is_retried(gateway: GatewayServer, credential: str) -> None:
    proxy = TcpProxy(("127.0.0.1", gateway.port), rate=2 * 1024 * 1024)
    states: list[str] = []
    policy = RetryPolicy(max_attempts=None, base_delay=0.05, max_delay=0.2, on_state=states.append)
    store = GatewayStore(
        f"https://127.0.0.1:{proxy.port}", credential, gateway.ca_cert, retry=policy
    )
    data = os.urandom(3 * 1024 * 1024)
    name = content_name(data)

    def cut_soon() -> None:
        deadline = time.monotonic() + 10
        while proxy.bytes_up < 512 * 1024 and time.monotonic() < deadline:
            time.sleep(0.01)
        proxy.cut()

    cutter = threading.Thread(target=cut_soon)
    cutter.start()
    try:
        store.put(name, data)
    finally:
        cutter.join()
        proxy.close()
    assert proxy.cuts >= 1
    assert states[0] == JobState.WAITING_FOR_NETWORK and states[-1] == JobState.RUNNING
    assert gateway.store(credential).get(name) == data


def test_retried_put_that_already_landed(gateway: GatewayServer, credential: str) -> None:
    """A create-only PUT whose first answer was lost meets its own object: that is success."""
    direct = gateway.store(credential)
    direct.put("keys/slot", b"same bytes")  # as if the lost attempt had landed
    direct.put("keys/other", b"old bytes")
    for name, data, landed in (
        ("keys/slot", b"same bytes", True),
        ("keys/other", b"new bytes", False),
    ):
        proxy = TcpProxy(("127.0.0.1", gateway.port))
        proxy.refuse()
        policy = RetryPolicy(max_attempts=5, sleep=Sleeps(on={1: proxy.accept}))
        store = GatewayStore(
            f"https://127.0.0.1:{proxy.port}", credential, gateway.ca_cert, retry=policy
        )
        try:
            if landed:
                store.put(name, data)
            else:
                with pytest.raises(ObjectExistsError):
                    store.put(name, data)
        finally:
            proxy.close()
    assert direct.get("keys/other") == b"old bytes"


def test_tls_failures_are_not_retried(
    gateway: GatewayServer, credential: str, tmp_path: Path
) -> None:
    other_ca = create_ca_and_server_cert(tmp_path / "other-ca").ca_cert
    assert other_ca is not None
    for ca in (other_ca, None):
        sleeps = Sleeps()
        store = GatewayStore(gateway.url, credential, ca, retry=RetryPolicy(sleep=sleeps))
        with pytest.raises(StoreError, match="TLS") as failed:
            store.exists("config")
        assert not isinstance(failed.value, StoreUnavailableError)
        assert sleeps.delays == []
        store.close()


def test_retry_delays_are_bounded() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=10.0, rng=random.Random(1))
    for round_ in range(40):
        for _ in range(20):
            assert 0 <= policy.delay(round_) <= min(10.0, 0.5 * 2**round_)
    assert max(policy.delay(30) for _ in range(200)) > 5  # full jitter spreads over the range


# -- URLs ---------------------------------------------------------------------------------------


def test_gateway_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VAULTWATCH_AGENT_CREDENTIAL", "vwa_secret-credential-value")
    monkeypatch.delenv("VAULTWATCH_CA_CERT", raising=False)
    store = open_gateway_store("vw+https://gw1.example:8443,gw2.example:9443")
    assert store.gateways == ["https://gw1.example:8443", "https://gw2.example:9443"]
    assert store.location == "vw+https://gw1.example:8443"
    assert "secret" not in repr(store)
    store.close()
    for bad in (
        "vw+https:gw1",
        "vw+https://",
        "vw+https://user:pw@gw1:8443",
        "vw+https://gw1:8443/path",
        "vw+https://gw1:8443?x=1",
    ):
        with pytest.raises(InvalidStoreURLError):
            open_gateway_store(bad)
    monkeypatch.delenv("VAULTWATCH_AGENT_CREDENTIAL")
    with pytest.raises(StorePermissionError, match="VAULTWATCH_AGENT_CREDENTIAL"):
        open_gateway_store("vw+https://gw1:8443")
