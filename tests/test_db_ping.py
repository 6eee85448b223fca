"""Pooled connections checked only after they sat idle (`DB_PING_AFTER_IDLE_S`), and a
database that cannot serve answered 503 with Retry-After, against the real PostgreSQL: its
backends are ended with `pg_terminate_backend`, as a restart or a proxy would drop them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, Engine, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker

from app.db import make_async_engine, make_sync_engine
from app.db_retry import run_idempotent
from tests.conftest import sign_in

BACKEND = text("SELECT pg_backend_pid()")


@pytest.fixture(scope="module")
def ping_url(new_database: Callable[[], str]) -> str:
    return new_database()


def _end_backends(admin: Engine, pids: list[int]) -> None:
    """End the backends and wait until each is gone (PostgreSQL's timeout argument)."""
    with admin.connect() as conn:
        for pid in pids:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid, 30000)"), {"pid": pid})


def _end_database_backends(conn: Connection, name: str | None) -> list[int]:
    """End every backend connected to database ``name`` and wait until each is gone; their
    pids."""
    pids = list(
        conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": name}
        ).scalars()
    )
    for pid in pids:
        conn.execute(text("SELECT pg_terminate_backend(:pid, 30000)"), {"pid": pid})
    return pids


async def _used_once(engine: AsyncEngine) -> int:
    """Check a connection out, use it, return it to the pool; its backend's pid."""
    async with async_sessionmaker(engine)() as session:
        pid = (await session.execute(BACKEND)).scalar_one()
    return int(pid)


def test_a_connection_used_moments_ago_is_not_checked_and_fails_once_then_is_replaced(
    ping_url: str,
) -> None:
    admin = make_sync_engine(ping_url)

    async def go() -> None:
        engine = make_async_engine(ping_url, pool_size=1, max_overflow=0, ping_after_idle_s=3600)
        try:
            pid = await _used_once(engine)
            assert await _used_once(engine) == pid  # the pool hands the same one back
            _end_backends(admin, [pid])
            with pytest.raises(OperationalError) as failed:
                await _used_once(engine)
            assert failed.value.connection_invalidated
            assert await _used_once(engine) != pid  # replaced
        finally:
            await engine.dispose()

    asyncio.run(go())
    admin.dispose()


def test_a_connection_idle_past_the_limit_is_checked_and_replaced_unseen(ping_url: str) -> None:
    admin = make_sync_engine(ping_url)
    idle_s = 0.05

    async def go() -> None:
        engine = make_async_engine(ping_url, pool_size=1, max_overflow=0, ping_after_idle_s=idle_s)
        try:
            pid = await _used_once(engine)
            _end_backends(admin, [pid])
            await asyncio.sleep(2 * idle_s)  # idle past the limit: the clock is what is tested
            assert await _used_once(engine) != pid  # checked, replaced, no error
        finally:
            await engine.dispose()

    asyncio.run(go())
    admin.dispose()


def test_zero_checks_every_connection_before_every_use(ping_url: str) -> None:
    admin = make_sync_engine(ping_url)

    async def go() -> None:
        engine = make_async_engine(ping_url, pool_size=1, max_overflow=0, ping_after_idle_s=0)
        try:
            pid = await _used_once(engine)
            _end_backends(admin, [pid])
            assert await _used_once(engine) != pid  # no idle wait needed
        finally:
            await engine.dispose()

    asyncio.run(go())
    admin.dispose()


def _app_on_its_own_database(start_app, new_database):  # type: ignore[no-untyped-def]
    """An app (no idle check: DB_PING_AFTER_IDLE_S 3600) on a new database; the database's
    name, and an engine on the server's `postgres` database to end its backends from."""
    url = new_database()
    server = start_app(database_url=url, db_ping_after_idle_s=3600)
    admin = make_sync_engine(make_url(url).set(database="postgres").render_as_string(False))
    return server, make_url(url).database, admin


def test_a_database_that_cannot_serve_is_a_503_with_retry_after_then_service_resumes(
    start_app,
    new_database,  # type: ignore[no-untyped-def]
) -> None:
    server, name, admin = _app_on_its_own_database(start_app, new_database)
    with sign_in(server.url, "dbdown@example.test") as client:
        assert client.get("/api/me").status_code == 200
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            _end_database_backends(conn, name)
            try:
                down = client.get("/api/me")
            finally:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        assert down.status_code == 503, down.text
        assert down.headers["Retry-After"] == "1"
        assert down.json()["layer"] == "database_unavailable"
        assert client.get("/api/me").status_code == 200
    admin.dispose()


def test_an_idempotent_lookup_skips_the_check_and_runs_again_when_its_connection_was_dropped(
    ping_url: str,
) -> None:
    """`run_idempotent` (the sign-in lookup's): handed the idle connection unchecked, it
    finds it dropped, and runs once more on a new one; the caller sees only the answer."""
    admin = make_sync_engine(ping_url)
    idle_s = 0.05

    async def go() -> None:
        engine = make_async_engine(ping_url, pool_size=1, max_overflow=0, ping_after_idle_s=idle_s)
        factory = async_sessionmaker(engine)
        ran_on: list[int] = []

        async def lookup(connection: AsyncConnection) -> int:
            ran_on.append(id(connection))
            return int((await connection.execute(BACKEND)).scalar_one())

        try:
            pid = await _used_once(engine)
            _end_backends(admin, [pid])
            await asyncio.sleep(2 * idle_s)  # idle past the limit: the pool would check it
            assert await run_idempotent(factory, lookup) != pid
            assert len(ran_on) == 2  # once on the dropped connection (unchecked), once more
            ran_on.clear()
            await asyncio.sleep(2 * idle_s)
            assert await run_idempotent(factory, lookup) != pid
            assert len(ran_on) == 1  # a live connection: once
        finally:
            await engine.dispose()

    asyncio.run(go())
    admin.dispose()


def test_an_idempotent_lookup_that_fails_on_a_live_connection_is_not_run_again(
    ping_url: str,
) -> None:
    async def go() -> None:
        engine = make_async_engine(ping_url, pool_size=1, max_overflow=0, ping_after_idle_s=3600)
        runs = 0

        async def failing(connection: AsyncConnection) -> None:
            nonlocal runs
            runs += 1
            await connection.execute(text("SELECT 1 / 0"))

        try:
            with pytest.raises(DBAPIError) as failed:
                await run_idempotent(async_sessionmaker(engine), failing)
            assert not failed.value.connection_invalidated
            assert runs == 1
        finally:
            await engine.dispose()

    asyncio.run(go())


def test_a_sign_in_whose_connection_was_dropped_is_looked_up_again(
    start_app,
    new_database,  # type: ignore[no-untyped-def]
) -> None:
    """The app's sign-in lookup (app/deps.py through `run_idempotent`): with no idle check
    at all, a connection dropped while it sat in the pool costs the request nothing. A
    statement of its own on such a connection fails once (the first test)."""
    server, name, admin = _app_on_its_own_database(start_app, new_database)
    with sign_in(server.url, "dropped@example.test") as client:
        assert client.get("/api/me").status_code == 200
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            assert _end_database_backends(conn, name)  # the app's pooled connections
        me = client.get("/api/me")
        assert me.status_code == 200, me.text
        assert me.json()["email"] == "dropped@example.test"
    admin.dispose()
