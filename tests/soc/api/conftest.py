"""SOC API fixtures: the web role's app on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.soc.api.harness import SocApi, soc_api


@pytest.fixture
def api(catalog_url: URL, tmp_path: Path) -> Iterator[SocApi]:
    """The SOC API with an administrator, an operator, a technician and two customers."""
    url = None if catalog_url.get_backend_name() == "sqlite" else catalog_url
    with soc_api(tmp_path, url) as running:
        yield running
