"""Accessibility of the web faces in real Chromium: axe-core on every page, and the keyboard.

A real server process (TLS, its own CA) holds a few alarms; an operator, a
data-center technician and a customer sign in through the form, and each
page they can reach (the fixed list below plus every link of their main
navigation, so new pages are audited as they appear) gets axe-core
(fetched by scripts/fetch-axe.sh, pinned) and ``axe.run()``. Every finding
is printed with its nodes; a "serious" or "critical" one fails the test.
The keyboard test works the alarm list without a mouse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.harness import Server, free_port, vw
from tests.e2e.test_console_browser import Console, browser

__all__ = ["browser"]  # a fixture, shared with the console's browser test

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FETCH_AXE = Path(__file__).resolve().parents[2] / "scripts" / "fetch-axe.sh"
BLOCKING = ("serious", "critical")


@dataclass
class Site:
    """A running server with an operator (and an API key), a technician and a customer."""

    console: Console
    technician: tuple[str, str]
    customer: tuple[str, str]


def _user(data_dir: Path, email: str, role: str, *extra: str) -> tuple[str, str]:
    made = json.loads(vw("admin", "user", "create", "--data-dir", str(data_dir), "--email", email, "--role", role, *extra, "--json"))  # fmt: skip
    return made["email"], made["password"]


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe.min.js from the pinned npm package (fetched once into .cache/)."""
    if not shutil.which("npm") and not (FETCH_AXE.parent.parent / ".cache" / "axe-core").exists():
        message = "npm is not installed (scripts/test-services.sh installs Debian's npm)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    proc = subprocess.run(
        [str(FETCH_AXE)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1]).read_text()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    data_dir = tmp_path / "server"
    port = free_port()
    vw("server", "init", "--data-dir", str(data_dir), "--port", str(port), "--json")
    operator = _user(data_dir, "op@soc.example", "soc_operator")
    key = json.loads(vw("admin", "apikey", "create", "--data-dir", str(data_dir), "--user", "op@soc.example", "--name", "sender", "--json"))  # fmt: skip
    technician = _user(data_dir, "tech@dc.example", "dc_technician")
    vw("admin", "tenant", "create", "--data-dir", str(data_dir), "Acme Dental")
    customer = _user(data_dir, "admin@acme.example", "customer_admin", "--tenant", "Acme Dental")
    server = Server(
        data_dir, port, data_dir / "tls" / "ca.pem", tmp_path / "uploads.jsonl", tmp_path / "log"
    )
    server.start()
    try:
        yield Site(Console(server, *operator, key["api_key"]), technician, customer)
    finally:
        server.kill()


def sign_in(browser: Any, base: str, email: str, password: str) -> Any:
    """A new browser context signed in through the form; its page."""
    context = browser.new_context(
        ignore_https_errors=True, bypass_csp=True, viewport={"width": 1400, "height": 900}
    )
    page = context.new_page()
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")
    return page


def audit(page: Any, axe: str, url: str) -> list[dict[str, Any]]:
    """Open `url`, run axe, print every violation; the blocking ones."""
    page.goto(url)
    page.wait_for_load_state("domcontentloaded")
    page.evaluate(axe)  # evaluated through the debugger, so the page's CSP does not apply
    result = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    violations: list[dict[str, Any]] = result["violations"]
    for v in violations:
        print(f"{urlsplit(url).path}: [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"]:
            print(f"    {node['target']}: {node.get('failureSummary', '').splitlines()[-1:]}")
    return [v for v in violations if v["impact"] in BLOCKING]


def nav_links(page: Any, base: str) -> list[str]:
    """Every page the main navigation links to, and the first page below each of them."""
    hrefs = page.eval_on_selector_all("nav.mainnav a", "els => els.map(e => e.href)")
    links = []
    for href in (h for h in hrefs if h.startswith(base)):
        links.append(href)
        page.goto(href)
        below = page.eval_on_selector_all(
            "main a[href]",
            "(els, top) => els.map(e => e.href).filter(h => h.startsWith(top))",
            href.rstrip("/") + "/",
        )
        links.extend(below[:1])
    return links


def test_every_page_has_no_serious_accessibility_violation(
    site: Site, browser: Any, axe_source: str
) -> None:
    console = site.console
    base = console.server.url
    first = console.post_event(summary="gateway gw1 does not answer")
    console.post_event(node="db1", alert_group="node.disk", severity="minor", summary="disk 91%")
    console.post_event(
        node="files01",
        alert_group="backup.overdue",
        severity="major",
        summary="no backup for 3 days",
    )
    console.post_event(
        node="gw2",
        alert_group="probe.tls",
        severity="warning",
        summary="certificate expires in 9 days",
    )
    console.post_event(
        node="gw3", alert_group="probe.tls", severity="indeterminate", summary="probe timed out"
    )

    found: dict[str, list[dict[str, Any]]] = {}
    anonymous = browser.new_context(ignore_https_errors=True, bypass_csp=True)
    login_page = anonymous.new_page()
    found["/login"] = audit(login_page, axe_source, base + "/login")
    login_page.get_by_label("Email").fill(console.email)
    login_page.get_by_label("Password").fill("not the password")
    login_page.get_by_role("button", name="Sign in").click()
    found["/login (failed)"] = audit(login_page, axe_source, login_page.url)
    anonymous.close()

    operator = sign_in(browser, base, console.email, console.password)
    operator.goto(base + "/console")
    operator.get_by_role("button", name=f"Acknowledge alarm {first}").click()
    pages = [
        "/console",
        "/console?severity=critical&sort=-last_occurrence",
        "/console?wall=1",
        f"/console/alarms/{first}",
        "/console/alarms/999999",
        "/datacenter",
    ]
    for path in pages + [urlsplit(u).path for u in nav_links(operator, base)]:
        found.setdefault(path, audit(operator, axe_source, base + path))
    for email, password in (site.technician, site.customer):
        user = sign_in(browser, base, email, password)
        landed = user.url
        found.setdefault(f"{urlsplit(landed).path} ({email})", audit(user, axe_source, landed))
        for link in nav_links(user, base):
            found.setdefault(f"{urlsplit(link).path} ({email})", audit(user, axe_source, link))
        user.context.close()
    operator.context.close()

    print("audited:", ", ".join(sorted(found)))
    assert "/datacenter (tech@dc.example)" in found, sorted(found)
    blocking = {page: [v["id"] for v in vs] for page, vs in found.items() if vs}
    assert blocking == {}, f"serious or critical violations: {blocking}"


def test_the_alarm_list_works_without_a_mouse(site: Site, browser: Any) -> None:
    from playwright.sync_api import expect

    console = site.console
    base = console.server.url
    older = console.post_event(node="gw1", summary="gateway gw1 does not answer")
    newer = console.post_event(node="gw2", summary="gateway gw2 does not answer")
    page = sign_in(browser, base, console.email, console.password)
    expect(page).to_have_url(base + "/console")
    expect(page.locator("#live-text")).to_have_text("Live", timeout=10_000)

    # Tab from the top of the page until the focus is in the alarm list.
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("() => !!document.activeElement.closest('#alarms')"):
            break
    else:
        raise AssertionError("Tab never reaches the alarm list")
    focused = page.evaluate("() => document.activeElement.closest('tr.alarm').id")
    assert focused == f"alarm-{newer}"

    # j and k move the selection, with the focus, through the rows.
    rows = page.locator("tr.alarm.selected")
    page.keyboard.press("j")
    expect(rows).to_have_id(f"alarm-{newer}")
    page.keyboard.press("j")
    expect(rows).to_have_id(f"alarm-{older}")
    assert page.evaluate("() => document.activeElement.id") == f"alarm-{older}"
    page.keyboard.press("k")
    expect(rows).to_have_id(f"alarm-{newer}")

    # a acknowledges the selected alarm; Enter opens its drill-down.
    page.keyboard.press("a")
    expect(page.locator(f"#alarm-{newer}.acked")).to_have_count(1, timeout=5_000)
    expect(page.locator(f"#alarm-{older}.acked")).to_have_count(0)
    expect(rows).to_have_id(f"alarm-{newer}")
    page.keyboard.press("Enter")
    expect(page).to_have_url(base + f"/console/alarms/{newer}")
    expect(page.locator("dl.details")).to_contain_text("Acknowledged")
    page.context.close()
