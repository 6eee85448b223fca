"""Reservations at 50 concurrent: one global counter row against sharded ones, same run.

Two fresh databases on one temporary PostgreSQL, one with GLOBAL_COUNTER_SHARDS=1 (every
reservation updates the same global day and month rows) and one with 8; rounds alternate
between them. Each of 50 lanes, as a replica's admissions would, reserves
(`budget.reserve`: one `ragship_reserve` statement in autocommit) for a new user each time,
then settles the call in a transaction with one more round trip before its commit (standing
in for the ledger row `app/settle.py` writes there), with a pool of 10 + 10 connections
(the app's default until 2026-12-02). Reported: the reservation's latency as the caller
sees it (pool wait included) and calls per second through reserve + settle. Where a
reservation's time goes: until its statement is sent (pool wait and the event loop), the
statement itself (PostgreSQL's work, lock waits included, and the round trip), and after it
returns (the event loop), taken from SQLAlchemy's cursor events keyed by the reservation's
id.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import pgserver
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.caps import budget
from app.db import make_async_engine
from app.migrate import upgrade_to_head
from app.settings import Settings
from bench.fixtures import bench_settings
from bench.table import Table, latency

NAME = "reservations"
CONCURRENCY = 50
PER_LANE = 8  # calls per lane per round
ROUNDS = 3
SHARDS = (1, 8)
AMOUNT = Decimal("0.002")


Sent = dict[object, list[float]]  # reservation id -> [statement sent, statement returned]


async def _lane(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    took: list[float],
    parts: list[tuple[float, float, float]],
    sent: Sent,
) -> None:
    for _ in range(PER_LANE):
        started = time.perf_counter()
        reservation = await budget.reserve(
            sessions, settings, user_id=uuid.uuid4(), amount=AMOUNT, kill_switch=True
        )
        ended = time.perf_counter()
        took.append(ended - started)
        before, after = sent.pop(reservation.id)
        parts.append((before - started, after - before, ended - after))
        async with sessions() as session, session.begin():
            await budget.settle(session, reservation_id=reservation.id, cost=AMOUNT / 2)
            await session.execute(text("SELECT 1"))  # the ledger row's round trip


def _watch(engine: AsyncEngine, sent: Sent) -> None:
    """Record when each reservation's statement is sent and when it returns."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before(conn, cursor, statement, params, context, many):
        if isinstance(params, dict) and "shards" in params:
            sent[params["id"]] = [time.perf_counter(), 0.0]

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, many):
        if isinstance(params, dict) and "shards" in params:
            sent[params["id"]][1] = time.perf_counter()


Round = tuple[list[float], list[tuple[float, float, float]], float]


async def _round(url: str, shards: int) -> Round:
    settings = bench_settings(
        database_url=url,
        global_counter_shards=shards,
        global_daily_cap_usd=Decimal(10_000),
        monthly_budget_usd=Decimal(100_000),
    )
    engine = make_async_engine(url, pool_size=10, max_overflow=10)
    sent: Sent = {}
    _watch(engine, sent)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    took: list[float] = []
    parts: list[tuple[float, float, float]] = []
    try:
        started = time.perf_counter()
        await asyncio.gather(
            *(_lane(sessions, settings, took, parts, sent) for _ in range(CONCURRENCY))
        )
        return took, parts, CONCURRENCY * PER_LANE / (time.perf_counter() - started)
    finally:
        await engine.dispose()


def run() -> list[Table]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="ragship-bench-pg-") as tmp:
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            urls = {}
            for shards in SHARDS:
                name = f"bench_shards_{shards}_{uuid.uuid4().hex[:8]}"
                server.psql(f"CREATE DATABASE {name};")
                urls[shards] = server.get_uri(name).replace(
                    "postgresql://", "postgresql+psycopg://", 1
                )
                upgrade_to_head(urls[shards])
            samples: dict[int, list[float]] = {s: [] for s in SHARDS}
            split: dict[int, list[tuple[float, float, float]]] = {s: [] for s in SHARDS}
            rates: dict[int, list[float]] = {s: [] for s in SHARDS}
            for _ in range(ROUNDS):
                for shards in SHARDS:
                    took, parts, rate = asyncio.run(_round(urls[shards], shards))
                    samples[shards] += took
                    split[shards] += parts
                    rates[shards].append(rate)
        finally:
            server.cleanup()
    table = Table(
        f"Reservations at {CONCURRENCY} concurrent: {ROUNDS} rounds × {CONCURRENCY * PER_LANE} "
        "calls per side, alternating",
        [
            "global counter",
            "reserve p50 ms",
            "reserve p95 ms",
            "calls/s (reserve + settle)",
            "before statement p50/p95 ms",
            "statement p50/p95 ms",
            "after p50/p95 ms",
        ],
    )
    for shards in SHARDS:
        lat = latency(samples[shards])
        label = "one row (baseline)" if shards == 1 else f"{shards} shards"
        table.add(
            label,
            f"{lat.p50 * 1000:.1f}",
            f"{lat.p95 * 1000:.1f}",
            f"{sum(rates[shards]) / len(rates[shards]):.0f}",
            *(_p50_p95([p[i] for p in split[shards]]) for i in range(3)),
        )
    table.notes += [
        "reserve: budget.reserve as the chain calls it (kill switch read, user, global day, "
        "global month), pool wait included; each call is settled before the lane's next",
        "one temporary PostgreSQL (pgserver, fsync as configured there) for both sides",
        "before statement: pool wait + event loop; statement: ragship_reserve's round trip "
        "(server work, row-lock waits, commit); after: event loop until the caller resumes",
    ]
    return [table]


def _p50_p95(samples: list[float]) -> str:
    lat = latency(samples)
    return f"{lat.p50 * 1000:.1f} / {lat.p95 * 1000:.1f}"
