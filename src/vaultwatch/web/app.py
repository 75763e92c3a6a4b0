"""Wiring the web faces into the ``web`` role's app: pages, static files, error pages."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.responses import RedirectResponse, Response

from vaultwatch.catalog import Catalog
from vaultwatch.server_config import ServerSettings
from vaultwatch.web import (
    console,
    console_incidents,
    console_infra,
    console_ops,
    datacenter,
    portal,
    sessions,
)
from vaultwatch.web.errors import install_error_pages
from vaultwatch.web.render import ASSETS, STATIC_PREFIX

#: A year: a static URL holds its file's hash, so a changed file is a new URL.
IMMUTABLE = "public, max-age=31536000, immutable"


def install_web(app: FastAPI, catalog: Catalog, settings: ServerSettings) -> None:
    """Serve the console, the login form and our static files from `app` (after the API)."""
    app.state.catalog = catalog
    app.state.settings = settings
    install_error_pages(app)
    app.include_router(sessions.router)
    app.include_router(console.router)
    app.include_router(console_ops.router)
    app.include_router(console_infra.router)
    app.include_router(console_incidents.router)
    app.include_router(datacenter.router)
    app.include_router(portal.router)

    @app.get(STATIC_PREFIX + "/{digest}/{name}", include_in_schema=False)
    def static_file(digest: str, name: str) -> Response:
        """A static file; a stale hash still gets the current file, but not for long."""
        asset = ASSETS.get(name)
        if asset is None:
            raise HTTPException(404)
        cache = IMMUTABLE if digest == asset.digest else "no-cache"
        return Response(
            asset.body,
            media_type=asset.media_type,
            headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        """The console is the home page of the web role."""
        return RedirectResponse(sessions.HOME, status_code=303)
