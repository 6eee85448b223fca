"""The LLM upstream: model, prices, timeouts, retries, breaker, status probing."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from app.settings.base import LOCAL_MODEL_ID


class LLMSettings(BaseSettings):
    # --- LLM upstream --------------------------------------------------------------
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL. Unset: the built-in local model."
    )
    llm_api_key: SecretStr = Field(SecretStr("local"), description="Upstream API key.")
    llm_model: str = Field(LOCAL_MODEL_ID, description="Pinned upstream model id.")
    llm_timeout_s: float = Field(60.0, gt=0, description="Upstream request timeout.")
    llm_max_tokens: int = Field(512, ge=1, le=32768, description="Max output tokens.")
    llm_temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    llm_fallback_model: str | None = Field(None, description="Model tried when the main one fails.")
    llm_price_input_per_mtok: Decimal | None = Field(
        None, ge=0, description="LLM_MODEL input price, USD per million tokens (overrides)."
    )
    llm_price_output_per_mtok: Decimal | None = Field(
        None, ge=0, description="LLM_MODEL output price, USD per million tokens (overrides)."
    )
    llm_fallback_price_input_per_mtok: Decimal | None = Field(
        None, ge=0, description="LLM_FALLBACK_MODEL input price, USD per million tokens."
    )
    llm_fallback_price_output_per_mtok: Decimal | None = Field(
        None, ge=0, description="LLM_FALLBACK_MODEL output price, USD per million tokens."
    )
    llm_context_window: int | None = Field(
        None, ge=256, description="LLM_MODEL context window in tokens (overrides the database)."
    )
    llm_max_retries: int = Field(2, ge=0, le=10, description="Retries after a failed attempt.")
    llm_retry_budget_s: float = Field(20.0, gt=0, description="Most time spent on retries.")
    llm_first_token_timeout_s: float = Field(20.0, gt=0, description="Wait for the first token.")
    llm_total_timeout_s: float = Field(180.0, gt=0, description="Longest a whole answer may take.")
    breaker_failures: int = Field(5, ge=1, description="Consecutive failures that open it.")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="Fail fast this long when open.")
    stream_heartbeat_s: float = Field(15.0, gt=0, description="Keep-alive comment interval.")
    shutdown_grace_s: float = Field(20.0, ge=0, description="Live answers may finish this long.")
    llm_health_cache_s: float = Field(
        60.0, ge=10, description="GET /health/llm result reuse (public: at least 10 s)."
    )
    provider_status_url: str | None = Field(
        None, description="Statuspage summary.json of the provider (OpenAI's, for example)."
    )
    provider_name: str | None = Field(
        None,
        description="Provider name on the status page (default: LLM_BASE_URL's host; "
        "hidden for the built-in model).",
    )
    status_probe_interval_s: float = Field(60.0, ge=1, description="Status prober period.")
    local_model_token_delay_s: float = Field(
        0.02, ge=0, le=5, description="Built-in local model: pause between streamed words."
    )
