"""Every e2e test leaves no process behind, whether it passed or not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import kill_leftovers


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    yield
    kill_leftovers()
