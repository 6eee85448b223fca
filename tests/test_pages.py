"""The server-rendered pages people see: sign-in with the product name, HTML error pages
for browsers (JSON stays for API clients), the favicon, the status page's human times, and
dev sign-in as an admin."""

from __future__ import annotations

import re

import httpx

from app.auth.access import DEV_ADMIN_EMAIL, is_admin
from app.routes.html import human_time
from tests.conftest import make_settings

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_sign_in_page_names_the_product_and_what_it_knows(anonymous: httpx.Client) -> None:
    page = anonymous.get("/auth/login")
    assert page.status_code == 200
    assert "<a class='brand' href='/'>ragship</a>" in page.text
    assert "answers questions about ragship's documentation" in page.text
    assert "Sign in as admin" in page.text


def test_browsers_get_html_error_pages_and_api_clients_json(client: httpx.Client) -> None:
    missing = client.get("/no/such/page", headers=BROWSER)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "Page not found" in missing.text and "href='/'" in missing.text
    assert client.get("/no/such/page").json() == {"detail": "Not Found"}
    assert client.get("/api/no-such-route", headers=BROWSER).json() == {"detail": "Not Found"}
    forbidden = client.get("/admin", headers=BROWSER)  # ada is not an admin
    assert forbidden.status_code == 403 and "Admins only." in forbidden.text
    assert "<html" in forbidden.text
    assert client.get("/api/admin/users").json() == {"detail": "Admins only."}


def test_favicon_is_served(anonymous: httpx.Client) -> None:
    icon = anonymous.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_status_page_links_back_and_shows_human_times(anonymous: httpx.Client) -> None:
    page = anonymous.get("/status")
    assert "Back to the chat" in page.text
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d{6}", page.text)  # no raw ISO microseconds
    assert human_time("2026-11-30T13:40:12.123456+00:00") == "30 Nov 2026, 13:40 UTC"
    assert human_time("2026-11-30T14:40:12+01:00") == "30 Nov 2026, 13:40 UTC"
    assert human_time("not a time") == "not a time"


def test_dev_sign_in_as_admin(anonymous: httpx.Client) -> None:
    base = str(anonymous.base_url)
    with httpx.Client(base_url=base, timeout=30, headers={"Origin": base}) as browser:
        response = browser.post(
            "/auth/dev-login", data={"email": "x@example.com", "name": "", "as_admin": "1"}
        )
        assert response.status_code == 303
        me = browser.get("/api/me").json()
        assert me["email"] == DEV_ADMIN_EMAIL and me["is_admin"] is True
        assert browser.get("/admin").status_code == 200


def test_dev_sign_in_as_admin_needs_no_email_and_a_missing_email_is_a_page(
    anonymous: httpx.Client,
) -> None:
    base = str(anonymous.base_url)
    with httpx.Client(base_url=base, timeout=30, headers={"Origin": base}) as browser:
        # The admin button skips the form's validation: the email field may be empty.
        response = browser.post("/auth/dev-login", data={"email": "", "as_admin": "1"})
        assert response.status_code == 303
        assert browser.get("/api/me").json()["email"] == DEV_ADMIN_EMAIL
    with httpx.Client(base_url=base, timeout=30, headers={"Origin": base}) as browser:
        for form in ({"email": ""}, {}, {"email": "x"}):
            response = browser.post("/auth/dev-login", data=form)
            assert response.status_code == 400, form
            assert "Enter an email address." in response.text
            assert response.headers["content-type"].startswith("text/html")


def test_the_dev_admin_is_no_admin_without_dev_sign_in() -> None:
    assert is_admin(make_settings(), DEV_ADMIN_EMAIL)
    assert not is_admin(make_settings(dev_login=False), DEV_ADMIN_EMAIL)
    assert is_admin(
        make_settings(dev_login=False, admin_emails=["boss@example.com"]), "Boss@example.com"
    )
