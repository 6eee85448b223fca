"""The generated data of `python -m bench dashboard`: 90 days of calls made with set-based
SQL (a fixed seed), their rollups, and checks that the rollups match the raw rows.

`generate(url)` fills an empty migrated database and returns its timings in seconds
("generate", "rollups", "vacuum") and the row counts ("rows").
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from itertools import accumulate
from typing import Any

from sqlalchemy import Connection, text

from app.caps.budget import GLOBAL, periods
from app.caps.killswitch import KILL_SWITCH
from app.db import make_sync_engine
from app.llm.pricing import lookup
from app.observability.rollups import LATENCY_BUCKETS_MS, N_BUCKETS, one_hot

CALLS = 1_000_000
USERS = 3_000
DAYS = 90
SEED = 0.42
HEALTH_SHARE = 0.12  # one probe a minute is about 130,000 calls in 90 days
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


def generate(url: str) -> dict[str, Any]:
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
