"""Saved console views: per user, named, checked by the console's parser, deletable."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, select

from vaultwatch.catalog import Catalog, Role
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import User
from vaultwatch.catalog.soc_models import SavedView
from vaultwatch.catalog.users import create_user
from vaultwatch.soc import saved_views
from vaultwatch.soc.saved_views import SavedViewNotFoundError
from vaultwatch.web.console import canonical_query


def _user(catalog: Catalog, email: str) -> uuid.UUID:
    with catalog.session() as session:
        user = create_user(
            session,
            email=email,
            display_name=email,
            role=Role.SOC_OPERATOR,
            password="correct horse battery",
            actor="system:test",
        )
        return user.id


def test_a_view_is_saved_in_canonical_form_and_listed_only_for_its_owner(catalog: Catalog) -> None:
    alice, bob = _user(catalog, "alice@soc.example"), _user(catalog, "bob@soc.example")
    with catalog.session() as session:
        saved = saved_views.save_view(
            session,
            alice,
            "  Disk\tproblems ",
            "?group=node.*&severity=MINOR&severity=critical&sort=-severity",
            canonical=canonical_query,
        )
        saved_views.save_view(session, alice, "All", "", canonical=canonical_query)
    assert saved.name == "Disk problems"
    assert saved.query == "severity=critical&severity=minor&group=node.%2A"
    with catalog.session() as session:
        assert [v.name for v in saved_views.list_views(session, alice)] == ["All", "Disk problems"]
        assert saved_views.list_views(session, bob) == []


def test_saving_under_a_used_name_replaces_that_view(catalog: Catalog) -> None:
    alice = _user(catalog, "alice@soc.example")
    with catalog.session() as session:
        first = saved_views.save_view(session, alice, "mine", "node=gw1", canonical=canonical_query)
        again = saved_views.save_view(session, alice, "mine", "node=gw2", canonical=canonical_query)
        assert again.id == first.id
    with catalog.session() as session:
        assert [v.query for v in saved_views.list_views(session, alice)] == ["node=gw2"]


@pytest.mark.parametrize(
    ("name", "query", "message"),
    [
        ("", "node=gw1", "needs a name"),
        ("\u202e\t ", "node=gw1", "needs a name"),
        ("x" * 101, "node=gw1", "at most 100"),
        ("bad key", "node=gw1&cursor=abc", "'cursor' is not a filter"),
        ("bad value", "severity=loud", "severity 'loud' is not known"),
        ("too long", "q=" + "x" * 201, "at most 200"),
        ("twice", "node=a&node=b", "given twice"),
        ("bad sort", "sort=summary", "cannot sort by"),
    ],
)
def test_bad_names_and_queries_are_refused_and_nothing_is_stored(
    catalog: Catalog, name: str, query: str, message: str
) -> None:
    alice = _user(catalog, "alice@soc.example")
    with pytest.raises(ValidationError, match=message), catalog.session() as session:
        saved_views.save_view(session, alice, name, query, canonical=canonical_query)
    with catalog.session() as session:
        assert session.scalars(select(SavedView)).all() == []


def test_a_view_is_deleted_by_its_owner_only(catalog: Catalog) -> None:
    alice, bob = _user(catalog, "alice@soc.example"), _user(catalog, "bob@soc.example")
    with catalog.session() as session:
        view_id = saved_views.save_view(
            session, alice, "mine", "node=gw1", canonical=canonical_query
        ).id
    with pytest.raises(SavedViewNotFoundError), catalog.session() as session:
        saved_views.delete_view(session, bob, view_id)
    with catalog.session() as session:
        assert len(saved_views.list_views(session, alice)) == 1
        saved_views.delete_view(session, alice, view_id)
    with catalog.session() as session:
        assert saved_views.list_views(session, alice) == []
    with pytest.raises(SavedViewNotFoundError), catalog.session() as session:
        saved_views.delete_view(session, alice, view_id)


def test_a_users_views_go_with_the_user(catalog: Catalog) -> None:
    alice = _user(catalog, "alice@soc.example")
    with catalog.session() as session:
        saved_views.save_view(session, alice, "mine", "node=gw1", canonical=canonical_query)
    with catalog.session() as session:
        session.execute(delete(User).where(User.id == alice))
    with catalog.session() as session:
        assert session.scalars(select(SavedView)).all() == []
