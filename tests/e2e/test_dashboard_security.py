"""The dashboard's doors, over HTTP against a real ``relaygate serve``: login with the admin
token only, the session cookie's attributes, redirects without a valid cookie, CSRF on posts."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from relaygate.dashboard.routes import GET_PAGES, POST_ACTIONS
from relaygate.dashboard.session import COOKIE_NAME
from tests.e2e.server import Gateway

LOGIN = "/dashboard/login"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def _client(gateway: Gateway) -> httpx.Client:
    return httpx.Client(base_url=gateway.base_url, follow_redirects=False, timeout=10.0)


def _login(client: httpx.Client, token: str, **headers: str) -> httpx.Response:
    return client.post(LOGIN, data={"token": token}, headers=headers)


@pytest.fixture
def session(gateway: Gateway) -> Iterator[httpx.Client]:
    """A client logged in with the admin token."""
    with _client(gateway) as client:
        assert _login(client, gateway.admin_token).status_code == 303
        yield client


def _csrf(client: httpx.Client) -> str:
    page = client.get("/dashboard/keys")
    assert page.status_code == 200
    match = CSRF_FIELD.search(page.text)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("path", sorted({*GET_PAGES, "/dashboard/", "/dashboard/anything"}))
def test_every_page_redirects_to_login_without_a_cookie(gateway: Gateway, path: str) -> None:
    with _client(gateway) as client:
        response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == LOGIN


@pytest.mark.parametrize("path", sorted({*POST_ACTIONS, "/dashboard/logout"}))
def test_every_action_redirects_to_login_without_a_cookie(gateway: Gateway, path: str) -> None:
    with _client(gateway) as client:
        response = client.post(path, data={"name": "x", "csrf": "x"})
    assert response.status_code == 303
    assert response.headers["location"] == LOGIN


def test_the_login_page_and_assets_need_no_cookie(gateway: Gateway) -> None:
    with _client(gateway) as client:
        page = client.get(LOGIN)
        script = client.get("/dashboard/static/htmx.min.js")
        css = client.get("/dashboard/static/dashboard.css")
        missing = client.get("/dashboard/static/nothing.js")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "max-age=" in script.headers["cache-control"]
    assert css.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404
    with _client(gateway) as client:
        again = client.get(
            "/dashboard/static/htmx.min.js", headers={"if-none-match": script.headers["etag"]}
        )
    assert again.status_code == 304


def test_an_api_key_cannot_log_in(gateway: Gateway) -> None:
    with _client(gateway) as client:
        for token in (gateway.api_key, "rgadmin-" + "x" * 40, ""):
            response = _login(client, token)
            assert response.status_code in (400, 401)
            assert "set-cookie" not in response.headers
        assert client.get("/dashboard").status_code == 303


def test_the_admin_token_logs_in_with_a_strict_cookie(gateway: Gateway) -> None:
    with _client(gateway) as client:
        response = _login(client, gateway.admin_token)
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=")
        for attribute in ("HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age="):
            assert attribute in cookie
        assert "Secure" not in cookie  # plain HTTP here
        overview = client.get("/dashboard")
        assert overview.status_code == 200
        assert "Overview" in overview.text
    with _client(gateway) as client:
        behind_tls = _login(client, gateway.admin_token, **{"x-forwarded-proto": "https"})
        assert "Secure" in behind_tls.headers["set-cookie"]


def test_a_forged_cookie_is_refused(session: httpx.Client, gateway: Gateway) -> None:
    value = session.cookies[COOKIE_NAME]
    session_id, expiry, mac = value.split(".")
    forgeries = [
        f"{session_id}.{expiry}.{mac[:-2]}AA",
        f"{session_id}x.{expiry}.{mac}",
        f"{session_id}.{int(expiry) + 86400}.{mac}",
        f"{session_id}.1.{mac}",
        "garbage",
    ]
    for forged in forgeries:
        with _client(gateway) as client:
            response = client.get("/dashboard", headers={"cookie": f"{COOKIE_NAME}={forged}"})
        assert response.status_code == 303, forged


def test_posts_without_the_csrf_token_are_refused(session: httpx.Client) -> None:
    token = _csrf(session)
    refused = [
        session.post("/dashboard/keys", data={"name": "csrf-none"}),
        session.post("/dashboard/keys", data={"name": "csrf-wrong", "csrf": token[:-1] + "x"}),
        session.post(
            "/dashboard/keys",
            data={"name": "csrf-cross-site", "csrf": token},
            headers={"origin": "https://evil.example"},
        ),
        session.post("/dashboard/logout", data={}),
    ]
    for response in refused:
        assert response.status_code == 403
    names = session.get("/dashboard/keys").text
    assert "csrf-none" not in names and "csrf-wrong" not in names
    assert "csrf-cross-site" not in names
    created = session.post("/dashboard/keys", data={"name": "csrf-ok", "csrf": token})
    assert created.status_code == 201
    assert re.search(r"rg-[A-Za-z0-9_-]{40}", created.text)


def test_logout_ends_the_session_in_the_browser(session: httpx.Client) -> None:
    response = session.post("/dashboard/logout", data={"csrf": _csrf(session)})
    assert response.status_code == 303
    assert response.headers["location"] == LOGIN
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert session.get("/dashboard").status_code == 303


def test_what_a_page_shows_is_escaped(session: httpx.Client) -> None:
    name = '<img src=x onerror="alert(1)">'
    created = session.post("/dashboard/keys", data={"name": name, "csrf": _csrf(session)})
    assert created.status_code == 201
    page = session.get("/dashboard/keys").text
    assert name not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page


def test_an_htmx_poll_after_the_session_ended_sends_the_window_to_login(
    gateway: Gateway,
) -> None:
    with _client(gateway) as client:
        poll = client.get("/dashboard/live", headers={"hx-request": "true"})
        assert poll.status_code == 303
        login = client.get(poll.headers["location"], headers={"hx-request": "true"})
    assert login.headers["hx-redirect"] == LOGIN
