"""Topology edges: link, unlink, exclusive parents, cycle refusal, bounded walks, nodes' sites."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.soc_models import ServerNode, TopologyEdge
from vaultwatch.soc import topology


def _chain(catalog: Catalog) -> None:
    with catalog.session() as session:
        topology.link(session, "agent:a1", "gateway:gw1")
        topology.link(session, "gateway:gw1", "node:gw1")
        topology.link(session, "node:gw1", "site:dc1")


def test_ancestors_and_descendants_nearest_first(catalog: Catalog) -> None:
    _chain(catalog)
    with catalog.session() as session:
        assert topology.ancestors(session, "agent:a1") == ["gateway:gw1", "node:gw1", "site:dc1"]
        assert topology.ancestors(session, "agent:a1", max_depth=2) == ["gateway:gw1", "node:gw1"]
        assert topology.descendants(session, "site:dc1") == ["node:gw1", "gateway:gw1", "agent:a1"]
        assert topology.ancestors(session, "site:dc1") == []
        found = topology.ancestor_map(session, ["agent:a1", "node:gw1", "agent:unknown"])
    assert found["agent:a1"] == {"gateway:gw1": 1, "node:gw1": 2, "site:dc1": 3}
    assert found["node:gw1"] == {"site:dc1": 1}
    assert found["agent:unknown"] == {}


def test_link_is_idempotent_and_an_agent_moves_to_its_new_gateway(catalog: Catalog) -> None:
    with catalog.session() as session:
        assert topology.link(session, "agent:a1", "gateway:gw1") is True
        assert topology.link(session, "agent:a1", "gateway:gw1") is False
        assert topology.link(session, "agent:a1", "gateway:gw2") is True
        assert topology.parents_of(session, "agent:a1") == ["gateway:gw2"]
        topology.link(session, "agent:a1", "tenant:acme", exclusive=False)
        assert sorted(topology.parents_of(session, "agent:a1")) == ["gateway:gw2", "tenant:acme"]
        assert topology.unlink(session, "agent:a1", "gateway:gw2") == 1
        assert topology.parents_of(session, "agent:a1") == ["tenant:acme"]
        assert topology.unlink(session, "agent:a1") == 1


def test_bad_edges_are_refused(catalog: Catalog) -> None:
    _chain(catalog)
    with catalog.session() as session:
        with pytest.raises(ValidationError, match="cycle"):
            topology.link(session, "site:dc1", "agent:a1")
        with pytest.raises(ValidationError, match="itself"):
            topology.link(session, "site:dc1", "site:dc1")
        with pytest.raises(ValidationError, match="kind:name"):
            topology.link(session, "gw1", "site:dc1")


def test_walks_survive_a_cycle_in_stored_data(catalog: Catalog) -> None:
    with catalog.session() as session:
        session.execute(
            insert(TopologyEdge),
            [
                {"child": "gateway:a", "parent": "gateway:b"},
                {"child": "gateway:b", "parent": "gateway:c"},
                {"child": "gateway:c", "parent": "gateway:a"},
            ],
        )
    with catalog.session() as session:
        assert topology.ancestors(session, "gateway:a") == ["gateway:b", "gateway:c"]
        assert topology.ancestor_map(session, ["gateway:a"])["gateway:a"] == {
            "gateway:b": 1,
            "gateway:c": 2,
        }


def test_sync_nodes_links_gateways_and_nodes_to_their_site(catalog: Catalog) -> None:
    with catalog.session() as session:
        session.add(ServerNode(name="gw1", site="dc1", roles=["gateway"]))
        session.add(ServerNode(name="web1", site="dc2", roles=["web"]))
    with catalog.session() as session:
        assert topology.sync_nodes(session) == 3
        assert topology.sync_nodes(session) == 0
        topology.link_store(session, "vault-a", "dc1")
        assert topology.ancestors(session, "gateway:gw1") == ["node:gw1", "site:dc1"]
        assert topology.ancestors(session, "node:web1") == ["site:dc2"]
        assert topology.descendants(session, "site:dc1") == [
            "node:gw1",
            "store:vault-a",
            "gateway:gw1",
        ]
