"""The answer's writes when a call settles, under a busy event loop: one statement
(`app.settle_writes.write_answer`) against the four it replaced, same run.

Settling stores the answer and closes the reservation before the ledger row and the tail
(`commit_call`). Before 2026-12-03 that was four statements, one round trip each: lock the
conversation (`hold_conversation`), insert the message and move the conversation's
`updated_at` (`append_message`), close the reservation (`budget.close`). Now it is one
statement with data-modifying CTEs. Each of 50 lanes (50 concurrent answers of one user,
each in its own conversation) reserves, then settles; 50 relay tasks keep the event loop as
busy as 50 streaming answers (bench/settle_tail.py's `relay`). A pool of 10 + 10
connections, one temporary PostgreSQL, rounds alternating between the sides. Reported: the
reservation as the caller sees it (pool wait included), the settlement's transaction, and
calls per second. The sessions close as the app's do (`session_scope`, `app.db.closed`)
since 2026-12-03 06:00 UTC; the figures in docs/caps.md measured before that closed them
with SQLAlchemy's ``async with`` exit (bench/loop_turns.py compares the two).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.calls import commit_call, record_call
from app.caps import budget
from app.conversations import append_message, hold_conversation
from app.db import make_async_engine, session_scope
from app.settings import Settings
from app.settle_writes import Answer, write_answer
from bench.fixtures import bench_settings, temp_database
from bench.settle_tail import RELAYS, add_sides, alternate, busy_loop
from bench.table import Table

NAME = "settle_writes"
CONCURRENCY = 50
PER_LANE = 8  # calls per lane per round
ROUNDS = 3
AMOUNT = Decimal("0.002")
SIDES = ("four statements (former)", "one statement (write_answer)")
ANSWER = "Run `make dev`, then open http://localhost:8000. " * 8
SOURCES = [{"n": 1, "title": "Getting started", "section": "Run", "source": "a.md", "score": 0.5}]


async def _settle(
    sessions: async_sessionmaker[AsyncSession],
    reservation: budget.Reservation,
    conversation: uuid.UUID,
    one: bool,
) -> None:
    cost = AMOUNT / 2
    async with session_scope(sessions) as session:
        if one:
            _, closed = await write_answer(
                session,
                Answer(conversation, ANSWER, "ok", SOURCES, "bench-model", 100, 20, cost, None),
                reservation_id=reservation.id,
            )
        else:
            if await hold_conversation(session, conversation_id=conversation):
                await append_message(
                    session,
                    conversation_id=conversation,
                    role="assistant",
                    content=ANSWER,
                    sources=SOURCES,
                    model="bench-model",
                    input_tokens=100,
                    output_tokens=20,
                    cost_usd=cost,
                )
            closed = await budget.close(session, reservation_id=reservation.id)
        call = await record_call(
            session,
            rollups=False,
            user_id=reservation.user_id,
            conversation_id=conversation,
            model="bench-model",
            status="ok",
            input_tokens=100,
            output_tokens=20,
            cost_usd=cost,
            reserved_usd=reservation.amount,
            reservation_id=reservation.id,
        )
        await commit_call(session, call, closed, cost=cost)


async def lane(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    user: uuid.UUID,
    one: bool,
    times: tuple[list[float], list[float]],
) -> None:
    """One answer after another in a new conversation of ``user``: reserve, then settle
    (``one``: with `write_answer`, as app/settle.py does; else the former four statements),
    each reservation's and settlement's seconds appended to ``times``."""
    conversation = uuid.uuid4()
    async with session_scope(sessions) as session:
        await session.execute(
            text(
                "INSERT INTO conversations (id, owner, title, created_at, updated_at) "
                "VALUES (:id, :owner, 'bench', now(), now())"
            ),
            {"id": conversation, "owner": str(user)},
        )
    reserve, settle = times
    for _ in range(PER_LANE):
        started = time.perf_counter()
        reservation = await budget.reserve(sessions, settings, user_id=user, amount=AMOUNT)
        reserved = time.perf_counter()
        await _settle(sessions, reservation, conversation, one)
        reserve.append(reserved - started)
        settle.append(time.perf_counter() - reserved)


async def settle_round(
    url: str, one: bool, *, ping_after_idle_s: float = 0
) -> tuple[list[float], list[float], float]:
    """50 `lane`s at once under `busy_loop`, on a pool of 10 + 10 (``ping_after_idle_s`` as
    `make_async_engine`'s: 0 checks a connection at every checkout); returns (reservation
    times, settlement times, calls per second)."""
    roomy = Decimal(100_000)
    settings = bench_settings(
        database_url=url,
        user_daily_cap_usd=roomy,
        global_daily_cap_usd=roomy,
        monthly_budget_usd=roomy,
    )
    engine = make_async_engine(
        url, pool_size=10, max_overflow=10, ping_after_idle_s=ping_after_idle_s
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    times: tuple[list[float], list[float]] = ([], [])
    user = uuid.uuid4()
    try:
        async with busy_loop():
            started = time.perf_counter()
            await asyncio.gather(
                *(lane(sessions, settings, user, one, times) for _ in range(CONCURRENCY))
            )
            return *times, CONCURRENCY * PER_LANE / (time.perf_counter() - started)
    finally:
        await engine.dispose()


def run() -> list[Table]:
    with temp_database() as url:
        sides = alternate(lambda one: asyncio.run(settle_round(url, one)), ROUNDS)
    table = Table(
        f"The answer's writes when settling, {CONCURRENCY} concurrent calls of one user, "
        f"event loop busy with {RELAYS} relays: {ROUNDS} rounds × {CONCURRENCY * PER_LANE} "
        "calls per side, alternating",
        ["answer's writes", "reserve p50 / p95 ms", "settle p50 / p95 ms", "calls/s"],
    )
    add_sides(table, SIDES, sides)
    table.notes += [
        "reserve: budget.reserve (one statement) for the lanes' one user, pool wait included",
        "settle: the answer's writes, the ledger row, then the counters, rollups and COMMIT "
        "(commit_call: one round trip); the settling transaction holds a pool connection "
        "throughout",
    ]
    return [table]
