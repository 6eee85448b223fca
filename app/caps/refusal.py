"""How a cap layer says no: which layer, the HTTP status, a message for the person."""

from __future__ import annotations

from dataclasses import dataclass, field

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
