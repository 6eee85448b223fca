"""How a cap layer says no: which layer, the HTTP status, a message for the person."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.settings import Settings

# Layers, in the order the chain checks them.
OVERLOADED = "overloaded"  # this replica is at MAX_INFLIGHT_ADMISSIONS (app/caps/overload.py)
INPUT_BOUNDS = "input_bounds"
RATE_LIMIT = "rate_limit"
CONCURRENCY = "concurrency"
STORE_DOWN = "store_unavailable"
KILL_SWITCH = "kill_switch"
REQUEST_COST = "request_cost"
USER_DAILY = "user_daily_cap"
GLOBAL_DAILY = "global_daily_cap"
MONTHLY = "monthly_budget"


@dataclass
class CapRefused(Exception):
    layer: str
    status: int
    message: str
    retry_after_s: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, self.retry_after_s))
        return headers


def seconds_to_midnight_utc(now: datetime | None = None) -> int:
    """Seconds until the next 00:00 UTC (when the daily caps reset), rounded up."""
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((midnight - now).total_seconds()) + 1


def cap_refused(layer: str, settings: Settings, amount: Decimal) -> CapRefused:
    """The refusal by the kill switch, the per-request maximum or a spending cap
    (`KILL_SWITCH` to `MONTHLY`) of a request of ``amount`` USD, as the person reads it;
    `MONTHLY` for any other name."""
    if layer == KILL_SWITCH:
        return CapRefused(KILL_SWITCH, 503, "The assistant is paused by the operator.")
    if layer == REQUEST_COST:
        return CapRefused(
            REQUEST_COST,
            413,
            f"This question with its context could cost ${amount:.4f}, more than the "
            f"per-request limit of ${settings.max_request_cost_usd}. Try a shorter question "
            "or a new conversation.",
        )
    until_midnight = seconds_to_midnight_utc()
    hours, minutes = divmod(until_midnight // 60, 60)
    if layer == USER_DAILY:
        return CapRefused(
            layer,
            429,
            f"You've reached today's limit of ${settings.user_daily_cap_usd}. "
            f"It resets at 00:00 UTC (in {hours}h {minutes:02d}m).",
            retry_after_s=until_midnight,
        )
    if layer == GLOBAL_DAILY:
        return CapRefused(
            layer,
            503,
            "The assistant is paused for today: the service's daily budget is used up. "
            f"It resumes at 00:00 UTC (in {hours}h {minutes:02d}m).",
            retry_after_s=until_midnight,
        )
    return CapRefused(MONTHLY, 503, "The assistant is paused: this month's budget is used up.")
