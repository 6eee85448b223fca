"""Personal access tokens: the docs' curl example works; a token chats through the same cap
chain as a browser session, is recorded with its calls, and stops when revoked."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import Engine

from app.localmodel.runner import BackgroundServer
from tests.conftest import ROOT, scalar, sign_in
from tests.sse import parse_lines

QUESTION = "How do I run the tests?"


def make_token(browser: httpx.Client, name: str = "script") -> dict[str, str]:
    response = browser.post("/api/tokens", json={"name": name})
    assert response.status_code == 201, response.text
    made: dict[str, str] = response.json()
    return made


@contextmanager
def bearer(base_url: str, token: str) -> Iterator[httpx.Client]:
    """A script's client: the token and nothing else (no cookie, no Origin, no CSRF)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
        yield client


def chat_status(client: httpx.Client) -> tuple[int, str]:
    response = client.post("/api/chat", json={"message": QUESTION})
    return response.status_code, response.text


def test_the_curl_example_in_the_docs_works(
    app_server: BackgroundServer, db_engine: Engine
) -> None:
    docs = (ROOT / "docs" / "chat-api.md").read_text()
    example = re.search(r"```\n(curl -N -X POST .*?)```", docs, re.DOTALL)
    assert example is not None, "docs/chat-api.md lost its curl example"
    command = example.group(1).replace("http://127.0.0.1:8000", app_server.url)
    with sign_in(app_server.url, "curl@example.com") as browser:
        made = make_token(browser, "curl")
    run = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, "RAGSHIP_TOKEN": made["token"]},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    events = parse_lines(run.stdout.splitlines())
    assert [name for name, _ in events][:2] == ["meta", "sources"], run.stdout[:500]
    assert events[-1][0] == "done", events[-1]
    trace_id = events[0][1]["trace_id"]
    recorded = scalar(
        db_engine,
        "SELECT c.api_token_id::text FROM llm_calls c JOIN users u ON u.id = c.user_id "
        "WHERE c.trace_id = :t AND u.email = 'curl@example.com'",
        t=trace_id,
    )
    assert recorded == made["id"]  # the call is on the books per user and per token


def test_only_the_hash_is_stored_and_the_list_never_shows_the_secret(
    app_server: BackgroundServer, db_engine: Engine
) -> None:
    with sign_in(app_server.url, "hash@example.com") as browser:
        made = make_token(browser)
        listed = browser.get("/api/tokens").json()
    assert made["token"].startswith("rs_") and made["prefix"] == made["token"][:10]
    assert [t["id"] for t in listed] == [made["id"]] and made["token"] not in str(listed)
    stored = scalar(db_engine, "SELECT token_hash FROM api_tokens WHERE id = :i", i=made["id"])
    assert stored == hashlib.sha256(made["token"].encode()).hexdigest()
    row = scalar(
        db_engine, "SELECT row_to_json(t)::text FROM api_tokens t WHERE id = :i", i=made["id"]
    )
    assert made["token"] not in str(row)


def test_a_token_is_rate_limited_and_capped_like_its_user_and_stops_when_revoked(
    start_app,  # type: ignore[no-untyped-def]
) -> None:
    app = start_app(rate_limit_requests=2)
    with sign_in(app.url, "limited@example.com") as browser:
        made = make_token(browser)
        with bearer(app.url, made["token"]) as script:
            assert chat_status(script)[0] == 200
            assert chat_status(script)[0] == 200
            status, body = chat_status(script)
            assert status == 429 and '"layer":"rate_limit"' in body.replace(" ", "")
            # The same user's browser shares the window: one cap chain, keyed by the user.
            assert chat_status(browser)[0] == 429
            assert browser.delete(f"/api/tokens/{made['id']}").status_code == 200
            refused = script.post("/api/chat", json={"message": QUESTION})
            assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert script.get("/api/conversations").status_code == 401


def test_a_token_hits_the_users_daily_cap(start_app) -> None:  # type: ignore[no-untyped-def]
    # Room for one reservation (~$0.0005), not two: as in test_caps_http.
    app = start_app(user_daily_cap_usd="0.0006", rate_limit_requests=1000)
    with sign_in(app.url, "capped-token@example.com") as browser:
        made = make_token(browser)
    with bearer(app.url, made["token"]) as script:
        assert chat_status(script)[0] == 200
        statuses = [chat_status(script) for _ in range(3)]
    refused = [body for status, body in statuses if status == 429]
    assert refused and "user_daily_cap" in refused[0]


def test_a_token_reads_its_conversations_but_cannot_administer_or_mint(
    app_server: BackgroundServer,
) -> None:
    with sign_in(app_server.url, "reader@example.com") as browser:
        made = make_token(browser)
    with bearer(app_server.url, made["token"]) as script:
        with script.stream("POST", "/api/chat", json={"message": QUESTION}) as response:
            events = parse_lines(response.iter_lines())
        conversation_id = events[0][1]["conversation_id"]
        listed = script.get("/api/conversations").json()
        assert [c["id"] for c in listed] == [conversation_id]
        messages = script.get(f"/api/conversations/{conversation_id}").json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert script.post("/api/tokens", json={"name": "more"}).status_code == 401
        assert script.get("/api/admin/tokens").status_code == 401
    with bearer(app_server.url, "rs_not-a-real-token-0000000000") as stranger:
        assert stranger.get("/api/conversations").status_code == 401
    with httpx.Client(base_url=app_server.url, headers={"Authorization": "Basic eDp5"}) as basic:
        assert basic.get("/api/conversations").status_code == 401


def test_admins_make_service_account_tokens_and_revoke_any(start_app) -> None:  # type: ignore[no-untyped-def]
    app = start_app(admin_emails="root@example.com")
    with sign_in(app.url, "root@example.com") as admin:
        response = admin.post("/api/admin/service-accounts/ci-bot/tokens", json={"name": "CI"})
        assert response.status_code == 201, response.text
        made = response.json()
        assert made["account"] == "ci-bot@service-account.invalid"
        bad = admin.post("/api/admin/service-accounts/Not OK/tokens", json={"name": "x"})
        assert bad.status_code == 422
        with bearer(app.url, made["token"]) as bot:
            assert chat_status(bot)[0] == 200
            assert made["id"] in [t["id"] for t in admin.get("/api/admin/tokens").json()]
            assert admin.delete(f"/api/admin/tokens/{made['id']}").status_code == 200
            assert chat_status(bot)[0] == 401
    with sign_in(app.url, "someone@example.com") as user:
        assert user.get("/api/admin/tokens").status_code == 403
