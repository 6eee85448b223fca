"""The admin dashboard with 1,000,000 recorded calls: every query under 200 ms?

Generates 90 days of calls (3,000 users, two models, realistic refusals and errors) with
set-based SQL, builds the rollups from them exactly as recording maintains them, then
times each dashboard query; the baseline is the same views computed from the raw table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import make_async_engine, make_sync_engine
from app.observability import dashboard
from app.observability.rollups import LATENCY_BUCKETS_MS, N_BUCKETS
from app.settings import Settings
from bench.fixtures import temp_database
from bench.table import Table, latency

CALLS = 1_000_000
RUNS = 15
LIMIT_MS = 200.0

_USERS = text(
    "INSERT INTO users (id, email, name, created_at) SELECT md5('u' || g)::uuid, "
    "'user' || g || '@example.com', 'User ' || g, now() FROM generate_series(1, 3000) g"
)
_CALLS = text(
    "INSERT INTO llm_calls (created_at, user_id, feature, model, admission, status, input_tokens, "
    "output_tokens, cost_usd, latency_ms, ttft_ms, attempts, provider) "
    "SELECT now() - random() * interval '90 days', md5('u' || (1 + (random() * 2999)::int))::uuid, "
    "CASE WHEN random() < 0.97 THEN 'chat' ELSE 'health' END, "
    "CASE WHEN random() < 0.8 THEN 'gpt-4o-mini-2024-07-18' ELSE 'gpt-4.1-2025-04-14' END, "
    "CASE WHEN r < 0.06 THEN 'rate_limit' WHEN r < 0.07 THEN 'user_daily_cap' ELSE 'allowed' END, "
    "CASE WHEN r < 0.07 THEN 'refused' WHEN r < 0.09 THEN 'error:server_error' "
    "WHEN r < 0.095 THEN 'cancelled' ELSE 'ok' END, "
    "800 + (random() * 1200)::int, 20 + (random() * 400)::int, "
    "CASE WHEN r < 0.07 THEN 0 ELSE round((0.0001 + random() * 0.002)::numeric, 6) END, "
    "CASE WHEN r < 0.07 THEN NULL ELSE 300 + random() * 4000 END, "
    "CASE WHEN r < 0.07 THEN NULL ELSE 100 + random() * 900 END, 1, 'api.openai.com' "
    "FROM (SELECT random() AS r FROM generate_series(1, :n)) s"
)
# A group's histograms: count its bucket numbers, one slot per bucket 0..:last.
_ROLLUPS = text(
    "INSERT INTO call_rollups_hourly (hour, feature, model, outcome, calls, input_tokens, "
    "output_tokens, cost_usd, latency_hist, ttft_hist) "
    "SELECT hour, feature, model, outcome, count(*), sum(input_tokens), sum(output_tokens), "
    "sum(cost_usd), "
    "(SELECT array_agg(coalesce(x.n, 0) ORDER BY i) FROM generate_series(0, :last) AS i "
    "LEFT JOIN (SELECT v, count(*) AS n FROM unnest(array_agg(lb)) AS v GROUP BY v) x "
    "ON x.v = i), "
    "(SELECT array_agg(coalesce(x.n, 0) ORDER BY i) FROM generate_series(0, :last) AS i "
    "LEFT JOIN (SELECT v, count(*) AS n FROM unnest(array_agg(tb)) AS v GROUP BY v) x "
    "ON x.v = i) "
    "FROM (SELECT date_trunc('hour', created_at) AS hour, feature, model, input_tokens, "
    "output_tokens, cost_usd, "
    "CASE WHEN admission = 'allowed' THEN status ELSE 'refused:' || admission END AS outcome, "
    "width_bucket(latency_ms, CAST(:bounds AS double precision[])) AS lb, "
    "width_bucket(ttft_ms, CAST(:bounds AS double precision[])) AS tb FROM llm_calls) c "
    "GROUP BY hour, feature, model, outcome"
)
_USER_ROLLUPS = text(
    "INSERT INTO user_rollups_daily (day, user_id, calls, cost_usd) "
    "SELECT (created_at AT TIME ZONE 'utc')::date, user_id, count(*), sum(cost_usd) "
    "FROM llm_calls WHERE user_id IS NOT NULL GROUP BY 1, 2"
)
_RAW_SPEND = text(
    "SELECT (created_at AT TIME ZONE 'utc')::date, model, feature, sum(cost_usd), count(*) "
    "FROM llm_calls WHERE created_at >= now() - interval '30 days' GROUP BY 1, 2, 3"
)
_RAW_P95 = text(
    "SELECT date_trunc('day', created_at), percentile_cont(0.95) WITHIN GROUP "
    "(ORDER BY latency_ms) FROM llm_calls WHERE created_at >= now() - interval '30 days' "
    "AND feature = 'chat' AND admission = 'allowed' GROUP BY 1"
)
_RAW_TOP = text(
    "SELECT user_id, sum(cost_usd) AS c FROM llm_calls WHERE created_at >= now() - "
    "interval '30 days' GROUP BY user_id ORDER BY c DESC LIMIT 10"
)


def _generate(url: str) -> dict[str, float]:
    engine = make_sync_engine(url)
    timings: dict[str, float] = {}
    try:
        with engine.begin() as conn:
            started = time.perf_counter()
            conn.execute(_USERS)
            conn.execute(_CALLS, {"n": CALLS})
            timings["generate"] = time.perf_counter() - started
            started = time.perf_counter()
            bounds = [float(b) for b in LATENCY_BUCKETS_MS]
            conn.execute(_ROLLUPS, {"bounds": bounds, "last": N_BUCKETS - 1})
            conn.execute(_USER_ROLLUPS)
            timings["rollups"] = time.perf_counter() - started
            raw = conn.execute(text("SELECT count(*), sum(cost_usd) FROM llm_calls")).one()
            rolled = conn.execute(
                text("SELECT sum(calls), sum(cost_usd) FROM call_rollups_hourly")
            ).one()
            assert tuple(raw) == tuple(rolled), (raw, rolled)  # the rollups are exact
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return timings


Query = Callable[[AsyncSession], Awaitable[Any]]


async def _cap_state(session: AsyncSession, *, settings: Settings) -> Any:
    return await dashboard.cap_state(session, settings)


async def _raw(query: TextClause, session: AsyncSession) -> Any:
    return (await session.execute(query)).all()


def _queries(settings: Settings) -> list[tuple[str, Query]]:
    views: list[tuple[str, Query]] = []
    for days in (1, 7, 30, 90):
        views += [
            (f"spend, {days} d", partial(dashboard.spend, days=days)),
            (f"top users, {days} d", partial(dashboard.top_users, days=days)),
            (f"latency p50/p95, {days} d", partial(dashboard.latency, days=days)),
            (f"errors and refusals, {days} d", partial(dashboard.outcomes, days=days)),
        ]
    views += [
        ("cap state", partial(_cap_state, settings=settings)),
        ("recent calls (50)", partial(dashboard.recent_calls, before=None)),
        ("one call", partial(dashboard.one_call, call_id=CALLS // 2)),
        ("baseline raw: spend per day, 30 d", partial(_raw, _RAW_SPEND)),
        ("baseline raw: p95 per day, 30 d", partial(_raw, _RAW_P95)),
        ("baseline raw: top users, 30 d", partial(_raw, _RAW_TOP)),
    ]
    return views


async def _time_queries(url: str) -> list[tuple[str, list[float]]]:
    engine = make_async_engine(url)
    sessions = async_sessionmaker(engine)
    settings = Settings(_env_file=None)
    results = []
    try:
        async with sessions() as session:
            for name, query in _queries(settings):
                await query(session)  # warm-up
                samples = []
                for _ in range(RUNS if not name.startswith("baseline") else 3):
                    started = time.perf_counter()
                    await query(session)
                    samples.append(time.perf_counter() - started)
                results.append((name, samples))
    finally:
        await engine.dispose()
    return results


def run() -> list[Table]:
    with temp_database() as url:
        made = _generate(url)
        results = asyncio.run(_time_queries(url))
    table = Table(
        f"admin dashboard with {CALLS:,} recorded calls over 90 days (p50/p95/max of {RUNS} runs)",
        ["query", "n", "p50 ms", "p95 ms", "max ms", f"< {LIMIT_MS:.0f} ms"],
    )
    for name, samples in results:
        lat = latency(samples)
        worst = max(samples) * 1000
        verdict = "-" if name.startswith("baseline") else ("PASS" if worst < LIMIT_MS else "FAIL")
        table.add(
            name, lat.n, f"{lat.p50 * 1000:.1f}", f"{lat.p95 * 1000:.1f}", f"{worst:.1f}", verdict
        )
    table.notes += [
        f"generated {CALLS:,} calls in {made['generate']:.1f}s; rollups built in "
        f"{made['rollups']:.1f}s and checked equal to the raw table (calls and cost)",
        "dashboard views read call_rollups_hourly / user_rollups_daily; baselines scan llm_calls",
    ]
    return [table]
