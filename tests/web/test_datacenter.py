"""The data-center view: technicians (and administrators) only, and the technician's home."""

from __future__ import annotations

from tests.soc.api.harness import SocApi
from tests.web.harness import CUSTOMER, OPERATOR, login

TECHNICIAN = "tech@dc.example"
EMPTY = (
    "No work orders are waiting for you. Media work orders appear here once a SOC supervisor "
    "authorizes them."
)


def test_a_technician_lands_on_the_data_center_view_with_its_empty_state(api: SocApi) -> None:
    signed_in = login(api.client, TECHNICIAN)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/datacenter"
    page = api.client.get("/datacenter")
    assert page.status_code == 200
    assert EMPTY in page.text
    assert "<h1>Media work orders</h1>" in page.text
    assert 'href="/datacenter" aria-current="page">Data center</a>' in page.text
    assert 'href="/console"' not in page.text.split("</nav>")[0].split('class="mainnav"')[1]


def test_a_technician_going_somewhere_else_is_sent_there(api: SocApi) -> None:
    signed_in = login(api.client, TECHNICIAN, next_url="/datacenter?x=1")
    assert signed_in.headers["location"] == "/datacenter?x=1"


def test_an_operator_still_lands_on_the_console_and_is_refused_the_data_center(
    api: SocApi,
) -> None:
    assert login(api.client, OPERATOR).headers["location"] == "/console"
    page = api.client.get("/datacenter")
    assert page.status_code == 403
    assert "the data-center view is for data-center technicians" in page.text
    assert EMPTY not in page.text


def test_a_customer_is_refused_the_data_center(api: SocApi) -> None:
    login(api.client, CUSTOMER)
    page = api.client.get("/datacenter")
    assert page.status_code == 403
    assert EMPTY not in page.text


def test_an_administrator_may_see_the_data_center(api: SocApi) -> None:
    login(api.client, api.admin_email, api.admin_password)
    page = api.client.get("/datacenter")
    assert page.status_code == 200 and EMPTY in page.text
    nav = page.text.split('class="mainnav"')[1].split("</nav>")[0]
    assert ">Alarms</a>" in nav and ">Data center</a>" in nav


def test_a_technician_is_refused_the_console_and_the_portal(api: SocApi) -> None:
    login(api.client, TECHNICIAN)
    for path in ("/console", "/console/alarms/1", "/console/ping", "/portal"):
        answer = api.client.get(path, follow_redirects=False)
        assert answer.status_code == 403, path
    page = api.client.get("/console").text
    assert 'href="/datacenter">Back to your work orders' in page  # their own home, not /console


def test_signed_out_the_data_center_sends_the_browser_to_the_login_form(api: SocApi) -> None:
    answer = api.client.get("/datacenter", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fdatacenter"
