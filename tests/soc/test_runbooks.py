"""The runbook pages every alarm links to exist, and each has the sections an operator relies on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vaultwatch.soc.runbooks import GENERAL, RUNBOOK_BASE, RUNBOOKS, runbook_for

ROOT = Path(__file__).resolve().parents[2]
BOOKS = ROOT / RUNBOOK_BASE
INDEX = "README.md"
SECTIONS = (
    "What it means",
    "How it is raised and cleared",
    "First checks",
    "Likely causes",
    "Fix",
    "Escalate",
    "Tell the customer",
    "Verify",
)
MIN_LINES, MAX_LINES = 40, 120
PAGES = sorted({*RUNBOOKS.values(), GENERAL})
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _text(page: str) -> str:
    return (BOOKS / page).read_text(encoding="utf-8")


def _headings(text: str) -> list[str]:
    return [line[3:].strip() for line in text.splitlines() if line.startswith("## ")]


@pytest.mark.parametrize("page", PAGES)
def test_every_named_page_exists(page: str) -> None:
    assert (BOOKS / page).is_file(), f"{RUNBOOK_BASE}{page} is named in runbooks.py but missing"


@pytest.mark.parametrize(
    "group",
    [*RUNBOOKS, "node.smart", "syslog.kernel.io", "restore.stalled", "duty.failed", "site.down"],
)
def test_every_alarm_links_an_existing_page(group: str) -> None:
    assert (ROOT / runbook_for(group)).is_file()


@pytest.mark.parametrize("page", PAGES)
def test_page_links_back_to_the_index(page: str) -> None:
    assert f"]({INDEX})" in _text(page)


@pytest.mark.parametrize("page", PAGES)
def test_page_has_the_sections_in_order(page: str) -> None:
    assert _headings(_text(page)) == list(SECTIONS)


@pytest.mark.parametrize("page", PAGES)
def test_page_stays_focused(page: str) -> None:
    lines = len(_text(page).splitlines())
    assert MIN_LINES <= lines <= MAX_LINES, f"{page} has {lines} lines"


@pytest.mark.parametrize("group", sorted(RUNBOOKS))
def test_page_names_the_alert_group_it_covers(group: str) -> None:
    assert f"`{group}" in _text(RUNBOOKS[group])


@pytest.mark.parametrize("page", [*PAGES, INDEX])
def test_relative_links_resolve(page: str) -> None:
    for target in _LINK.findall(_text(page)):
        if "://" in target:
            continue
        assert (BOOKS / target).resolve().is_file(), f"{page} links to missing {target}"


def test_index_lists_every_page_and_nothing_else() -> None:
    linked = {t for t in _LINK.findall(_text(INDEX)) if "/" not in t and t.endswith(".md")}
    on_disk = {p.name for p in BOOKS.glob("*.md")} - {INDEX}
    assert linked == set(PAGES)
    assert on_disk == set(PAGES), "a page in docs/runbooks/ that no alarm links"
