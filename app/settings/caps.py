"""The cap chain (see docs/caps.md)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings


class CapsSettings(BaseSettings):
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
    global_counter_shards: int = Field(
        1, ge=1, le=64, description="Rows per global day/month counter (from the next period)."
    )
    early_reservation: bool = Field(
        True, description="Reserve in the search's round trip, on a bound (docs/caps.md)."
    )
