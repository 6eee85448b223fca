"""Giving a connection back without a task of its own (`app.db.closed`) against SQLAlchemy's
``async with`` exit, under a busy event loop, same run.

SQLAlchemy closes an `AsyncConnection` or `AsyncSession` leaving ``async with`` in a new
task behind `asyncio.shield` (`_run_to_completion`): three turns of the event loop before
the caller goes on, even when the close does no I/O. `app.db.autocommit_connection` (the
sign-in lookup, retrieval, the reservation) and `app.db.session_scope` (settling) close
with `app.db.closed` instead, in the caller's task. The former side here is that same code
with `closed` swapped for SQLAlchemy's own exit. Each of 50 lanes (50 concurrent answers
of one user, each in its own conversation) reserves (`budget.reserve`), then settles as
app/settle.py does (`session_scope`, the answer's statement, the ledger row and the tail);
50 relay tasks keep the loop as busy as 50 streaming answers (bench/settle_tail.py's
`relay`). A pool of 10 + 10, one temporary PostgreSQL, rounds alternating between sides.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio.base import _run_to_completion

from app import db
from app.calls import commit_call, record_call
from app.caps import budget
from app.settings import Settings
from app.settle_writes import Answer, write_answer
from bench.fixtures import bench_settings, temp_database
from bench.settle_tail import RELAYS, add_sides, alternate, relay
from bench.table import Table

NAME = "closes"
CONCURRENCY = 50
PER_LANE = 8  # calls per lane per round
ROUNDS = 4
AMOUNT = Decimal("0.002")
SIDES = ("SQLAlchemy's async with exit (former)", "app.db.closed")
ANSWER = "Run `make dev`, then open http://localhost:8000. " * 8
OURS = db.closed


async def _sqlalchemy_exit(resource: AsyncConnection | AsyncSession) -> None:
    """What ``async with engine.connect()`` and ``async with factory()`` do on exit."""
    await _run_to_completion(resource.close())


async def _settle(
    sessions: async_sessionmaker[AsyncSession], reservation: budget.Reservation, chat: uuid.UUID
) -> None:
    cost = AMOUNT / 2
    async with db.session_scope(sessions) as session:
        _, closed = await write_answer(
            session,
            Answer(chat, ANSWER, "ok", [], "bench-model", 100, 20, cost, None),
            reservation_id=reservation.id,
        )
        call = await record_call(
            session,
            rollups=False,
            user_id=reservation.user_id,
            conversation_id=chat,
            model="bench-model",
            status="ok",
            input_tokens=100,
            output_tokens=20,
            cost_usd=cost,
            reserved_usd=reservation.amount,
            reservation_id=reservation.id,
        )
        await commit_call(session, call, closed, cost=cost)


async def _lane(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    user: uuid.UUID,
    times: tuple[list[float], list[float]],
) -> None:
    chat = uuid.uuid4()
    async with db.session_scope(sessions) as session:
        await session.execute(
            text(
                "INSERT INTO conversations (id, owner, title, created_at, updated_at) "
                "VALUES (:id, :owner, 'bench', now(), now())"
            ),
            {"id": chat, "owner": str(user)},
        )
    reserve, settle = times
    for _ in range(PER_LANE):
        started = time.perf_counter()
        reservation = await budget.reserve(sessions, settings, user_id=user, amount=AMOUNT)
        reserved = time.perf_counter()
        await _settle(sessions, reservation, chat)
        reserve.append(reserved - started)
        settle.append(time.perf_counter() - reserved)


async def _round(url: str, ours: bool) -> tuple[list[float], list[float], float]:
    roomy = Decimal(100_000)
    settings = bench_settings(
        database_url=url,
        user_daily_cap_usd=roomy,
        global_daily_cap_usd=roomy,
        monthly_budget_usd=roomy,
    )
    db.closed = OURS if ours else _sqlalchemy_exit
    engine = db.make_async_engine(url, pool_size=10, max_overflow=10, ping_after_idle_s=30)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    times: tuple[list[float], list[float]] = ([], [])
    stop = asyncio.Event()
    relays = [asyncio.create_task(relay(stop)) for _ in range(RELAYS)]
    user = uuid.uuid4()
    try:
        started = time.perf_counter()
        await asyncio.gather(*(_lane(sessions, settings, user, times) for _ in range(CONCURRENCY)))
        return *times, CONCURRENCY * PER_LANE / (time.perf_counter() - started)
    finally:
        stop.set()
        await asyncio.gather(*relays)
        await engine.dispose()
        db.closed = OURS


def run() -> list[Table]:
    with temp_database() as url:
        sides = alternate(lambda ours: asyncio.run(_round(url, ours)), ROUNDS)
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
    return [table]
