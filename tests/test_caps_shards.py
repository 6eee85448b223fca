"""Sharded global counters (GLOBAL_COUNTER_SHARDS, migration 0019): the global caps stay
exact under concurrency and across processes, every shard keeps within its share, and a
call settles on the shards it reserved on. Real PostgreSQL, real processes."""

from __future__ import annotations

import multiprocessing
import uuid
from decimal import Decimal

from sqlalchemy import Engine, text

from app.caps import budget
from app.caps.refusal import GLOBAL_DAILY, MONTHLY
from app.db import make_sync_engine
from tests.conftest import scalar
from tests.test_caps_budget import _reserve_in_own_process, _run_reservations

SHARDS = 8

_SHARD_ROWS = text(
    "SELECT shard, spent_usd, reserved_usd, share_usd, cap_usd FROM spend_counters "
    "WHERE period = :p AND scope = ANY (ragship_shard_scopes('global', :p)) ORDER BY shard"
)


def _check_shares(engine: Engine, period: str, cap: Decimal) -> list[tuple[int, Decimal]]:
    """Every shard within its share, the shares adding up to the cap; (shard, spent+reserved)."""
    with engine.connect() as conn:
        rows = conn.execute(_SHARD_ROWS, {"p": period}).all()
    assert [r.shard for r in rows] == list(range(SHARDS))
    assert all(r.spent_usd + r.reserved_usd <= r.share_usd for r in rows)
    assert sum(r.share_usd for r in rows) == cap and {r.cap_usd for r in rows} == {cap}
    return [(r.shard, r.spent_usd + r.reserved_usd) for r in rows]


def test_sharded_global_caps_hold_exactly_across_four_processes(new_database) -> None:  # type: ignore[no-untyped-def]
    """Four replicas reserve at once against one sharded global daily cap: exactly
    cap / amount are admitted, however the amounts fall among the shards."""
    url = new_database()
    overrides = {
        "user_daily_cap_usd": 100,
        "global_daily_cap_usd": "0.60",
        "monthly_budget_usd": 100000,
        "global_counter_shards": SHARDS,
    }
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        outcomes = pool.starmap(_reserve_in_own_process, [(url, overrides, 40)] * 4)
    flat = [o for process in outcomes for o in process]
    assert flat.count("allowed") == 60 and flat.count(GLOBAL_DAILY) == 100
    engine = make_sync_engine(url)
    day, month = budget.periods()
    total = "SELECT spent_usd + reserved_usd FROM ragship_counter('global', :p)"
    assert scalar(engine, total, p=day) == Decimal("0.60")
    assert scalar(engine, total, p=month) == Decimal("0.60")  # a refusal leaves no trace
    assert scalar(engine, "SELECT sum(amount_usd) FROM reservations") == Decimal("0.60")
    used = _check_shares(engine, day, Decimal("0.60"))
    assert sum(1 for _, amount in used if amount > 0) > 1, "the reservations used one shard"
    engine.dispose()


def test_sharded_counters_settle_on_the_shards_reserved(new_database) -> None:  # type: ignore[no-untyped-def]
    """100 users × 5 at once against a $1.00 daily cap on 8 shards: exactly 100 admitted,
    and once every call is settled nothing stays reserved on any shard."""
    url = new_database()
    results = _run_reservations(
        url,
        {
            "user_daily_cap_usd": 100,
            "global_daily_cap_usd": "1.00",
            "monthly_budget_usd": 100000,
            "global_counter_shards": SHARDS,
        },
        [uuid.uuid4() for _ in range(100)] * 5,
        "0.01",
    )
    assert sum(isinstance(r, budget.Reservation) for r in results) == 100
    engine = make_sync_engine(url)
    day, month = budget.periods()
    for period in (day, month):
        assert scalar(
            engine, "SELECT spent_usd FROM ragship_counter('global', :p)", p=period
        ) == Decimal("1.00")
        assert (
            scalar(
                engine,
                "SELECT count(*) FROM spend_counters WHERE period = :p AND reserved_usd <> 0",
                p=period,
            )
            == 0
        )
    _check_shares(engine, day, Decimal("1.00"))
    engine.dispose()


def test_the_monthly_budget_is_exact_on_shards_too(new_database) -> None:  # type: ignore[no-untyped-def]
    url = new_database()
    results = _run_reservations(
        url,
        {
            "user_daily_cap_usd": 100,
            "global_daily_cap_usd": 100,
            "monthly_budget_usd": "0.13",
            "global_counter_shards": SHARDS,
        },
        [uuid.uuid4() for _ in range(40)],
        "0.01",
    )
    assert sum(isinstance(r, budget.Reservation) for r in results) == 13
    assert {r.layer for r in results if isinstance(r, BaseException)} == {MONTHLY}
    engine = make_sync_engine(url)
    day, _ = budget.periods()
    # the day counter gave back what the month refused: 13 calls' worth on it, no more
    assert scalar(
        engine, "SELECT spent_usd + reserved_usd FROM ragship_counter('global', :p)", p=day
    ) == Decimal("0.13")
    engine.dispose()
