"""Rollups maintained as calls are recorded, so the dashboard never scans the call table.

`call_rollups_hourly` keeps counts, tokens, cost and latency histograms per hour, feature,
model and outcome; `user_rollups_daily` keeps calls and cost per user per day. Both are
updated in the transaction that records the call, with one upsert each.
"""

from __future__ import annotations

import bisect
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import TextClause, text

LATENCY_BUCKETS_MS = (
    50,
    100,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    5000,
    7500,
    10_000,
    15_000,
    30_000,
    60_000,
)
N_BUCKETS = len(LATENCY_BUCKETS_MS) + 1  # the last one is +Inf

_CALL_ROLLUP = text(
    "INSERT INTO call_rollups_hourly AS r (hour, feature, model, outcome, calls, input_tokens, "
    "output_tokens, cost_usd, latency_hist, ttft_hist) VALUES (date_trunc('hour', :at), :feature, "
    ":model, :outcome, 1, :inp, :out, :cost, :lat, :ttft) "
    "ON CONFLICT (hour, feature, model, outcome) DO UPDATE SET calls = r.calls + 1, "
    "input_tokens = r.input_tokens + :inp, output_tokens = r.output_tokens + :out, "
    "cost_usd = r.cost_usd + :cost, "
    "latency_hist = (SELECT array_agg(a + b ORDER BY i) FROM unnest(r.latency_hist, :lat) "
    "WITH ORDINALITY AS t(a, b, i)), "
    "ttft_hist = (SELECT array_agg(a + b ORDER BY i) FROM unnest(r.ttft_hist, :ttft) "
    "WITH ORDINALITY AS t(a, b, i))"
)
_USER_ROLLUP = text(
    "INSERT INTO user_rollups_daily AS r (day, user_id, calls, cost_usd) "
    "VALUES ((:at AT TIME ZONE 'utc')::date, :user_id, 1, :cost) "
    "ON CONFLICT (day, user_id) DO UPDATE SET calls = r.calls + 1, cost_usd = r.cost_usd + :cost"
)


def one_hot(value_ms: float | None) -> list[int]:
    hist = [0] * N_BUCKETS
    if value_ms is not None:
        hist[bisect.bisect_left(LATENCY_BUCKETS_MS, value_ms)] = 1
    return hist


def outcome_of(*, admission: str, status: str) -> str:
    return status if admission == "allowed" else f"refused:{admission}"


def rollup_statements(
    *,
    at: datetime,
    feature: str,
    model: str,
    outcome: str,
    user_id: uuid.UUID | None,
    input_tokens: int,
    output_tokens: int,
    cost_usd: Decimal,
    latency_ms: float | None,
    ttft_ms: float | None,
) -> list[tuple[TextClause, dict[str, Any]]]:
    """The upserts that add one call to the rollups: the hourly one, then the user's daily
    one (none for a call without a user)."""
    statements: list[tuple[TextClause, dict[str, Any]]] = [
        (
            _CALL_ROLLUP,
            {
                "at": at,
                "feature": feature,
                "model": model,
                "outcome": outcome[:64],
                "inp": input_tokens,
                "out": output_tokens,
                "cost": cost_usd,
                "lat": one_hot(latency_ms),
                "ttft": one_hot(ttft_ms),
            },
        )
    ]
    if user_id is not None:
        statements.append((_USER_ROLLUP, {"at": at, "user_id": user_id, "cost": cost_usd}))
    return statements


def percentile(hist: list[int], q: float) -> float | None:
    """The q-quantile (0..1) from a histogram, interpolated inside its bucket."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count and seen + count >= rank:
            low = LATENCY_BUCKETS_MS[i - 1] if i > 0 else 0
            high = LATENCY_BUCKETS_MS[i] if i < len(LATENCY_BUCKETS_MS) else LATENCY_BUCKETS_MS[-1]
            return low + (high - low) * (rank - seen) / count
        seen += count
    return float(LATENCY_BUCKETS_MS[-1])
