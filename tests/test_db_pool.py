"""The service's connection pool, as each worker builds it (`app.db.service_engine`) with
the default settings, against the real PostgreSQL.

- A burst that needs every connection the pool may hold opens them once, and the next
  burst reuses them. With the former defaults (DB_POOL_SIZE 10, DB_MAX_OVERFLOW 10) every
  burst past ten connections closed the extra ones as they came back and opened them
  again: at 50 concurrent answers one worker opened about 70 PostgreSQL connections per
  200 answers (issue 17).
- One request at a time gets the connection used last (LIFO), which skips the check a
  connection idle for DB_PING_AFTER_IDLE_S gets. First in, first out, each checkout took
  the connection idle longest, and paid that round trip at every step of the request."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import service_engine
from tests.conftest import make_settings


async def _burst(engine: AsyncEngine, size: int) -> None:
    """`size` checkouts out at the same time, each held until all are out."""
    out = 0
    all_out = asyncio.Event()

    async def hold() -> None:
        nonlocal out
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            out += 1
            if out == size:
                all_out.set()
            await all_out.wait()

    await asyncio.gather(*(hold() for _ in range(size)))


def test_a_burst_reuses_every_connection_the_last_burst_opened(db_url: str) -> None:
    settings = make_settings(database_url=db_url)
    peak = settings.db_pool_size + settings.db_max_overflow  # the most a worker holds

    async def go() -> tuple[int, int, int]:
        engine = service_engine(settings)
        opened: list[Any] = []
        event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))
        try:
            await _burst(engine, peak)
            first = len(opened)
            for _ in range(3):
                await _burst(engine, peak)
            return first, len(opened), engine.sync_engine.pool.checkedin()  # type: ignore[attr-defined]
        finally:
            await engine.dispose()

    first, total, idle = asyncio.run(go())
    assert first == peak  # the first burst needed every connection at once
    assert total == peak, f"later bursts opened {total - peak} connections again"
    assert idle == peak  # all of them kept, idle in the pool


def test_one_request_at_a_time_gets_the_connection_used_last(db_url: str) -> None:
    settings = make_settings(database_url=db_url)

    async def go() -> list[int]:
        engine = service_engine(settings)
        handed_out: list[int] = []
        event.listen(engine.sync_engine, "checkout", lambda dbapi, *_: handed_out.append(id(dbapi)))
        try:
            await _burst(engine, settings.db_pool_size)  # the pool is full of idle ones
            handed_out.clear()
            for _ in range(10):
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            return handed_out
        finally:
            await engine.dispose()

    handed_out = asyncio.run(go())
    assert len(handed_out) == 10
    assert len(set(handed_out)) == 1, f"{len(set(handed_out))} connections took turns"
