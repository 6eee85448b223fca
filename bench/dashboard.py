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
from decimal import Decimal
from functools import partial
from itertools import accumulate
from typing import Any

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.caps.budget import GLOBAL, periods
from app.caps.killswitch import KILL_SWITCH
from app.db import make_async_engine, make_sync_engine
from app.llm.pricing import lookup
from app.observability import dashboard
from app.observability.rollups import LATENCY_BUCKETS_MS, N_BUCKETS, one_hot
from bench.fixtures import bench_settings, temp_database
from bench.table import DASH, Table, bounded, latency

NAME = "dashboard"
CALLS = 1_000_000
USERS = 3_000
DAYS = 90
SEED = 0.42
HEALTH_SHARE = 0.12  # one probe a minute is about 130,000 calls in 90 days
RUNS, WARMUP, BASELINE_RUNS = 20, 2, 5
MAX_SECONDS = 30.0  # per query
LIMIT_MS = 200.0
# Chat models and their shares (about $15 a day by the end, under the default $20 global
# daily cap); the health probe uses the first.
MODELS = (
    ("gpt-4o-mini-2024-07-18", 0.80),
    ("gpt-4.1-mini-2025-04-14", 0.14),
    ("gpt-4.1-2025-04-14", 0.04),
    ("gpt-4o-2024-08-06", 0.02),
)
# (admission, status, share of chat calls); "ok" takes the rest.
OUTCOMES = (
    ("allowed", "cancelled", 0.010),
    ("allowed", "error:server_error", 0.006),
    ("allowed", "error:rate_limit", 0.004),
    ("allowed", "error:first_token_timeout", 0.003),
    ("allowed", "error:total_timeout", 0.001),
    ("allowed", "error:bad_request", 0.0005),
    ("rate_limit", "refused", 0.025),
    ("concurrency", "refused", 0.005),
    ("user_daily_cap", "refused", 0.008),
    ("input_bounds", "refused", 0.003),
    ("global_daily_cap", "refused", 0.001),
    ("kill_switch", "refused", 0.0005),
)

_USERS = text(
    "INSERT INTO users (id, email, name, created_at) SELECT md5('user' || g)::uuid, "
    "'user' || g || '@example.com', 'User ' || g, now() - make_interval(days => :days) "
    "FROM generate_series(1, :users) AS g"
)
# Draws per call, then what follows from them. Time runs with g (ids in time order) and the
# density of calls grows linearly towards now; user u's share falls off as 1/sqrt(u).
_CALLS = text(
    "INSERT INTO llm_calls (created_at, user_id, feature, model, admission, status, "
    "input_tokens, output_tokens, cost_usd, ttft_ms, latency_ms, attempts, provider, trace_id) "
    "SELECT at, CASE WHEN health THEN NULL ELSE md5('user' || u)::uuid END, "
    "CASE WHEN health THEN 'health' ELSE 'chat' END, (CAST(:models AS text[]))[m], admission, "
    "status, inp, outp, CASE WHEN status IN ('ok', 'cancelled') THEN round((inp * "
    "(CAST(:price_in AS numeric[]))[m] + outp * (CAST(:price_out AS numeric[]))[m]) / 1e6, 6) "
    "ELSE 0 END, ttft, CASE WHEN status = 'error:total_timeout' THEN 180000 + 100 * slow "
    "WHEN ttft IS NOT NULL THEN ttft + outp * 12 * slow "
    "WHEN status = 'error:first_token_timeout' THEN 20000 + 50 * slow "
    "WHEN status LIKE 'error:%' THEN 900 * slow WHEN health THEN 400 * slow END, "
    "CASE WHEN status LIKE 'error:%' THEN 3 ELSE 1 END, 'api.openai.com', md5('t' || g) FROM ("
    "SELECT *, CASE WHEN NOT health AND status IN ('ok', 'cancelled', 'error:total_timeout') "
    "THEN 450 * slow END AS ttft, CASE WHEN admission <> 'allowed' THEN 0 WHEN health THEN 12 "
    "ELSE round(1400 * size)::int END AS inp, CASE WHEN health THEN 1 "
    "WHEN status = 'ok' THEN round(300 * size)::int "
    "WHEN status = 'cancelled' THEN round(300 * size * part)::int ELSE 0 END AS outp FROM ("
    "SELECT *, CASE WHEN health THEN 1 ELSE chat_m END AS m, "
    "CASE WHEN health THEN 'allowed' ELSE (CAST(:admissions AS text[]))[o] END AS admission, "
    "CASE WHEN health THEN 'ok' ELSE (CAST(:statuses AS text[]))[o] END AS status "
    "FROM (SELECT g, now() - make_interval(days => :days) * (1 - sqrt((g - 0.5) / :n)) AS at, "
    "random() < :health AS health, 1 + floor(:users * power(random(), 2))::int AS u, "
    "1 + width_bucket(random(), CAST(:model_cut AS float8[])) AS chat_m, "
    "1 + width_bucket(random(), CAST(:outcome_cut AS float8[])) AS o, "
    "exp(random_normal(0, 0.5)) AS size, exp(random_normal(0, 0.45)) AS slow, "
    "random() AS part FROM generate_series(1, :n) AS g) d) c) s"
)
# record_call's bucket is bisect_left(bounds, v): a value on a bound goes to the lower bucket.
# width_bucket counts the bounds <= its argument, hence the negated, reversed bounds. A
# group's histogram counts its bucket numbers, one slot per bucket 0..:last (NULL: none).
_ROLLUPS = text(
    "INSERT INTO call_rollups_hourly (hour, feature, model, outcome, calls, input_tokens, "
    "output_tokens, cost_usd, latency_hist, ttft_hist) SELECT hour, feature, model, outcome, "
    "calls, inp, outp, cost, "
    "ARRAY(SELECT count(v) FROM generate_series(0, :last) i LEFT JOIN unnest(lbs) v ON v = i "
    "GROUP BY i ORDER BY i), "
    "ARRAY(SELECT count(v) FROM generate_series(0, :last) i LEFT JOIN unnest(tbs) v ON v = i "
    "GROUP BY i ORDER BY i) "
    "FROM (SELECT date_trunc('hour', created_at) AS hour, feature, model, "
    "left(CASE WHEN admission = 'allowed' THEN status ELSE 'refused:' || admission END, 64) "
    "AS outcome, count(*) AS calls, sum(input_tokens) AS inp, sum(output_tokens) AS outp, "
    "sum(cost_usd) AS cost, "
    "array_agg(:last - width_bucket(-latency_ms, CAST(:neg_bounds AS numeric[]))) AS lbs, "
    "array_agg(:last - width_bucket(-ttft_ms, CAST(:neg_bounds AS numeric[]))) AS tbs "
    "FROM llm_calls GROUP BY 1, 2, 3, 4) g"
)
_BUCKETS = text(
    "SELECT :last - width_bucket(-v, CAST(:neg_bounds AS numeric[])) "
    "FROM unnest(CAST(:probes AS numeric[])) WITH ORDINALITY AS p(v, n) ORDER BY n"
)
_USER_ROLLUPS = text(
    "INSERT INTO user_rollups_daily (day, user_id, calls, cost_usd) "
    "SELECT (created_at AT TIME ZONE 'utc')::date, user_id, count(*), sum(cost_usd) "
    "FROM llm_calls WHERE user_id IS NOT NULL GROUP BY 1, 2"
)
_COUNTERS = text(
    "INSERT INTO spend_counters (scope, period, spent_usd) SELECT :scope, :period, "
    "coalesce(sum(cost_usd), 0) FROM llm_calls WHERE created_at >= :since"
)
_FLAG = text("INSERT INTO app_flags (key, enabled, updated_at) VALUES (:key, false, now())")
_CHECKS = {
    "calls, cost, latencies, ttfts": (
        "SELECT count(*), sum(cost_usd), count(latency_ms), count(ttft_ms) FROM llm_calls",
        "SELECT sum(calls), sum(cost_usd), sum((SELECT sum(x) FROM unnest(latency_hist) x)), "
        "sum((SELECT sum(x) FROM unnest(ttft_hist) x)) FROM call_rollups_hourly",
    ),
    "per-user calls, cost": (
        "SELECT count(*), sum(cost_usd) FROM llm_calls WHERE user_id IS NOT NULL",
        "SELECT sum(calls), sum(cost_usd) FROM user_rollups_daily",
    ),
}
_ROWS = text(
    "SELECT (SELECT count(*) FROM call_rollups_hourly), (SELECT count(*) FROM user_rollups_daily)"
)
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


def _check_buckets(conn: Connection, params: dict[str, Any]) -> None:
    probes = [0.0, 1e7] + [b + d for b in LATENCY_BUCKETS_MS for d in (-0.1, 0.0, 0.1)]
    got = conn.execute(_BUCKETS, {**params, "probes": probes}).scalars().all()
    want = [one_hot(v).index(1) for v in probes]
    if got != want:
        raise RuntimeError(f"SQL latency buckets differ from one_hot(): {got} != {want}")


def _per_mtok(model: str, **tokens: int) -> Decimal:
    price = lookup(model)
    assert price is not None, f"{model} has no price"
    return price.cost(**tokens)


def _generate(url: str) -> dict[str, Any]:
    chat_outcomes = [("allowed", "ok", 1 - sum(o[2] for o in OUTCOMES)), *OUTCOMES]
    params: dict[str, Any] = {
        "n": CALLS,
        "users": USERS,
        "days": DAYS,
        "health": HEALTH_SHARE,
        "models": [m for m, _ in MODELS],
        "price_in": [_per_mtok(m, input_tokens=1_000_000, output_tokens=0) for m, _ in MODELS],
        "price_out": [_per_mtok(m, input_tokens=0, output_tokens=1_000_000) for m, _ in MODELS],
        # width_bucket(random(), cuts) + 1 is index i with probability shares[i]
        "model_cut": list(accumulate(s for _, s in MODELS))[:-1],
        "admissions": [a for a, _, _ in chat_outcomes],
        "statuses": [s for _, s, _ in chat_outcomes],
        "outcome_cut": list(accumulate(s for _, _, s in chat_outcomes))[:-1],
    }
    buckets = {"last": N_BUCKETS - 1, "neg_bounds": sorted(-b for b in LATENCY_BUCKETS_MS)}
    now = datetime.now(UTC)
    day, month = periods(now)
    made: dict[str, Any] = {}
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            started = time.perf_counter()
            conn.execute(text("SELECT setseed(:seed)"), {"seed": SEED})
            conn.execute(_USERS, params)
            conn.execute(_CALLS, params)
            made["generate"] = time.perf_counter() - started
            started = time.perf_counter()
            _check_buckets(conn, buckets)
            conn.execute(_ROLLUPS, buckets)
            conn.execute(_USER_ROLLUPS)
            made["rollups"] = time.perf_counter() - started
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            for period, since in ((day, midnight), (month, midnight.replace(day=1))):
                conn.execute(_COUNTERS, {"scope": GLOBAL, "period": period, "since": since})
            conn.execute(_FLAG, {"key": KILL_SWITCH})
            for name, (raw_sql, rolled_sql) in _CHECKS.items():
                raw = conn.execute(text(raw_sql)).one()
                rolled = conn.execute(text(rolled_sql)).one()
                if tuple(raw) != tuple(rolled):
                    raise RuntimeError(f"rollups differ from llm_calls ({name}): {raw} {rolled}")
            made["rows"] = conn.execute(_ROWS).one()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            started = time.perf_counter()
            conn.execute(text("VACUUM ANALYZE"))
            made["vacuum"] = time.perf_counter() - started
    finally:
        engine.dispose()
    return made


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
        made = _generate(url)
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
