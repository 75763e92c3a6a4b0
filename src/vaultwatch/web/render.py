"""Rendering pages: the Jinja2 environment, versioned static assets and the headers every page gets.

Autoescaping is on for every template, so text from events (summaries,
node names) is always shown as text, never run as markup. Static files are
read once and served under a URL holding their content hash, so browsers
may cache them for a year and still get a new file the moment it changes.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from vaultwatch import __version__
from vaultwatch.catalog.models import Role

TEMPLATE_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
STATIC_PREFIX = "/static"

#: No inline script or style, nothing from elsewhere: what a page runs is ours.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Asset:
    """One static file, held in memory with its content hash."""

    name: str
    body: bytes
    digest: str
    media_type: str

    @property
    def url(self) -> str:
        """Where pages link it: the hash in the path makes every version its own URL."""
        return f"{STATIC_PREFIX}/{self.digest}/{self.name}"


def load_assets(directory: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every file of the static directory, by name."""
    assets: dict[str, Asset] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            body = path.read_bytes()
            media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if media.startswith("text/") or media.endswith("javascript"):
                media += "; charset=utf-8"
            digest = hashlib.blake2b(body, digest_size=8).hexdigest()
            assets[path.name] = Asset(path.name, body, digest, media)
    return assets


ASSETS = load_assets()


def static_url(name: str) -> str:
    """The versioned URL of a static file (a missing file is a template bug: KeyError)."""
    return ASSETS[name].url


#: How each role is named on the pages.
ROLE_LABELS = {
    Role.CUSTOMER_ADMIN: "Customer admin",
    Role.CUSTOMER_VIEWER: "Customer viewer",
    Role.SOC_OPERATOR: "SOC operator",
    Role.SOC_SUPERVISOR: "SOC supervisor",
    Role.DC_TECHNICIAN: "Data-center technician",
    Role.ADMINISTRATOR: "Administrator",
}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.globals.update(static_url=static_url, version=__version__, role_labels=ROLE_LABELS)
ENV.filters.update(when=_when, iso=_iso)


def render_text(template: str, context: dict[str, Any]) -> str:
    """A template rendered to text (used for live rows sent over the event stream too)."""
    return ENV.get_template(template).render(context)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A page: the template with the signed-in principal and CSRF token of the request."""
    values: dict[str, Any] = {
        "request": request,
        "principal": getattr(request.state, "principal", None),
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "wall": request.query_params.get("wall") == "1",
    }
    values.update(context or {})
    body = render_text(template, values)
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
