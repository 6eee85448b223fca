"""The real OIDC flow (authlib ↔ a local provider over HTTP) with production settings.

Each attack the sign-in must refuse has its own test, named after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import Engine, text

from app.db import make_sync_engine
from app.localmodel.runner import BackgroundServer
from tests.auth_flow import Browserish
from tests.conftest import LocalModel
from tests.oidc_provider import Provider


@pytest.fixture
def browser(prod_app: BackgroundServer, provider: Provider) -> Iterator[Browserish]:
    provider.next_login()
    client = Browserish(prod_app.url)
    yield client
    client.close()


@pytest.fixture
def db(prod_db: str) -> Iterator[Engine]:
    engine = make_sync_engine(prod_db)
    yield engine
    engine.dispose()


def admin(prod_app: BackgroundServer, provider: Provider) -> Browserish:
    provider.next_login(email="root@example.com", name="Root")
    client = Browserish(prod_app.url)
    assert client.sign_in().status_code == 303
    return client


def assert_refused(response_status: int, browser: Browserish, expected: int = 400) -> None:
    assert response_status == expected
    assert "ragship_session" not in browser.cookies
    assert browser.get("/api/me").status_code == 401


def test_allowed_email_signs_in_with_a_hardened_cookie(browser: Browserish) -> None:
    response = browser.sign_in()
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = next(h for h in browser.set_cookie_headers if h.startswith("ragship_session="))
    assert "HttpOnly" in cookie and "Secure" in cookie and "samesite=lax" in cookie.lower()
    me = browser.get("/api/me").json()
    assert me["email"] == "ada@example.com" and me["is_admin"] is False
    assert browser.get("/").status_code == 200


def test_allowed_domain_signs_in(browser: Browserish, provider: Provider) -> None:
    provider.next_login(email="grace@trusted.example")
    assert browser.sign_in().status_code == 303


def test_authorize_request_uses_pkce_state_and_nonce(browser: Browserish) -> None:
    start = browser.get("/auth/start")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["nonce"][0]
    assert query["redirect_uri"] == [f"{browser.base_url}/auth/callback"]


def test_missing_state_is_refused(browser: Browserish) -> None:
    callback = browser.start_sign_in()
    code = parse_qs(urlsplit(callback).query)["code"][0]
    response = browser.finish_sign_in(f"/auth/callback?{urlencode({'code': code})}")
    assert_refused(response.status_code, browser)


def test_mismatched_state_is_refused(browser: Browserish) -> None:
    callback = browser.start_sign_in()
    code = parse_qs(urlsplit(callback).query)["code"][0]
    response = browser.finish_sign_in(
        f"/auth/callback?{urlencode({'code': code, 'state': 'forged'})}"
    )
    assert_refused(response.status_code, browser)


def test_callback_from_another_browser_is_refused(
    browser: Browserish, prod_app: BackgroundServer
) -> None:
    """Login CSRF: a victim's browser did not start this flow, so it has no state for it."""
    callback = browser.start_sign_in()
    victim = Browserish(prod_app.url)
    try:
        assert_refused(victim.finish_sign_in(callback).status_code, victim)
    finally:
        victim.close()


def test_replayed_authorization_code_is_refused(browser: Browserish) -> None:
    first = browser.start_sign_in()
    assert browser.finish_sign_in(first).status_code == 303
    browser.cookies.pop("ragship_session")
    old_code = parse_qs(urlsplit(first).query)["code"][0]
    fresh = browser.start_sign_in()
    state = parse_qs(urlsplit(fresh).query)["state"][0]
    replay = browser.finish_sign_in(
        f"/auth/callback?{urlencode({'code': old_code, 'state': state})}"
    )
    assert_refused(replay.status_code, browser)


def test_wrong_nonce_is_refused(browser: Browserish, provider: Provider) -> None:
    provider.next_login(nonce="not-the-nonce-we-sent")
    assert_refused(browser.sign_in().status_code, browser)


def test_wrong_audience_is_refused(browser: Browserish, provider: Provider) -> None:
    provider.next_login(audience="some-other-client")
    assert_refused(browser.sign_in().status_code, browser)


def test_expired_id_token_is_refused(browser: Browserish, provider: Provider) -> None:
    provider.next_login(expires_in=-3600)
    assert_refused(browser.sign_in().status_code, browser)


def test_unverified_email_is_refused(browser: Browserish, provider: Provider) -> None:
    provider.next_login(email_verified=False)
    response = browser.sign_in()
    assert_refused(response.status_code, browser, expected=403)
    assert "not verified" in response.text


def test_email_outside_the_allowlist_is_refused(browser: Browserish, provider: Provider) -> None:
    provider.next_login(email="eve@elsewhere.example")
    response = browser.sign_in()
    assert_refused(response.status_code, browser, expected=403)
    assert "not on this service" in response.text


def test_invite_admits_once_then_is_used_up(
    prod_app: BackgroundServer, provider: Provider, browser: Browserish
) -> None:
    root = admin(prod_app, provider)
    invite = root.post("/api/admin/invites", json={"max_uses": 1, "note": "for Bob"}).json()
    assert invite["uses"] == 0
    browser.get(invite["url"])
    provider.next_login(email="bob@outsider.example")
    assert browser.sign_in().status_code == 303
    second = Browserish(prod_app.url)
    second.get(invite["url"])
    provider.next_login(email="carol@outsider.example")
    response = second.sign_in()
    assert_refused(response.status_code, second, expected=403)
    assert "used up" in response.text
    listed = {i["id"]: i for i in root.get("/api/admin/invites").json()}
    assert listed[invite["id"]]["uses"] == 1


def test_expired_invite_is_refused(
    prod_app: BackgroundServer, provider: Provider, browser: Browserish, db: Engine
) -> None:
    invite = admin(prod_app, provider).post("/api/admin/invites", json={"max_uses": 5}).json()
    with db.begin() as conn:
        conn.execute(
            text("UPDATE invites SET expires_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": invite["id"]},
        )
    browser.get(invite["url"])
    provider.next_login(email="dave@outsider.example")
    assert_refused(browser.sign_in().status_code, browser, expected=403)


def test_revoked_invite_is_refused(
    prod_app: BackgroundServer, provider: Provider, browser: Browserish
) -> None:
    root = admin(prod_app, provider)
    invite = root.post("/api/admin/invites", json={"max_uses": 5}).json()
    assert (
        root.request(
            "DELETE",
            f"/api/admin/invites/{invite['id']}",
            headers={"Origin": root.base_url, "X-CSRF-Token": root.csrf},
        ).status_code
        == 200
    )
    browser.get(invite["url"])
    provider.next_login(email="erin@outsider.example")
    assert_refused(browser.sign_in().status_code, browser, expected=403)


def test_logout_makes_the_old_cookie_useless(browser: Browserish) -> None:
    browser.sign_in()
    stolen = browser.cookies["ragship_session"]
    assert browser.post("/auth/logout").json() == {"signed_out": True}
    thief = Browserish(browser.base_url)
    thief.cookies["ragship_session"] = stolen
    assert thief.get("/api/me").status_code == 401


def test_admin_revoke_ends_sessions_at_once_and_keeps_them_out(
    prod_app: BackgroundServer, provider: Provider, browser: Browserish
) -> None:
    provider.next_login(email="frank@trusted.example")
    browser.sign_in()
    assert browser.get("/api/me").status_code == 200
    root = admin(prod_app, provider)
    user = next(
        u for u in root.get("/api/admin/users").json() if u["email"] == "frank@trusted.example"
    )
    assert root.post(f"/api/admin/users/{user['id']}/revoke").json()["sessions_ended"] == 1
    assert browser.get("/api/me").status_code == 401
    again = Browserish(prod_app.url)
    provider.next_login(email="frank@trusted.example")
    response = again.sign_in()
    assert response.status_code == 403 and "revoked" in response.text
    assert root.post(f"/api/admin/users/{user['id']}/restore").status_code == 200
    provider.next_login(email="frank@trusted.example")
    assert again.sign_in().status_code == 303


def test_admin_apis_refuse_non_admins(browser: Browserish) -> None:
    browser.sign_in()
    assert browser.get("/api/admin/users").status_code == 403
    assert browser.post("/api/admin/invites", json={}).status_code == 403
    assert browser.get("/admin").status_code == 403


def test_cross_site_post_with_a_valid_cookie_is_refused_and_costs_nothing(
    browser: Browserish, local_model: LocalModel, db: Engine
) -> None:
    browser.sign_in()
    calls_before = local_model.stats()["requests"]
    with db.connect() as conn:
        messages_before = conn.execute(text("SELECT count(*) FROM messages")).scalar()
    evil = browser.post(
        "/api/chat", json={"message": "hi"}, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403 and "Cross-site" in evil.json()["detail"]
    no_token = browser.post("/api/chat", json={"message": "hi"}, headers={"X-CSRF-Token": ""})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["detail"]
    no_origin = browser.request(
        "POST", "/api/chat", json={"message": "hi"}, headers={"X-CSRF-Token": browser.csrf}
    )
    assert no_origin.status_code == 403
    assert local_model.stats()["requests"] == calls_before
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == messages_before


def test_signed_in_user_can_chat(browser: Browserish) -> None:
    browser.sign_in()
    response = browser.post("/api/chat", json={"message": "How do I run the tests?"})
    assert response.status_code == 200 and "event: done" in response.text


def test_idle_session_expires(browser: Browserish, db: Engine) -> None:
    browser.sign_in()
    with db.begin() as conn:
        conn.execute(text("UPDATE auth_sessions SET expires_at = now() - interval '1 second'"))
    assert browser.get("/api/me").status_code == 401


def test_dev_sign_in_does_not_exist_in_prod(browser: Browserish) -> None:
    response = browser.post("/auth/dev-login", data={"email": "x@example.com"})
    assert response.status_code == 404
    assert "Dev sign-in" not in browser.get("/auth/login").text


def test_claims_with_control_characters_are_cleaned(
    browser: Browserish, provider: Provider, db: Engine
) -> None:
    # A provider's claims are outside text: a NUL in the name must not break sign-in.
    provider.next_login(email="nul-claims@trusted.example", name="Ada\x00 Love\x1blace")
    assert browser.sign_in().status_code == 303
    with db.connect() as conn:
        sql = "SELECT name FROM users WHERE email = 'nul-claims@trusted.example'"
        assert conn.execute(text(sql)).scalar() == "Ada Lovelace"
