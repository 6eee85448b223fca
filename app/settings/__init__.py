"""The one place ragship reads its configuration.

Every setting comes from the environment or `.env` (names are the field names in upper
case, e.g. ``DATABASE_URL``). Validation runs at start: a production deployment with a
placeholder secret refuses to start instead of running insecurely. No other module reads
``os.environ``; everything else receives a ``Settings`` instance.

The fields are declared by topic, one section class per module in this package
(``runtime``, ``signin``, ``llm``, ...); ``Settings`` combines them and validates the
whole. A new group of settings gets its own section module, listed below.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from app.settings.base import (
    GENERATE_SECRET,
    GUARDRAIL_RULES,
    LOCAL_MODEL_ID,
    LOCAL_MODEL_IDS,
    MIN_SECRET_CHARS,
    MIN_SECRET_DISTINCT_CHARS,
    is_placeholder,
)
from app.settings.cache import CacheSettings
from app.settings.capacity import CapacitySettings
from app.settings.caps import CapsSettings
from app.settings.chat import ChatSettings
from app.settings.context import ContextSettings
from app.settings.embedding import EmbeddingSettings
from app.settings.guardrails import GuardrailsSettings
from app.settings.llm import LLMSettings
from app.settings.observability import ObservabilitySettings
from app.settings.operator import OperatorSettings
from app.settings.quality import QualitySettings
from app.settings.relevance import RelevanceSettings
from app.settings.retrieval import RetrievalSettings
from app.settings.routing import RoutingSettings
from app.settings.runtime import RuntimeSettings
from app.settings.signin import SignInSettings

__all__ = ["LOCAL_MODEL_ID", "LOCAL_MODEL_IDS", "Settings", "get_settings"]


class Settings(
    RoutingSettings,
    QualitySettings,
    CacheSettings,
    ContextSettings,
    CapacitySettings,
    OperatorSettings,
    ChatSettings,
    GuardrailsSettings,
    ObservabilitySettings,
    CapsSettings,
    RelevanceSettings,
    RetrievalSettings,
    EmbeddingSettings,
    LLMSettings,
    SignInSettings,
    RuntimeSettings,
):
    # hide_input_in_errors: a ValidationError (and so a traceback or log) never shows values.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", hide_input_in_errors=True, allow_inf_nan=False
    )

    @field_validator(
        "allowed_emails", "allowed_domains", "admin_emails", "alert_email_to", mode="before"
    )
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip().lower().lstrip("@") for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return [str(v).strip().lower().lstrip("@") for v in value]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        """Every problem at once, one per line, so a deployment is fixed in one round.

        Messages name settings and never echo their values: several are secrets.
        """
        problems = []
        store = self.rate_limit_store
        if store != "memory" and not store.startswith(("redis", "unix://", "https://")):
            problems.append("RATE_LIMIT_STORE must be memory, redis[s]://, unix:// or https://")
        if store.startswith("https://") and self.upstash_redis_rest_token is None:
            problems.append("an Upstash RATE_LIMIT_STORE needs UPSTASH_REDIS_REST_TOKEN")
        longest = self.llm_total_timeout_s + self.llm_retry_budget_s + 60
        if self.reservation_ttl_s < longest:
            problems.append(
                f"RESERVATION_TTL_S must exceed the longest answer ({longest:.0f} s: "
                "LLM_TOTAL_TIMEOUT_S + LLM_RETRY_BUDGET_S + 60)"
            )
        if (self.web_concurrency or 1) > 1 and store == "memory":
            problems.append(
                "WEB_CONCURRENCY above 1 needs a shared RATE_LIMIT_STORE (Redis or Upstash): "
                "the memory store is per process"
            )
        if (self.web_concurrency or 1) > 1 and self.database_url is None:
            problems.append("WEB_CONCURRENCY above 1 needs DATABASE_URL (one shared PostgreSQL)")
        if self.chunk_overlap >= self.chunk_tokens:
            problems.append("CHUNK_OVERLAP must be smaller than CHUNK_TOKENS")
        if self.env == "prod":
            problems += self._prod_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _prod_problems(self) -> list[str]:
        problems = []
        session_secret = self.session_secret.get_secret_value()
        if is_placeholder(session_secret):
            problems.append(
                f"SESSION_SECRET is a placeholder: set a random value ({GENERATE_SECRET})"
            )
        elif (
            len(session_secret) < MIN_SECRET_CHARS
            or len(set(session_secret)) < MIN_SECRET_DISTINCT_CHARS
        ):
            problems.append(
                f"SESSION_SECRET is too weak: it needs at least {MIN_SECRET_CHARS} characters, "
                f"{MIN_SECRET_DISTINCT_CHARS} of them different ({GENERATE_SECRET})"
            )
        if self.dev_login is True:
            problems.append("DEV_LOGIN must be false in prod: it lets anyone sign in")
        if not self.oidc_client_id or is_placeholder(self.oidc_client_secret):
            problems.append("OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are required in prod")
        if self.rate_limit_store == "memory":
            problems.append(
                "RATE_LIMIT_STORE=memory is for one process only: use Redis or Upstash in prod"
            )
        if self.llm_base_url and is_placeholder(self.llm_api_key):
            problems.append("LLM_API_KEY is a placeholder: set the provider's key in prod")
        if self.metrics_token is not None and is_placeholder(self.metrics_token):
            problems.append("METRICS_TOKEN is a placeholder: set a random value or unset it")
        return problems

    @field_validator("guardrail_modes", mode="before")
    @classmethod
    def _modes(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [p.partition("=") for p in value.split(",") if p.strip()]
            value = {k.strip().lower(): v.strip().lower() for k, _, v in pairs}
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(GUARDRAIL_RULES))
            if unknown:
                raise ValueError(
                    f"unknown guardrail rule {', '.join(unknown)}: use {', '.join(GUARDRAIL_RULES)}"
                )
        return value

    @model_validator(mode="after")
    def _check_prices(self) -> Settings:
        pairs = (
            ("LLM_PRICE", self.llm_price_input_per_mtok, self.llm_price_output_per_mtok),
            (
                "LLM_FALLBACK_PRICE",
                self.llm_fallback_price_input_per_mtok,
                self.llm_fallback_price_output_per_mtok,
            ),
        )
        for prefix, inp, out in pairs:
            if (inp is None) != (out is None):
                raise ValueError(
                    f"set both {prefix}_INPUT_PER_MTOK and {prefix}_OUTPUT_PER_MTOK, or neither"
                )
        return self

    @property
    def dev_login_enabled(self) -> bool:
        return self.env == "dev" and self.dev_login is not False

    @property
    def secure_cookies(self) -> bool:
        return self.env != "dev"

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_client_id and self.oidc_client_secret)

    @property
    def workers(self) -> int:
        """Worker processes serving the port (WEB_CONCURRENCY; docs/configuration.md)."""
        return self.worker_count(self.env, shared_database=self.database_url is not None)

    @property
    def uses_local_model(self) -> bool:
        return self.llm_base_url is None


@lru_cache
def get_settings() -> Settings:
    return Settings()
