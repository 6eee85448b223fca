"""The one place ragship reads its configuration.

Every setting comes from the environment or `.env` (names are the field names in upper
case, e.g. ``DATABASE_URL``). Validation runs at start: a production deployment with a
placeholder secret refuses to start instead of running insecurely. No other module reads
``os.environ``; everything else receives a ``Settings`` instance.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
EmailList = Annotated[list[str], NoDecode]
GuardrailModes = Annotated[dict[str, Literal["on", "flag", "off"]], NoDecode]
GUARDRAIL_RULES = (  # app/guardrails/verdict.py lists them by layer
    "injection",
    "attack_similarity",
    "secrets_request",
    "moderation",
    "instruction_in_source",
    "prompt_leak",
    "secret",
    "citation",
    "markup",
    "planted_instruction",
)
# Lower-case; includes the examples in .env.example, which get copied as they are.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "change-me",
        "changeme",
        "secret",
        "password",
        "local",
        "sk-...",
        "gocspx-...",
        "...",
        "xxx",
    }
)
# A prod SESSION_SECRET needs this many characters, this many of them different: catches
# short or patterned values; `secrets.token_urlsafe(32)` gives 43 characters, ~30 different.
MIN_SECRET_CHARS = 32
MIN_SECRET_DISTINCT_CHARS = 10
GENERATE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
LOCAL_MODEL_ID = "ragship-local-1"
LOCAL_MODEL_IDS = (LOCAL_MODEL_ID, "ragship-local-1-mini")  # the second serves as a fallback


class Settings(BaseSettings):
    # hide_input_in_errors: a ValidationError (and so a traceback or log) never shows values.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", hide_input_in_errors=True, allow_inf_nan=False
    )

    # --- runtime -------------------------------------------------------------------
    env: Literal["dev", "prod"] = Field("dev", description="dev (local) or prod.")
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe log level written."
    )
    log_format: Literal["text", "json"] | None = Field(
        None, description="text or json (one object per line). Unset: text in dev, json in prod."
    )
    session_secret: SecretStr = Field(
        SecretStr("change-me"), description="Secret for signing cookies; required in prod."
    )

    public_url: str | None = Field(
        None, description="The URL users reach ragship at, e.g. https://chat.example.com."
    )

    # --- sign-in -------------------------------------------------------------------
    oidc_discovery_url: str = Field(GOOGLE_DISCOVERY_URL, description="OpenID discovery URL.")
    oidc_client_id: str | None = Field(None, description="OAuth client id.")
    oidc_client_secret: SecretStr | None = Field(None, description="OAuth client secret.")
    allowed_emails: EmailList = Field(default_factory=list, description="Emails let in.")
    allowed_domains: EmailList = Field(default_factory=list, description="Domains let in.")
    admin_emails: EmailList = Field(default_factory=list, description="Admins' emails.")
    dev_login: bool | None = Field(
        None, description="Password-less dev sign-in on localhost. Unset: on in dev, off in prod."
    )
    session_idle_minutes: int = Field(480, ge=5, description="Idle time before sign-out.")
    session_max_hours: int = Field(168, ge=1, description="Longest a session lives.")

    # --- database ------------------------------------------------------------------
    database_url: str | None = Field(
        None,
        description="PostgreSQL with pgvector. Unset: an embedded server under DATA_DIR.",
    )
    data_dir: Path = Field(Path(".data"), description="Where embedded data lives.")
    db_pool_size: int = Field(10, ge=1, description="Database connections per replica.")

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
    provider_name: str = Field("OpenAI", description="Provider name on the status page.")
    status_probe_interval_s: float = Field(60.0, ge=1, description="Status prober period.")
    local_model_token_delay_s: float = Field(
        0.02, ge=0, le=5, description="Built-in local model: pause between streamed words."
    )

    # --- retrieval and ingest ------------------------------------------------------
    embedding_model_path: Path | None = Field(
        None, description="Local sentence-transformers model dir. Unset: bundled MiniLM."
    )
    docs_dir: Path = Field(Path("docs"), description="Corpus ingested at start in dev.")
    ingest_on_start: bool = Field(True, description="Ingest DOCS_DIR when `python -m app` starts.")
    migrate_on_start: bool = Field(
        True, description="Migrate when `python -m app` starts (off in prod: release step)."
    )
    chunk_tokens: int = Field(300, ge=32, le=2000, description="Tokens per chunk.")
    chunk_overlap: int = Field(40, ge=0, description="Tokens shared by adjacent chunks.")
    embed_batch_size: int = Field(64, ge=1, description="Chunks embedded per batch.")
    retrieval_top_k: int = Field(5, ge=1, le=50, description="Passages given to the model.")
    retrieval_candidates: int = Field(40, ge=1, le=500, description="Candidates per ranker.")
    retrieval_min_similarity: float = Field(
        0.25, ge=-1, le=1, description="Minimum cosine similarity for a passage."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")

    # --- cap chain (see docs/caps.md) ---------------------------------------------
    rate_limit_requests: int = Field(10, ge=1, description="Requests per user per window.")
    rate_limit_window_s: int = Field(60, ge=1, description="Sliding window length, seconds.")
    max_concurrent_streams: int = Field(2, ge=1, description="Answers in flight per user.")
    rate_limit_store: str = Field(
        "memory", description="memory, redis://host:6379/0, or an Upstash REST https:// URL."
    )
    upstash_redis_rest_token: SecretStr | None = Field(None, description="Upstash REST token.")
    rate_limit_store_timeout_s: float = Field(0.5, gt=0, le=10, description="Store time limit.")
    rate_limit_fail_open: bool = Field(False, description="Allow requests when the store is down.")
    user_daily_cap_usd: Decimal = Field(Decimal("0.50"), ge=0, description="Per user per day.")
    global_daily_cap_usd: Decimal = Field(Decimal("20"), ge=0, description="All users per day.")
    monthly_budget_usd: Decimal = Field(
        Decimal("300"), ge=0, description="All users per month; mirror the provider's hard cap."
    )
    max_request_cost_usd: Decimal = Field(Decimal("0.05"), gt=0, description="Per-request ceiling.")
    reservation_ttl_s: int = Field(900, ge=60, description="Unsettled reservations expire after.")

    # --- observability ---------------------------------------------------------------
    content_logging: Literal["full", "redacted", "none"] = Field(
        "redacted", description="Question/answer text in the call log: full, redacted or none."
    )
    retention_days: int = Field(
        30, ge=0, description="Days conversations and call-log content are kept (0: forever)."
    )
    metrics_token: SecretStr | None = Field(None, description="Bearer token for GET /metrics.")
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP collector base URL, e.g. http://localhost:4318."
    )
    otel_service_name: str = Field("ragship", description="service.name on exported spans.")

    # --- alerts (see docs/observability.md) ---------------------------------------
    alert_webhook_url: str | None = Field(None, description="Slack-compatible webhook URL.")
    alert_email_to: EmailList = Field(default_factory=list, description="Alert recipients.")
    smtp_host: str | None = Field(None, description="SMTP server for alert emails.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP user, if it needs one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_from: str = Field("ragship@localhost", description="Sender of alert emails.")
    alert_interval_s: float = Field(60.0, ge=1, description="How often alert rules run.")
    alert_cooldown_s: float = Field(3600.0, ge=0, description="One message per rule per this.")
    alert_spend_hour_factor: float = Field(3.0, gt=0, description="Hour spend vs trailing avg.")
    alert_spend_hour_usd: Decimal | None = Field(None, description="Absolute hourly spend alert.")
    alert_error_rate: float = Field(0.2, gt=0, le=1, description="Error rate over 5 minutes.")
    alert_refusal_rate: float = Field(0.5, gt=0, le=1, description="Refusal rate, 5 minutes.")
    alert_latency_factor: float = Field(3.0, gt=0, description="p95 over 5 min vs 24 h p95.")
    alert_min_calls: int = Field(10, ge=1, description="Calls needed before rates count.")
    alert_guardrail_triggers: int = Field(
        20, ge=1, description="Guardrail triggers in 5 minutes that raise an alert."
    )

    # --- guardrails (see docs/guardrails.md) ----------------------------------------
    guardrail_modes: GuardrailModes = Field(
        default_factory=dict, description="rule=on|flag|off, comma-separated (default: on)."
    )
    guardrail_attack_similarity: float = Field(
        0.75, gt=0, le=1.01, description="Cosine similarity to a known attack that blocks."
    )
    guardrail_moderation: bool = Field(False, description="Screen questions with /v1/moderations.")
    guardrail_moderation_model: str = Field(
        "omni-moderation-latest", description="Moderation model at the LLM upstream."
    )
    guardrail_pii_redaction: bool = Field(
        False, description="Mask emails, phone and card numbers before text goes upstream."
    )
    guardrail_hold_chars: int = Field(
        64, ge=0, le=1000, description="Characters held back so output checks run first."
    )

    # --- chat ----------------------------------------------------------------------
    history_messages: int = Field(6, ge=0, le=50, description="Prior messages sent along.")
    max_message_chars: int = Field(4000, ge=1, description="Longest accepted question.")

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
        if _is_placeholder(session_secret):
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
        if not self.oidc_client_id or _is_placeholder(self.oidc_client_secret):
            problems.append("OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are required in prod")
        if self.rate_limit_store == "memory":
            problems.append(
                "RATE_LIMIT_STORE=memory is for one process only: use Redis or Upstash in prod"
            )
        if self.llm_base_url and _is_placeholder(self.llm_api_key):
            problems.append("LLM_API_KEY is a placeholder: set the provider's key in prod")
        if self.metrics_token is not None and _is_placeholder(self.metrics_token):
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
    def uses_local_model(self) -> bool:
        return self.llm_base_url is None


def _is_placeholder(secret: SecretStr | str | None) -> bool:
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret or ""
    return value.strip().lower() in PLACEHOLDER_SECRETS


@lru_cache
def get_settings() -> Settings:
    return Settings()
