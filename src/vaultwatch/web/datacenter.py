"""The data-center view: the media work orders a technician may act on.

Technicians handle physical media (disks shipped for a seed or a restore)
only once a SOC supervisor has authorized the work, so this page is where
authorized orders will be listed; none can be authorized yet, and the page
says so. It is the technician's home after login. Administrators may look
too; every other role gets the 403 page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from vaultwatch.catalog.models import Role
from vaultwatch.soc.apikeys import ForbiddenError, Principal
from vaultwatch.web.render import render
from vaultwatch.web.sessions import SignedIn

PATH = "/datacenter"
ROLES = frozenset({Role.DC_TECHNICIAN, Role.ADMINISTRATOR})

router = APIRouter(prefix=PATH, include_in_schema=False)


def technician(principal: SignedIn) -> Principal:
    """A signed-in data-center technician or administrator (403 page for anyone else)."""
    if principal.role not in ROLES:
        raise ForbiddenError("the data-center view is for data-center technicians")
    return principal


Technician = Annotated[Principal, Depends(technician)]


@router.get("")
def datacenter_page(request: Request, principal: Technician) -> Response:
    """The technician's authorized media work orders: none can be authorized yet."""
    return render(request, "datacenter.html")
