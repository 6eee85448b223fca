"""The admin dashboard's queries. All but the recent-calls list read the rollups only, so
they stay fast however many calls are recorded (bench/dashboard.py measures it at 1M)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.caps.budget import GLOBAL, periods
from app.caps.killswitch import is_paused
from app.models import utcnow
from app.observability.rollups import N_BUCKETS, percentile
from app.settings import Settings

_SPEND = text(
    "SELECT (hour AT TIME ZONE 'utc')::date AS day, model, feature, sum(cost_usd) AS cost, "
    "sum(calls) AS calls FROM call_rollups_hourly WHERE hour >= :since "
    "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
_TOP_USERS = text(
    "WITH totals AS MATERIALIZED (SELECT user_id, sum(cost_usd) AS cost, sum(calls) AS calls "
    "FROM user_rollups_daily WHERE day >= :since_day GROUP BY user_id), "
    "top AS ((SELECT user_id FROM totals ORDER BY cost DESC LIMIT :n) UNION "
    "(SELECT user_id FROM totals ORDER BY calls DESC LIMIT :n)) "
    "SELECT t.user_id, coalesce(u.email, '?') AS email, t.cost, t.calls FROM totals t "
    "JOIN top USING (user_id) LEFT JOIN users u ON u.id = t.user_id"
)
_LATENCY = text(
    "SELECT date_trunc(:unit, hour) AS bucket, i, sum(l) AS latency, sum(f) AS ttft "
    "FROM call_rollups_hourly, unnest(latency_hist, ttft_hist) WITH ORDINALITY AS u(l, f, i) "
    "WHERE hour >= :since AND feature = 'chat' AND outcome NOT LIKE 'refused:%' "
    "GROUP BY 1, 2 ORDER BY 1, 2"
)
_OUTCOMES = text(
    "SELECT date_trunc(:unit, hour) AS bucket, outcome, sum(calls) AS calls "
    "FROM call_rollups_hourly WHERE hour >= :since GROUP BY 1, 2 ORDER BY 1, 2"
)
_RECENT = text(
    "SELECT c.id, c.created_at, coalesce(u.email, '') AS email, c.feature, c.model, c.admission, "
    "c.status, c.input_tokens, c.output_tokens, c.cost_usd, c.ttft_ms, c.latency_ms, c.attempts, "
    "c.trace_id FROM llm_calls c LEFT JOIN users u ON u.id = c.user_id "
    "WHERE c.id < :before ORDER BY c.id DESC LIMIT :limit"
)
_ONE = text("SELECT * FROM llm_calls WHERE id = :id")
_COUNTER = text("SELECT spent_usd, reserved_usd FROM ragship_counter(:s, :p)")  # all shards


def _unit(days: int) -> str:
    return "hour" if days <= 2 else "day"


async def spend(session: AsyncSession, *, days: int) -> list[dict[str, Any]]:
    rows = await session.execute(_SPEND, {"since": utcnow() - timedelta(days=days)})
    return [
        {
            "day": r.day.isoformat(),
            "model": r.model,
            "feature": r.feature,
            "cost_usd": str(r.cost),
            "calls": int(r.calls),
        }
        for r in rows
    ]


async def top_users(
    session: AsyncSession, *, days: int, limit: int = 10
) -> dict[str, list[dict[str, Any]]]:
    since_day = (utcnow() - timedelta(days=days)).date()
    rows = [
        {
            "user_id": str(r.user_id),
            "email": r.email,
            "cost_usd": Decimal(r.cost),
            "calls": int(r.calls),
        }
        for r in await session.execute(_TOP_USERS, {"since_day": since_day, "n": limit})
    ]
    by_cost = sorted(rows, key=lambda r: (-r["cost_usd"], r["email"]))[:limit]
    by_calls = sorted(rows, key=lambda r: (-r["calls"], r["email"]))[:limit]
    for row in rows:
        row["cost_usd"] = str(row["cost_usd"])
    return {"by_spend": by_cost, "by_requests": by_calls}


async def latency(session: AsyncSession, *, days: int) -> list[dict[str, Any]]:
    hists: dict[datetime, tuple[list[int], list[int]]] = defaultdict(
        lambda: ([0] * N_BUCKETS, [0] * N_BUCKETS)
    )
    params = {"unit": _unit(days), "since": utcnow() - timedelta(days=days)}
    for r in await session.execute(_LATENCY, params):
        hists[r.bucket][0][r.i - 1] += int(r.latency)
        hists[r.bucket][1][r.i - 1] += int(r.ttft)
    return [
        {
            "t": t.isoformat(),
            "calls": sum(lat),
            "p50_ms": percentile(lat, 0.5),
            "p95_ms": percentile(lat, 0.95),
            "ttft_p50_ms": percentile(ttft, 0.5),
            "ttft_p95_ms": percentile(ttft, 0.95),
        }
        for t, (lat, ttft) in sorted(hists.items())
    ]


async def outcomes(session: AsyncSession, *, days: int) -> list[dict[str, Any]]:
    """Calls per time bucket by outcome: ok, error:<kind>, refused:<layer>, cancelled, ..."""
    buckets: dict[datetime, dict[str, int]] = defaultdict(dict)
    params = {"unit": _unit(days), "since": utcnow() - timedelta(days=days)}
    for r in await session.execute(_OUTCOMES, params):
        buckets[r.bucket][r.outcome] = int(r.calls)
    result = []
    for t, counts in sorted(buckets.items()):
        total = sum(counts.values())
        errors = sum(v for k, v in counts.items() if k.startswith("error:"))
        refusals = sum(v for k, v in counts.items() if k.startswith("refused"))
        result.append(
            {
                "t": t.isoformat(),
                "calls": total,
                "error_rate": errors / total,
                "refusal_rate": refusals / total,
                "by_outcome": counts,
            }
        )
    return result


async def recent_calls(
    session: AsyncSession, *, before: int | None, limit: int = 50
) -> list[dict[str, Any]]:
    rows = await session.execute(_RECENT, {"before": before or 2**62, "limit": limit})
    return [_jsonable(dict(r._mapping)) for r in rows]


async def one_call(session: AsyncSession, *, call_id: int) -> dict[str, Any] | None:
    row = (await session.execute(_ONE, {"id": call_id})).first()
    return _jsonable(dict(row._mapping)) if row else None


async def cap_state(session: AsyncSession, settings: Settings) -> dict[str, Any]:
    day, month = periods()
    daily = (await session.execute(_COUNTER, {"s": GLOBAL, "p": day})).first()
    monthly = (await session.execute(_COUNTER, {"s": GLOBAL, "p": month})).first()
    spent_day = Decimal(daily.spent_usd) if daily else Decimal(0)
    return {
        "global_spent_today_usd": str(spent_day),
        "global_reserved_now_usd": str(Decimal(daily.reserved_usd) if daily else Decimal(0)),
        "global_daily_cap_usd": str(settings.global_daily_cap_usd),
        "global_used_fraction": float(spent_day / settings.global_daily_cap_usd)
        if settings.global_daily_cap_usd
        else None,
        "spent_this_month_usd": str(Decimal(monthly.spent_usd) if monthly else Decimal(0)),
        "monthly_budget_usd": str(settings.monthly_budget_usd),
        "kill_switch": await is_paused(session),
    }


_GUARDRAILS = text(
    "SELECT rule, layer, count(*) FILTER (WHERE action = 'block') AS blocks, "
    "count(*) FILTER (WHERE action = 'flag') AS flags FROM guardrail_triggers "
    "WHERE created_at >= now() - make_interval(days => :days) "
    "GROUP BY rule, layer ORDER BY count(*) DESC"
)
_CHATS = text(
    "SELECT coalesce(sum(calls), 0) FROM call_rollups_hourly "
    "WHERE feature = 'chat' AND hour >= now() - make_interval(days => :days)"
)


async def guardrails(session: AsyncSession, *, days: int) -> list[dict[str, Any]]:
    """Triggers per rule over `days`: blocks, flags, and triggers per 1,000 chat requests
    (refused ones included), the rate the guardrail alert watches."""
    chats = int(await session.scalar(_CHATS, {"days": days}) or 0)
    rows = (await session.execute(_GUARDRAILS, {"days": days})).mappings()
    return [
        {
            **dict(r),
            "per_1000_requests": round(1000 * (r["blocks"] + r["flags"]) / chats, 2)
            if chats
            else None,
        }
        for r in rows
    ]


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, Decimal):
            out[key] = str(value)
        elif value is not None and not isinstance(value, (int, float, str, bool)):
            out[key] = str(value)
        else:
            out[key] = value
    return out
