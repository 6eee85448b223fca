"""The service's connection pool, as each worker builds it (`app.db.service_engine`) with
the default settings, against the real PostgreSQL: a burst that needs every connection the
pool may hold opens them once, and the next burst reuses them. With the former defaults
(DB_POOL_SIZE 10, DB_MAX_OVERFLOW 10) every burst past ten connections closed the extra
ones as they came back and opened them again: at 50 concurrent answers one worker opened
about 70 PostgreSQL connections per 200 answers (issue 17)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, text

from app.db import service_engine
from tests.conftest import make_settings


def test_a_burst_reuses_every_connection_the_last_burst_opened(db_url: str) -> None:
    settings = make_settings(database_url=db_url)
    peak = settings.db_pool_size + settings.db_max_overflow  # the most a worker holds

    async def go() -> tuple[int, int, int]:
        engine = service_engine(settings)
        opened: list[Any] = []
        event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))

        async def burst() -> None:
            """`peak` checkouts out at the same time, each held until all are out."""
            out = 0
            all_out = asyncio.Event()

            async def hold() -> None:
                nonlocal out
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
                    out += 1
                    if out == peak:
                        all_out.set()
                    await all_out.wait()

            await asyncio.gather(*(hold() for _ in range(peak)))

        try:
            await burst()
            first = len(opened)
            for _ in range(3):
                await burst()
            return first, len(opened), engine.sync_engine.pool.checkedin()  # type: ignore[attr-defined]
        finally:
            await engine.dispose()

    first, total, idle = asyncio.run(go())
    assert first == peak  # the first burst needed every connection at once
    assert total == peak, f"later bursts opened {total - peak} connections again"
    assert idle == peak  # all of them kept, idle in the pool
