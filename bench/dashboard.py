"""The admin dashboard with 1,000,000 recorded calls: is every query under 200 ms?

Generates 90 days of calls with set-based SQL (a fixed seed): 3,000 users with a skewed
share of the traffic, four chat models priced from the price table, the health probe,
ok / cancelled / error:<kind> / refused:<layer> in realistic shares, log-normal tokens,
latencies and time to first token, ids in time order, traffic growing over the period.
The rollups are built from those rows with GROUP BY, bucketing latencies as recording
does, and checked against them. Each dashboard function is then timed through an
AsyncSession; the baseline computes the same views from the raw llm_calls table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import make_async_engine
from app.observability import dashboard
from bench.dashboard_data import CALLS, DAYS, SEED, USERS, generate
from bench.fixtures import bench_settings, temp_database
from bench.table import DASH, Table, bounded, latency

NAME = "dashboard"

RUNS, WARMUP, BASELINE_RUNS = 20, 2, 5
MAX_SECONDS = 30.0  # per query
LIMIT_MS = 200.0
# The baselines: the same views computed from the raw llm_calls table.
_RAW_SPEND = text(
    "SELECT (created_at AT TIME ZONE 'utc')::date AS day, model, feature, sum(cost_usd), "
    "count(*) FROM llm_calls WHERE created_at >= :since GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
_RAW_LATENCY = text(
    "SELECT date_trunc('day', created_at) AS day, count(latency_ms), percentile_cont(ARRAY[0.5, "
    "0.95]) WITHIN GROUP (ORDER BY latency_ms), percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP "
    "(ORDER BY ttft_ms) FROM llm_calls WHERE created_at >= :since AND feature = 'chat' "
    "AND admission = 'allowed' GROUP BY 1 ORDER BY 1"
)
_RAW_TOP = text(
    "WITH t AS MATERIALIZED (SELECT user_id, sum(cost_usd) AS cost, count(*) AS calls "
    "FROM llm_calls WHERE created_at >= :since AND user_id IS NOT NULL GROUP BY user_id) "
    "SELECT * FROM ((SELECT * FROM t ORDER BY cost DESC LIMIT 10) UNION "
    "(SELECT * FROM t ORDER BY calls DESC LIMIT 10)) top LEFT JOIN users u ON u.id = top.user_id"
)
# Baseline -> the dashboard query it stands for.
_BASELINES = (
    ("spend", _RAW_SPEND, (30, 90)),
    ("latency p50/p95", _RAW_LATENCY, (30, 90)),
    ("top users", _RAW_TOP, (30, 90)),
)


Query = Callable[[AsyncSession], Awaitable[Any]]


async def _raw(query: TextClause, days: int, session: AsyncSession) -> Any:
    since = datetime.now(UTC) - timedelta(days=days)
    return (await session.execute(query, {"since": since})).all()


def _queries() -> list[tuple[str, Query, int]]:
    settings = bench_settings()
    views: list[tuple[str, Query, int]] = []
    for days in (1, 7, 30, 90):
        views += [
            (f"spend, {days} d", partial(dashboard.spend, days=days), RUNS),
            (f"top users, {days} d", partial(dashboard.top_users, days=days), RUNS),
            (f"latency p50/p95, {days} d", partial(dashboard.latency, days=days), RUNS),
            (f"outcomes, {days} d", partial(dashboard.outcomes, days=days), RUNS),
        ]
    views += [
        ("cap state", partial(dashboard.cap_state, settings=settings), RUNS),
        ("recent calls, newest 50", partial(dashboard.recent_calls, before=None), RUNS),
        ("recent calls, before id 500k", partial(dashboard.recent_calls, before=500_000), RUNS),
        ("one call", partial(dashboard.one_call, call_id=CALLS // 2), RUNS),
    ]
    return views + [
        (f"raw llm_calls: {name}, {days} d", partial(_raw, query, days), BASELINE_RUNS)
        for name, query, days_list in _BASELINES
        for days in days_list
    ]


async def _time_queries(url: str) -> list[tuple[str, list[float]]]:
    engine = make_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    results = []
    try:
        for name, query, runs in _queries():
            async with sessions() as session:
                for _ in range(WARMUP):
                    await query(session)
                    await session.rollback()
                samples = []
                for _ in bounded(range(runs), max_seconds=MAX_SECONDS):
                    started = time.perf_counter()
                    await query(session)
                    samples.append(time.perf_counter() - started)
                    await session.rollback()  # one short transaction per request, as the app
            results.append((name, samples))
    finally:
        await engine.dispose()
    return results


def run() -> list[Table]:
    with temp_database() as url:
        made = generate(url)
        results = asyncio.run(_time_queries(url))
    table = Table(
        f"admin dashboard with {CALLS:,} recorded calls over {DAYS} days "
        f"({RUNS} runs per query, {BASELINE_RUNS} per raw baseline, after {WARMUP} warm-up)",
        ["query", "n", "p50 ms", "p95 ms", "max ms", f"max < {LIMIT_MS:.0f} ms", "raw / rollups"],
    )
    p50 = {name: latency(samples).p50 for name, samples in results}
    for name, samples in results:
        lat, worst = latency(samples), max(samples) * 1000
        raw = name.startswith("raw ")
        verdict = DASH if raw else ("PASS" if worst < LIMIT_MS else "FAIL")
        rolled = p50.get(name.removeprefix("raw llm_calls: "), 0.0)
        saving = f"x{lat.p50 / rolled:.1f}" if raw and rolled else DASH
        cells = (f"{v * 1000:.1f}" for v in (lat.p50, lat.p95))
        table.add(name, lat.n, *cells, f"{worst:.1f}", verdict, saving)
    table.notes += [
        f"generated {USERS:,} users and {CALLS:,} calls in {made['generate']:.1f}s "
        f"(seed {SEED}); rollups in {made['rollups']:.1f}s: "
        f"{made['rows'][0]:,} hourly rows, {made['rows'][1]:,} user-day rows; "
        f"VACUUM ANALYZE {made['vacuum']:.1f}s",
        "rollups checked equal to llm_calls: calls, cost, histogram totals, per-user calls "
        "and cost; SQL buckets = one_hot() at every bound",
        "dashboard rows read the rollups (recent calls / one call: llm_calls by primary key);",
        "  raw rows compute the same view from llm_calls (percentile_cont for the latency one)",
        "raw / rollups = raw p50 over the matching dashboard query's p50",
    ]
    return [table]
