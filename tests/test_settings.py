"""Settings validate at start: production refuses placeholder secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.conftest import make_settings

PROD = {
    "env": "prod",
    "session_secret": "s3cr3t-" * 4,
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
