"""The request path's connection without an ORM session (`app.db.autocommit_connection`),
against the real PostgreSQL: each statement is committed as it runs (another connection
sees it before the scope ends), and the connection goes back to the pool out of
autocommit, so the next user's transaction still rolls back."""

from __future__ import annotations

import asyncio
import uuid

import anyio
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db import autocommit_connection, closed, make_async_engine, session_scope
from tests.conftest import scalar
from tests.tasks import started_tasks

EMAIL = "SELECT count(*) FROM users WHERE email = :e"
ADD = "INSERT INTO users (id, email, name, created_at) VALUES (:i, :e, 'x', now())"


def test_statements_commit_as_they_run_and_the_pool_gets_a_transactional_connection_back(
    db_url: str, db_engine: Engine
) -> None:
    first, second = f"{uuid.uuid4().hex}@a.test", f"{uuid.uuid4().hex}@a.test"

    async def go() -> int:
        engine = make_async_engine(db_url, pool_size=1, max_overflow=0)  # one connection
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            async with autocommit_connection(sessions) as connection:
                await connection.execute(text(ADD), {"i": uuid.uuid4(), "e": first})
                seen_inside = scalar(db_engine, EMAIL, e=first)  # another connection
            with pytest.raises(RuntimeError):
                async with session_scope(sessions) as session:  # the same pooled connection
                    await session.execute(text(ADD), {"i": uuid.uuid4(), "e": second})
                    raise RuntimeError("roll back")
            return int(seen_inside)  # type: ignore[call-overload]
        finally:
            await engine.dispose()

    assert asyncio.run(go()) == 1
    assert scalar(db_engine, EMAIL, e=second) == 0


def test_a_factory_without_an_async_engine_is_refused() -> None:
    async def go() -> None:
        async with autocommit_connection(async_sessionmaker()):
            pass

    with pytest.raises(TypeError, match="AsyncEngine"):
        asyncio.run(go())


def test_giving_connections_back_starts_no_task_and_survives_a_cancelled_caller(
    db_url: str,
) -> None:
    """`app.db.closed`: SQLAlchemy's ``async with`` exit closes in a task of its own behind
    `asyncio.shield` (three turns of a busy event loop for every request's checkouts);
    ours closes in the caller's task, and a caller cancelled inside the block (natively,
    or by a cancel scope) still gives its one connection back. Cancelled by a scope with a
    transaction open, the rollback and the release run shielded: the pool keeps the same
    server connection (an interrupted rollback made SQLAlchemy discard it)."""

    pid = text("SELECT pg_backend_pid()")

    async def go() -> tuple[list[object], int, int, list[int]]:
        engine = make_async_engine(db_url, pool_size=1, max_overflow=0, pool_timeout_s=2)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            with started_tasks() as created:
                async with autocommit_connection(sessions) as connection:
                    await connection.execute(text("SELECT 1"))
                async with session_scope(sessions) as session:
                    await session.execute(text("SELECT 1"))
            held = asyncio.Event()

            async def cancelled_inside() -> None:
                async with autocommit_connection(sessions):
                    held.set()
                    await asyncio.Event().wait()

            task = asyncio.create_task(cancelled_inside())
            await held.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            after_native = engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
            pids = []
            with anyio.CancelScope() as scope:
                async with session_scope(sessions) as session:  # a transaction is open
                    pids.append((await session.execute(pid)).scalar_one())
                    scope.cancel()
                    await anyio.sleep(3600)
            after_scope = engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
            async with autocommit_connection(sessions) as connection:
                pids.append((await connection.execute(pid)).scalar_one())
            own = await engine.connect()  # `closed` itself, with a transaction to roll back
            pids.append((await own.execute(pid)).scalar_one())
            with anyio.CancelScope() as scope:
                scope.cancel()
                await closed(own)
            async with autocommit_connection(sessions) as connection:
                pids.append((await connection.execute(pid)).scalar_one())
            return created, after_native, after_scope, pids
        finally:
            await engine.dispose()

    created, after_native, after_scope, pids = asyncio.run(go())
    assert created == []
    assert (after_native, after_scope) == (0, 0)
    assert len(set(pids)) == 1, pids
