"""`commit_with_tail` (app/db.py) against the real PostgreSQL: the tail and the rest of the
transaction commit or roll back together, and the COMMIT leaves with the tail, before the
server has answered it, so the tail's row locks never wait for this process; and
`pipelined`, which it sends them with, on a connection the server ended."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import text
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import commit_with_tail, make_async_engine, pipelined

CREATE = "CREATE TABLE IF NOT EXISTS tail_probe (id int PRIMARY KEY, n int NOT NULL)"
BUMP = text("UPDATE tail_probe SET n = n + :by WHERE id = 1 RETURNING n")


@pytest.fixture(scope="module")
def probe_url(new_database: Callable[[], str]) -> str:
    return new_database()


@asynccontextmanager
async def _probe(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the probe table, reset to the one row (1, 0)."""
    engine: AsyncEngine = make_async_engine(url, pool_size=2, max_overflow=0)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    async with factory() as session:
        await session.execute(text(CREATE))
        await session.execute(text("TRUNCATE tail_probe"))
        await session.execute(text("INSERT INTO tail_probe VALUES (1, 0)"))
        await session.commit()
    try:
        yield factory
    finally:
        await engine.dispose()


async def _rows(factory: async_sessionmaker[AsyncSession]) -> list[tuple[int, int]]:
    async with factory() as session:
        result = await session.execute(text("SELECT id, n FROM tail_probe ORDER BY id"))
        return [(r.id, r.n) for r in result]


def test_the_tail_commits_with_the_transaction_and_returns_each_first_row(probe_url: str) -> None:
    async def go() -> None:
        async with _probe(probe_url) as sessions, sessions() as session:
            await session.execute(text("INSERT INTO tail_probe VALUES (2, 7)"))
            no_row = text("UPDATE tail_probe SET n = 0 WHERE id = 3")
            rows = await commit_with_tail(session, [(BUMP, {"by": 5}), (no_row, {})])
            assert rows == [(5,), None]
            assert not session.in_transaction()
            assert await _rows(sessions) == [(1, 5), (2, 7)]

    asyncio.run(go())


def test_a_failing_tail_rolls_back_the_whole_transaction_with_sqlalchemys_error(
    probe_url: str,
) -> None:
    async def go() -> None:
        async with _probe(probe_url) as sessions, sessions() as session:
            await session.execute(text("INSERT INTO tail_probe VALUES (2, 7)"))
            with pytest.raises(DataError, match="division by zero"):
                await commit_with_tail(session, [(BUMP, {"by": 5}), (text("SELECT 1 / 0"), {})])
            await session.rollback()
            assert (await session.execute(text("SELECT count(*) FROM tail_probe"))).scalar() == 1
            assert await _rows(sessions) == [(1, 0)]

    asyncio.run(go())


def test_the_commit_is_sent_while_the_tail_still_waits_for_a_row_lock(
    probe_url: str, tmp_path: Path
) -> None:
    """Another transaction holds the row the tail updates, so the server cannot answer the
    tail's UPDATE. The client's COMMIT message must be written anyway (libpq traces each
    message as it writes it): sent only after the UPDATE's answer, as one statement at a
    time does, it would wait for this process's next turn while the row stays locked."""
    trace = tmp_path / "libpq.trace"
    dsn = probe_url.replace("postgresql+psycopg://", "postgresql://", 1)

    async def go() -> None:
        async with _probe(probe_url) as sessions:
            with psycopg.connect(dsn) as holder, trace.open("w") as sink:
                holder.execute("SELECT n FROM tail_probe WHERE id = 1 FOR UPDATE")
                async with sessions() as session:
                    await session.execute(text("SELECT 1"))  # the transaction has begun
                    connection = await session.connection()
                    raw = (await connection.get_raw_connection()).driver_connection
                    raw.pgconn.trace(sink.fileno())
                    raw.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
                    tail = asyncio.create_task(commit_with_tail(session, [(BUMP, {"by": 1})]))
                    try:
                        await _until(lambda: _sent_commit(trace), what="the COMMIT in the trace")
                        assert not tail.done()  # the UPDATE still waits for the row
                    finally:
                        holder.commit()  # the lock goes; the tail's transaction commits
                        rows = await asyncio.wait_for(tail, 30)
                        raw.pgconn.untrace()
                    assert rows == [(1,)]
            assert await _rows(sessions) == [(1, 1)]

    asyncio.run(go())


def _sent_commit(trace: Path) -> bool:
    """Whether libpq traced a message from the client (F) carrying COMMIT."""
    return any(line.startswith("F") and "COMMIT" in line for line in trace.read_text().splitlines())


async def _until(condition: Callable[[], bool], *, what: str, timeout_s: float = 30.0) -> None:
    """Wait for a condition this test's event loop makes true; fail after timeout_s."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_a_connection_lost_under_a_pipeline_is_invalidated_and_raised_as_sqlalchemys(
    probe_url: str,
) -> None:
    """The server ends the session's backend; the pipelined statements fail with
    SQLAlchemy's OperationalError (the 503 of app/http/overload.py), marked as a lost
    connection, and the pool never hands that connection out again."""
    dsn = probe_url.replace("postgresql+psycopg://", "postgresql://", 1)

    async def go() -> None:
        async with _probe(probe_url) as sessions:
            async with sessions() as session:
                pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                connection = await session.connection()
                with psycopg.connect(dsn, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s, 30000)", [pid])
                with pytest.raises(OperationalError) as lost:
                    await pipelined(session, [(BUMP, {"by": 1})], commit=False)
                assert lost.value.connection_invalidated
                assert connection.invalidated
            async with sessions() as session:  # the pool's next connection is a new backend
                again = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                assert again != pid
            assert await _rows(sessions) == [(1, 0)]

    asyncio.run(go())
