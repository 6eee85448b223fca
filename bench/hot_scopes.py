"""The reservation's round trip with and without an ORM session around it.

`budget.reserve` (a new conversation's question riding along, as the chat path sends it)
runs on an `autocommit_connection` and sends its statement with `pipelined`; the baseline
is the former path, the same statement through an `autocommit_scope` session's `execute`.
Rounds alternate between the two on one temporary PostgreSQL; the columns are the median
and p95 of the wall time and of the event loop's own CPU time (`time.thread_time`) a call.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.caps import budget
from app.db import autocommit_scope, make_async_engine
from app.models import utcnow
from app.question import _MESSAGE, _NEW_CONVERSATION
from app.settings import Settings
from bench.fixtures import bench_settings, temp_database
from bench.table import Table, latency

NAME = "hot_scopes"
ROUNDS, CALLS = 5, 200
AMOUNT = Decimal("0.0001")


def _question(user: uuid.UUID) -> budget.AdmittedWrites:
    params = {"q_conversation": uuid.uuid4(), "q_content": "How do I ingest PDFs?",
              "q_role": "user", "q_status": "ok", "q_now": utcnow(), "q_owner": str(user),
              "q_title": "How do I ingest PDFs?"}  # fmt: skip
    return budget.AdmittedWrites(writes=(_NEW_CONVERSATION, _MESSAGE), params=params)


async def _with_session(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, user: uuid.UUID
) -> None:
    """The former `budget.reserve`: the same statement and values through the ORM session."""
    also = _question(user)
    day, month = budget.periods()
    params = {"id": uuid.uuid4(), "user_id": user, "user_scope": budget.user_scope(user),
              "global": budget.GLOBAL, "day": day, "month": month, "amount": AMOUNT,
              "user_cap": settings.user_daily_cap_usd, "day_cap": settings.global_daily_cap_usd,
              "month_cap": settings.monthly_budget_usd, "kill_switch": True, "ceiling": None,
              "ttl": settings.reservation_ttl_s, "shards": settings.global_counter_shards,
              **also.params, "allowed": budget.ALLOWED}  # fmt: skip
    async with autocommit_scope(sessions) as session:
        outcome = (await session.execute(budget._statement(also), params)).scalar_one()
    assert outcome == budget.ALLOWED, outcome


async def _measure(url: str) -> dict[str, tuple[list[float], list[float]]]:
    roomy = Decimal(10**7)  # no cap refuses a reservation here
    settings = bench_settings(
        user_daily_cap_usd=roomy, global_daily_cap_usd=roomy, monthly_budget_usd=roomy
    )
    engine = make_async_engine(url, ping_after_idle_s=30)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    user = uuid.uuid4()
    async with autocommit_scope(sessions) as session:
        await session.execute(
            text("INSERT INTO users (id, email, name, created_at) VALUES (:id, :e, 'b', now())"),
            {"id": user, "e": f"{user}@bench.test"},
        )

    async def ours() -> None:
        await budget.reserve(sessions, settings, user_id=user, amount=AMOUNT, kill_switch=True,
                             also=_question(user))  # fmt: skip

    sides: dict[str, Callable[[], Awaitable[None]]] = {
        "ORM session (autocommit_scope, execute), former": lambda: _with_session(
            sessions, settings, user
        ),
        "Core connection (autocommit_connection, pipelined)": ours,
    }
    samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in sides}
    try:
        for _ in range(ROUNDS):
            for name, call in sides.items():
                for _ in range(20):  # warm the pool, the statement caches, the counters' rows
                    await call()
                wall, cpu = samples[name]
                for _ in range(CALLS):
                    started, used = time.perf_counter(), time.thread_time()
                    await call()
                    wall.append(time.perf_counter() - started)
                    cpu.append(time.thread_time() - used)
    finally:
        await engine.dispose()
    return samples


def run() -> list[Table]:
    table = Table(
        "The reservation with its question: one call, ORM session against Core connection",
        ["path", "calls", "wall p50 ms", "wall p95 ms", "loop CPU p50 ms", "loop CPU p95 ms"],
    )
    with temp_database() as url:
        samples = asyncio.run(_measure(url))
    for name, (wall, cpu) in samples.items():
        w, c = latency(wall), latency(cpu)
        table.add(name, w.n, *(f"{v * 1000:.3f}" for v in (w.p50, w.p95, c.p50, c.p95)))
    table.notes.append(f"{ROUNDS} rounds of {CALLS} calls each, the two paths alternating")
    return [table]
