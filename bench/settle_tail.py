"""Settling under a busy event loop: the shared rows sent with the COMMIT against one
statement at a time, same run.

A settlement writes the rows every call shares last (the counters, then the rollups), and
they stay locked until its COMMIT. `app.calls.commit_call` sends those statements and the
COMMIT in one round trip (psycopg's pipeline mode); the baseline sends them one at a time
(`budget.charge`, `rollup_call`, `session.commit()`), as settling did before, so each waits
for the event loop before the next is sent, with the rows locked.

Each of 50 lanes, as 50 concurrent answers from one user would, reserves for the same user
(`budget.reserve`: one statement), then settles in one transaction: close the reservation,
add the ledger row, then the tail. Alongside, 50 relay tasks keep the event loop as busy as
50 streaming answers: each spins 0.5 ms of CPU every 20 ms (issue 17 measured about 0.5 ms
of CPU per relayed token, tokens 20 ms apart). A pool of 10 + 10 connections (the app's
default until 2026-12-02), one temporary PostgreSQL, rounds alternating between the sides.
Reported: the reservation as the caller sees it (pool wait included), the settlement's
transaction, and calls per second.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.calls import commit_call, record_call, rollup_call
from app.caps import budget
from app.db import make_async_engine
from app.settings import Settings
from bench.fixtures import bench_settings, temp_database
from bench.table import Table, latency

NAME = "settle_tail"
CONCURRENCY = 50
RELAYS = 50
RELAY_CPU_S = 0.0005  # per relayed token (issue 17)
TOKEN_GAP_S = 0.02
PER_LANE = 8  # calls per lane per round
ROUNDS = 3
AMOUNT = Decimal("0.002")
SIDES = ("one statement at a time (baseline)", "with the COMMIT (commit_call)")


async def _settle(
    sessions: async_sessionmaker[AsyncSession], reservation: budget.Reservation, pipelined: bool
) -> None:
    cost = AMOUNT / 2
    async with sessions() as session:
        closed = await budget.close(session, reservation_id=reservation.id)
        call = await record_call(
            session,
            rollups=False,
            user_id=reservation.user_id,
            model="bench-model",
            status="ok",
            input_tokens=100,
            output_tokens=20,
            cost_usd=cost,
            reserved_usd=reservation.amount,
            reservation_id=reservation.id,
        )
        if pipelined:
            await commit_call(session, call, closed, cost=cost)
        else:
            session.add(call)  # flushed by the charge's execute, as before 2026-12-03
            if closed is not None:
                await budget.charge(session, closed, cost=cost)
            await rollup_call(session, call)
            await session.commit()


async def _lane(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    user: uuid.UUID,
    pipelined: bool,
    reserve: list[float],
    settle: list[float],
) -> None:
    for _ in range(PER_LANE):
        started = time.perf_counter()
        reservation = await budget.reserve(sessions, settings, user_id=user, amount=AMOUNT)
        reserved = time.perf_counter()
        await _settle(sessions, reservation, pipelined)
        reserve.append(reserved - started)
        settle.append(time.perf_counter() - reserved)


@asynccontextmanager
async def busy_loop(relays: int = RELAYS) -> AsyncIterator[None]:
    """The event loop kept busy by ``relays`` `relay` tasks while the block runs."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay(stop)) for _ in range(relays)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def relay(stop: asyncio.Event) -> None:
    """A streaming answer's share of the event loop: CPU per token, tokens TOKEN_GAP_S apart."""
    while not stop.is_set():
        await asyncio.sleep(TOKEN_GAP_S)
        spin_until = time.perf_counter() + RELAY_CPU_S
        while time.perf_counter() < spin_until:
            pass


Round = tuple[list[float], list[float], float]


async def _round(url: str, pipelined: bool) -> Round:
    settings = bench_settings(
        database_url=url,
        user_daily_cap_usd=Decimal(10_000),
        global_daily_cap_usd=Decimal(10_000),
        monthly_budget_usd=Decimal(100_000),
    )
    engine = make_async_engine(url, pool_size=10, max_overflow=10)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    reserve: list[float] = []
    settle: list[float] = []
    user = uuid.uuid4()
    try:
        async with busy_loop():
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    _lane(sessions, settings, user, pipelined, reserve, settle)
                    for _ in range(CONCURRENCY)
                )
            )
            return reserve, settle, CONCURRENCY * PER_LANE / (time.perf_counter() - started)
    finally:
        await engine.dispose()


def run() -> list[Table]:
    with temp_database() as url:
        sides = alternate(lambda pipelined: asyncio.run(_round(url, pipelined)), ROUNDS)
    table = Table(
        f"Settling at {CONCURRENCY} concurrent calls of one user, event loop busy with "
        f"{RELAYS} relays: {ROUNDS} rounds × {CONCURRENCY * PER_LANE} calls per side, "
        "alternating",
        ["shared rows sent", "reserve p50 / p95 ms", "settle p50 / p95 ms", "calls/s"],
    )
    add_sides(table, SIDES, sides)
    table.notes += [
        "reserve: budget.reserve (one statement) for the lanes' one user, pool wait included; "
        "its user counter row is locked by every settlement's charge until that COMMIT",
        "settle: close the reservation, the ledger row, then the counters and rollups and "
        "COMMIT; with commit_call all five leave in one round trip (the ledger row since "
        "2026-12-03)",
        f"relays: {RELAYS} tasks each spinning {RELAY_CPU_S * 1000:.1f} ms of CPU every "
        f"{TOKEN_GAP_S * 1000:.0f} ms, as streaming answers keep a worker's loop busy",
    ]
    return [table]


Sides = dict[bool, tuple[list[float], list[float], list[float]]]


def alternate(round_: Callable[[bool], Round], rounds: int) -> Sides:
    """Run ``round_`` for side False and side True, ``rounds`` times, the order swapped
    every round; per side, (reservation times, settlement times, calls per second of each
    round)."""
    sides: Sides = {False: ([], [], []), True: ([], [], [])}
    for n in range(rounds):
        for side in (False, True) if n % 2 == 0 else (True, False):
            took, settled, rate = round_(side)
            sides[side][0].extend(took)
            sides[side][1].extend(settled)
            sides[side][2].append(rate)
    return sides


def add_sides(table: Table, labels: tuple[str, str], sides: Sides) -> None:
    """One row per side (False, then True): reservation and settlement p50 / p95, and the
    mean of the rounds' calls per second."""
    for side, label in zip((False, True), labels, strict=True):
        reserve, settle, rates = sides[side]
        table.add(label, p50_p95(reserve), p50_p95(settle), f"{sum(rates) / len(rates):.0f}")


def p50_p95(samples: list[float]) -> str:
    """A table cell: p50 / p95 of ``samples`` (seconds), in milliseconds."""
    lat = latency(samples)
    return f"{lat.p50 * 1000:.1f} / {lat.p95 * 1000:.1f}"
