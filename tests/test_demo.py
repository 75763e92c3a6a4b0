"""The demo's choice of port: the one asked for, 8443, or a free one when 8443 is taken."""

from __future__ import annotations

import socket

import pytest

from vaultwatch import demo
from vaultwatch.server import port_in_use


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_taken_default_port_is_replaced_by_a_free_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with _listening() as taken:
        busy = taken.getsockname()[1]
        monkeypatch.setattr(demo, "DEFAULT_PORT", busy)
        said: list[str] = []
        chosen = demo.choose_port(None, said.append)
        assert chosen != busy and not port_in_use("127.0.0.1", chosen)
        assert said == [f"port {busy} is in use: the demo uses port {chosen}"]


def test_the_default_port_is_used_when_free(monkeypatch: pytest.MonkeyPatch) -> None:
    with _listening() as probe:
        free = probe.getsockname()[1]
    monkeypatch.setattr(demo, "DEFAULT_PORT", free)
    said: list[str] = []
    assert demo.choose_port(None, said.append) == free and said == []


def test_a_port_asked_for_is_never_swapped() -> None:
    with _listening() as taken:
        busy = taken.getsockname()[1]
        with pytest.raises(demo.DemoError, match=f"port {busy} on 127.0.0.1 is in use"):
            demo.choose_port(busy, lambda _: None)
