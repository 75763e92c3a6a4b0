"""Browser sessions: the login form, cookie flags, fixation, lockout, logout, roles."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.soc.api.harness import PASSWORD, SocApi
from tests.web.harness import CUSTOMER, OPERATOR, login
from vaultwatch.catalog import AuditEntry
from vaultwatch.catalog.soc_models import ApiKey
from vaultwatch.web.sessions import COOKIE, LOCKOUT_FAILURES, SESSION_NAME


def _set_cookie(response: object) -> str:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    (cookie,) = [h for h in headers if h.startswith(COOKIE + "=")]
    return str(cookie)


def test_a_page_without_a_session_redirects_to_the_login_form(api: SocApi) -> None:
    answer = api.client.get("/console?severity=critical", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fconsole%3Fseverity%3Dcritical"
    form = api.client.get(answer.headers["location"])
    assert form.status_code == 200
    assert 'name="next" value="/console?severity=critical"' in form.text


def test_login_sets_an_httponly_lax_cookie_and_goes_where_the_user_was_going(api: SocApi) -> None:
    answer = login(api.client, next_url="/console?node=gw1")
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console?node=gw1"
    cookie = _set_cookie(answer).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    assert api.client.get("/console").status_code == 200


def test_the_cookie_is_secure_over_https(api: SocApi) -> None:
    with TestClient(api.client.app, base_url="https://testserver") as browser:
        answer = login(browser)
        assert answer.status_code == 303
        assert "; secure" in _set_cookie(answer).lower()


def test_the_session_is_a_revocable_key_row_holding_only_a_digest(api: SocApi) -> None:
    answer = login(api.client)
    session_id = api.client.cookies[COOKIE]
    assert answer.status_code == 303 and len(session_id) > 40
    with api.catalog.session() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.name == SESSION_NAME)).one()
        assert session_id not in (row.digest, row.prefix) and session_id.startswith(row.prefix)
        assert row.expires_at is not None
        assert (
            timedelta(hours=11, minutes=59) < row.expires_at - row.created_at <= timedelta(hours=12)
        )


def test_a_new_session_id_at_login_and_the_old_one_stops_working(api: SocApi) -> None:
    planted = "vwk_planted-by-someone-else-aaaaaaaaaaaaaaaaaaaaaa"
    api.client.cookies.set(COOKIE, planted, domain="testserver.local")
    login(api.client)
    first = api.client.cookies[COOKIE]
    assert not first.startswith("vwk_planted")
    login(api.client)  # logging in again, with the first session in the browser
    second = api.client.cookies[COOKIE]
    assert second != first
    with TestClient(api.client.app) as other:
        other.cookies.set(COOKIE, first)
        assert other.get("/console", follow_redirects=False).status_code == 303
        other.cookies.set(COOKIE, second)
        assert other.get("/console", follow_redirects=False).status_code == 200


def test_logout_revokes_the_session(api: SocApi) -> None:
    login(api.client)
    session_id = api.client.cookies[COOKIE]
    page = api.client.get("/console")
    token = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    answer = api.client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert "max-age=0" in _set_cookie(answer).lower()
    with TestClient(api.client.app) as thief:
        thief.cookies.set(COOKIE, session_id)  # a copy of the cookie taken before the logout
        assert thief.get("/console", follow_redirects=False).status_code == 303
    with api.catalog.session() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.name == SESSION_NAME)).one()
        assert row.revoked_at is not None


def test_an_expired_session_sends_the_browser_to_the_login_form(api: SocApi) -> None:
    login(api.client)
    assert api.client.get("/console/ping").status_code == 204
    with api.catalog.session() as session:
        session.execute(update(ApiKey).values(expires_at=ApiKey.created_at))
    assert api.client.get("/console", follow_redirects=False).status_code == 303
    assert api.client.get("/console/ping", follow_redirects=False).status_code == 303


def test_a_wrong_password_shows_the_form_again_with_one_message(api: SocApi) -> None:
    wrong = login(api.client, password="not the password")
    unknown = login(api.client, email="nobody@soc.example")
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong email or password" in wrong.text and "wrong email or password" in unknown.text
    assert f'value="{OPERATOR}"' in wrong.text  # the email is kept, the password is not
    assert COOKIE not in api.client.cookies


def test_five_failures_in_15_minutes_lock_the_email(api: SocApi) -> None:
    for _ in range(LOCKOUT_FAILURES):
        assert login(api.client, password="guess").status_code == 401
    locked = login(api.client)  # even the right password is refused now
    assert locked.status_code == 429
    assert "too many failed logins" in locked.text
    assert COOKIE not in api.client.cookies
    assert login(api.client, email=api.admin_email, password=api.admin_password).status_code == 303
    with api.catalog.session() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
        assert actions.count("login.failed") == LOCKOUT_FAILURES
        assert "login.locked" in actions
        # A quarter of an hour later the lock has passed.
        for entry in session.scalars(select(AuditEntry).where(AuditEntry.action == "login.failed")):
            entry.occurred_at -= timedelta(minutes=16)
    assert login(api.client).status_code == 303


def test_a_successful_login_resets_the_failure_count(api: SocApi) -> None:
    for _ in range(LOCKOUT_FAILURES - 1):
        login(api.client, password="guess")
    assert login(api.client).status_code == 303
    for _ in range(LOCKOUT_FAILURES - 1):
        login(api.client, password="guess")
    assert login(api.client).status_code == 303


def test_the_login_form_refuses_a_post_without_its_csrf_token(api: SocApi) -> None:
    answer = api.client.post(
        "/login", data={"email": OPERATOR, "password": PASSWORD}, follow_redirects=False
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert COOKIE not in api.client.cookies


def test_login_never_redirects_to_another_site(api: SocApi) -> None:
    for target in ("//evil.example/", "https://evil.example/", "\\\\evil.example"):
        answer = login(api.client, next_url=target)
        assert answer.headers["location"] == "/console"


def test_a_customer_signing_into_the_console_gets_a_403_page(api: SocApi) -> None:
    assert login(api.client, email=CUSTOMER).status_code == 303
    page = api.client.get("/console")
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "operations center" in page.text
    assert api.client.get("/console/stream").status_code == 403
