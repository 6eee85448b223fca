"""Settings validate at start: production refuses placeholder and weak secrets, all at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent

PROD = {
    "env": "prod",
    "session_secret": "Jc4vN0q-7RkLx2W_pZ9bTg5yHd8mFs3e",
    "oidc_client_id": "client-1",
    "oidc_client_secret": "oidc-secret-value",
    "llm_base_url": "https://api.openai.com/v1",
    "llm_api_key": "sk-live-abc",
    "rate_limit_store": "redis://redis.internal:6379/0",
}


def test_dev_defaults_are_valid() -> None:
    settings = make_settings()
    assert settings.uses_local_model and settings.database_url is None


@pytest.mark.parametrize("secret", ["change-me", "", "secret"])
def test_prod_refuses_placeholder_session_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="SESSION_SECRET is a placeholder"):
        make_settings(**{**PROD, "session_secret": secret})


def test_prod_refuses_placeholder_llm_key_for_a_real_provider() -> None:
    with pytest.raises(ValidationError, match="LLM_API_KEY is a placeholder"):
        make_settings(**{**PROD, "llm_api_key": "local"})


def test_prod_with_real_secrets_starts() -> None:
    settings = make_settings(**PROD)
    assert not settings.uses_local_model and settings.secure_cookies
    assert not settings.dev_login_enabled


def test_prod_refuses_dev_login() -> None:
    with pytest.raises(ValidationError, match="DEV_LOGIN must be false"):
        make_settings(**PROD, dev_login=True)


@pytest.mark.parametrize("missing", ["oidc_client_id", "oidc_client_secret"])
def test_prod_requires_an_oidc_client(missing: str) -> None:
    with pytest.raises(ValidationError, match="OIDC_CLIENT_ID and OIDC_CLIENT_SECRET"):
        make_settings(**{**PROD, missing: None})


def test_email_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_EMAILS", "Ada@Example.com, grace@example.com")
    monkeypatch.setenv("ALLOWED_DOMAINS", "@corp.example")
    settings = make_settings()
    assert settings.allowed_emails == ["ada@example.com", "grace@example.com"]
    assert settings.allowed_domains == ["corp.example"]


def test_overlap_must_be_smaller_than_chunk() -> None:
    with pytest.raises(ValidationError, match="CHUNK_OVERLAP"):
        make_settings(chunk_tokens=100, chunk_overlap=100)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRIEVAL_TOP_K", "9")
    monkeypatch.setenv("LLM_MODEL", "gpt-4o-mini-2024-07-18")
    settings = make_settings()
    assert (settings.retrieval_top_k, settings.llm_model) == (9, "gpt-4o-mini-2024-07-18")


def test_prod_refuses_the_in_memory_rate_limit_store() -> None:
    with pytest.raises(ValidationError, match="RATE_LIMIT_STORE=memory is for one process"):
        make_settings(**{**PROD, "rate_limit_store": "memory"})


def test_upstash_store_needs_a_token() -> None:
    with pytest.raises(ValidationError, match="UPSTASH_REDIS_REST_TOKEN"):
        make_settings(rate_limit_store="https://eu1-example.upstash.io")


def test_reservations_must_outlive_the_longest_answer() -> None:
    with pytest.raises(ValidationError, match="RESERVATION_TTL_S must exceed"):
        make_settings(reservation_ttl_s=120, llm_total_timeout_s=180)


def test_public_llm_health_cannot_be_uncached() -> None:
    with pytest.raises(ValidationError, match="llm_health_cache_s"):
        make_settings(llm_health_cache_s=0)


@pytest.mark.parametrize(
    "secret",
    [
        "Short-But-Varied-1234",  # 21 characters
        "ab" * 20,  # long, two different characters
        "change-me" * 4,  # a placeholder repeated: 8 different characters
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ],
)
def test_prod_refuses_a_weak_session_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="SESSION_SECRET is too weak") as refused:
        make_settings(**{**PROD, "session_secret": secret})
    assert secret not in str(refused.value)


def test_a_generated_session_secret_is_strong_enough() -> None:
    # The shape of `secrets.token_urlsafe(32)`, the documented way to make one.
    make_settings(**{**PROD, "session_secret": "q2Vh0-kXbR9sTnW4yLc_8ZpJfE1dMu7gA3oYiK6vB5s"})


def test_prod_lists_every_problem_at_once_and_no_secret_values() -> None:
    secrets = {
        "session_secret": "Tail-Of-Session-XYZ",
        "oidc_client_secret": "oidc-Whole-Secret-Value-7f3a9c",
        "smtp_password": "smtp-Password-Value-4411",
        "upstash_redis_rest_token": "upstash-Token-Value-9e21",
    }
    with pytest.raises(ValidationError) as refused:
        make_settings(env="prod", dev_login=True, llm_base_url="https://api.example", **secrets)
    shown = f"{refused.value}\n{refused.value!r}"
    assert "input_value" not in shown  # pydantic would print the inputs, secrets included
    for problem in [
        "SESSION_SECRET is too weak",
        "DEV_LOGIN must be false",
        "OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are required",
        "RATE_LIMIT_STORE=memory",
        "LLM_API_KEY is a placeholder",
    ]:
        assert problem in shown
    for value in secrets.values():
        assert value not in shown and value[-8:] not in shown


BAD_PROD_ENV = {
    "ENV": "prod",
    "SESSION_SECRET": "Hunter2-Weak-Tail",
    "OIDC_CLIENT_ID": "",
    "OIDC_CLIENT_SECRET": "oidc-Real-Looking-Secret-5b7d",
    "LLM_BASE_URL": "https://api.openai.com/v1",
    "LLM_API_KEY": "sk-...",
    "DEV_LOGIN": "true",
    "METRICS_TOKEN": "...",
    "SMTP_PASSWORD": "smtp-Real-Looking-Password-82",
}


def test_python_m_app_refuses_a_bad_prod_config_cleanly(tmp_path: Path) -> None:
    """No traceback, every problem listed, not one secret value echoed, non-zero exit."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=tmp_path,  # no .env here
        env={**env, **BAD_PROD_ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert "ragship cannot start" in result.stderr
    for problem in [
        "SESSION_SECRET is too weak",
        "DEV_LOGIN must be false",
        "OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are required",
        "RATE_LIMIT_STORE=memory",
        "LLM_API_KEY is a placeholder",
        "METRICS_TOKEN is a placeholder",
    ]:
        assert problem in result.stderr
    for name in ("SESSION_SECRET", "OIDC_CLIENT_SECRET", "SMTP_PASSWORD"):
        value = BAD_PROD_ENV[name]
        assert value not in output and value[-8:] not in output, f"{name} was echoed"


def test_worker_processes_default_to_the_cpu_count_in_prod_on_a_shared_database() -> None:
    assert make_settings().workers == 1  # dev
    assert make_settings(**PROD).workers == 1  # embedded database: one process owns it
    shared = make_settings(**PROD, database_url="postgresql://db.internal/ragship")
    assert shared.workers == (os.cpu_count() or 1)
    assert make_settings(**PROD, database_url=shared.database_url, web_concurrency=3).workers == 3


def test_several_workers_need_a_shared_store_and_database() -> None:
    with pytest.raises(ValidationError) as err:
        make_settings(web_concurrency=2)
    assert "WEB_CONCURRENCY above 1 needs a shared RATE_LIMIT_STORE" in str(err.value)
    assert "WEB_CONCURRENCY above 1 needs DATABASE_URL" in str(err.value)
    make_settings(
        web_concurrency=2,
        rate_limit_store="redis://127.0.0.1:6379/0",
        database_url="postgresql://127.0.0.1/ragship",
    )


def test_a_query_embedding_alone_gets_more_threads_only_when_asked() -> None:
    assert make_settings().embed_idle_threads == 1  # off: every query on EMBED_THREADS
    assert make_settings(embed_idle_threads=2).embed_idle_threads == 2
    with pytest.raises(ValidationError):
        make_settings(embed_idle_threads=0)
