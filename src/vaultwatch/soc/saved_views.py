"""Saved console views: an operator's named filters of the alarm list, private to that operator.

A view is the list's query string under a name. The console owns the meaning
of its query, so saving takes the console's own parser as `canonical` (it
refuses unknown filter keys and bad values and returns the query in its
canonical form): what is stored is exactly what the list page would apply.
Saving under a name the operator already uses replaces that view's filter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vaultwatch.catalog.errors import CatalogError, ValidationError
from vaultwatch.catalog.soc_models import SavedView
from vaultwatch.soc.events import clean_text

MAX_NAME = 100
MAX_QUERY = 2000
#: Views one operator may keep (the menu stays a menu).
MAX_VIEWS = 100


class SavedViewNotFoundError(CatalogError):
    """The operator has no saved view with this id."""

    http_status = 404


def _name(name: str) -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise ValidationError(f"a view's name is text of at most {MAX_NAME} characters")
    text = clean_text(name, MAX_NAME)
    if not text:
        raise ValidationError("a saved view needs a name")
    return text


def save_view(
    session: Session,
    user_id: uuid.UUID,
    name: str,
    query: str,
    *,
    canonical: Callable[[str], str],
) -> SavedView:
    """Save `query` (checked and normalised by `canonical`) as the user's view `name`."""
    clean_name = _name(name)
    if not isinstance(query, str) or len(query) > MAX_QUERY:
        raise ValidationError(f"a view's filter is at most {MAX_QUERY} characters")
    clean_query = canonical(query)
    if len(clean_query) > MAX_QUERY:
        raise ValidationError(f"a view's filter is at most {MAX_QUERY} characters")
    view = session.scalar(
        select(SavedView).where(SavedView.user_id == user_id, SavedView.name == clean_name)
    )
    if view is None:
        count = session.scalar(
            select(func.count()).select_from(SavedView).where(SavedView.user_id == user_id)
        )
        if (count or 0) >= MAX_VIEWS:
            raise ValidationError(f"at most {MAX_VIEWS} saved views: delete one first")
        view = SavedView(user_id=user_id, name=clean_name, query=clean_query)
        session.add(view)
    else:
        view.query = clean_query
    session.flush()
    return view


def list_views(session: Session, user_id: uuid.UUID) -> list[SavedView]:
    """The user's saved views by name."""
    stmt = select(SavedView).where(SavedView.user_id == user_id).order_by(SavedView.name)
    return list(session.scalars(stmt))


def delete_view(session: Session, user_id: uuid.UUID, view_id: int) -> None:
    """Delete the user's view `view_id` (another user's view is not found, not forbidden)."""
    view = session.get(SavedView, view_id)
    if view is None or view.user_id != user_id:
        raise SavedViewNotFoundError(f"no saved view {view_id}")
    session.delete(view)
    session.flush()
