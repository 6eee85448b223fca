"""Sharded global counters (GLOBAL_COUNTER_SHARDS, migration 0019): the global caps stay
exact under concurrency and across processes, every shard keeps within its share, and a
call settles on the shards it reserved on. Real PostgreSQL, real processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.caps import budget
from app.caps.refusal import GLOBAL_DAILY, MONTHLY, CapRefused
from app.db import make_async_engine, make_sync_engine
from tests.conftest import eventually, make_settings, scalar
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
    # every outcome is an admission or a refusal: a deadlock or pool timeout is neither
    assert sorted(set(flat)) == sorted({"allowed", GLOBAL_DAILY}), Counter(flat)
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


_SHARD_ROW = text(
    "INSERT INTO spend_counters (scope, period, spent_usd, reserved_usd, shards, shard, "
    "share_usd, cap_usd) VALUES (:scope, :p, 0, :reserved, 2, :shard, 0.05, 0.10)"
)
_LOCK_SHARD = text("SELECT 1 FROM spend_counters WHERE scope = :scope AND period = :p FOR UPDATE")
_WAITING_ON = text(
    "SELECT pg_blocking_pids(pid) FROM pg_stat_activity "
    "WHERE query LIKE 'SELECT ragship_reserve(%' AND state = 'active'"
)


def test_a_reservation_waiting_for_the_whole_counter_holds_none_of_its_shards(
    new_database,
) -> None:  # type: ignore[no-untyped-def]
    """The root cause of the four-process test's failures (deadlocks, counted as admissions
    by its helper), made deterministic: a reservation whose wait for a held shard ends with
    that shard full must not keep it locked while it goes on to lock the whole counter.
    Otherwise two such reservations each hold a shard the other's step 3 waits for.

    Two day shards of $0.05 each under a $0.10 cap: shard 0 full, shard 1 with room for one
    $0.01 reservation. `a` holds shard 1 and `b` holds shard 0, as reservations in flight
    would. The reservation finds no free shard, waits for shard 1 (step 2); `a` fills shard 1
    and commits; the reservation then waits for shard 0 held by `b` (step 3). At that point
    shard 1 must be free: a third connection takes its lock with NOWAIT."""
    url = new_database()
    engine = make_sync_engine(url)
    day, _ = budget.periods()
    with engine.begin() as conn:
        conn.execute(_SHARD_ROW, {"scope": "global", "p": day, "reserved": "0.05", "shard": 0})
        conn.execute(_SHARD_ROW, {"scope": "global#1", "p": day, "reserved": "0.04", "shard": 1})
    settings = make_settings(
        user_daily_cap_usd=100,
        global_daily_cap_usd="0.10",
        monthly_budget_usd=100000,
        global_counter_shards=2,
    )
    outcome: list[object] = []

    def reserve() -> None:
        async def go() -> None:
            async_engine = make_async_engine(url)
            try:
                sessions = async_sessionmaker(async_engine, expire_on_commit=False)
                outcome.append(
                    await budget.reserve(
                        sessions, settings, user_id=uuid.uuid4(), amount=Decimal("0.01")
                    )
                )
            except BaseException as exc:  # the outcome is asserted below
                outcome.append(exc)
            finally:
                await async_engine.dispose()

        asyncio.run(go())

    a, b, c, watch = (engine.connect() for _ in range(4))
    worker = threading.Thread(target=reserve)
    try:
        a_pid = a.execute(text("SELECT pg_backend_pid()")).scalar_one()
        b_pid = b.execute(text("SELECT pg_backend_pid()")).scalar_one()
        a.execute(_LOCK_SHARD, {"scope": "global#1", "p": day})
        b.execute(_LOCK_SHARD, {"scope": "global", "p": day})
        worker.start()

        def blockers() -> list[int]:
            row = watch.execute(_WAITING_ON).first()
            watch.rollback()
            return list(row[0]) if row else []

        eventually(lambda: blockers() == [a_pid], what="the reservation waits for shard 1")
        a.execute(
            text("UPDATE spend_counters SET reserved_usd = 0.05 WHERE scope = :s AND period = :p"),
            {"s": "global#1", "p": day},
        )
        a.commit()  # shard 1 is full now
        eventually(lambda: blockers() == [b_pid], what="the reservation waits for shard 0")
        try:
            c.execute(text(f"{_LOCK_SHARD.text} NOWAIT"), {"scope": "global#1", "p": day})
        except OperationalError as exc:
            pytest.fail(f"the waiting reservation still holds shard 1 ({exc.orig})")
        c.rollback()
        b.rollback()
        worker.join(timeout=60)
        assert not worker.is_alive()
        [result] = outcome
        assert isinstance(result, CapRefused) and result.layer == GLOBAL_DAILY, result
    finally:
        for conn in (a, b, c, watch):
            conn.rollback()
            conn.close()
        worker.join(timeout=60)
        engine.dispose()
