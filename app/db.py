"""Database engines and URLs. One async engine for the service, one sync engine for CLIs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import anyio
import psycopg
from sqlalchemy import Dialect, Engine, TextClause, create_engine, event
from sqlalchemy.engine import Compiled
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.embedded_db import start_embedded_postgres
from app.settings import Settings


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL (psycopg 3 driver); starts the embedded server when none is set."""
    url = settings.database_url or start_embedded_postgres(settings.data_dir)
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def service_engine(settings: Settings) -> AsyncEngine:
    """The service's engine, as each worker's lifespan builds it: `database_url`, and the
    pool of DB_POOL_SIZE connections (plus DB_MAX_OVERFLOW), DB_POOL_TIMEOUT_S and
    DB_PING_AFTER_IDLE_S (`make_async_engine`)."""
    return make_async_engine(
        database_url(settings),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout_s=settings.db_pool_timeout_s,
        ping_after_idle_s=settings.db_ping_after_idle_s,
    )


def make_async_engine(
    url: str,
    *,
    pool_size: int = 20,
    max_overflow: int = 0,
    pool_timeout_s: float = 30,
    ping_after_idle_s: float = 0,
) -> AsyncEngine:
    """An async engine whose pool holds ``pool_size`` connections, opened as they are first
    needed and then kept, plus ``max_overflow`` more at peaks, each closed as it comes back
    while ``pool_size`` others sit idle (SQLAlchemy's QueuePool). The defaults (and the
    service's, DB_POOL_SIZE 20 and DB_MAX_OVERFLOW 0) make a fixed-size pool, as HikariCP
    recommends "for maximum performance and responsiveness to spike demands" (its
    `minimumIdle`): with 10 + 10, one worker at 50 concurrent answers opened and closed
    about 70 PostgreSQL connections per 200 answers, each a new server process, and served
    about 10% fewer answers a second (issue 17). A checkout gets the connection returned
    last (LIFO): one used moments ago, which `ping_after_idle` hands out unchecked. First
    in, first out (SQLAlchemy's default), one request at a time got the connection idle
    longest from the 20, past DB_PING_AFTER_IDLE_S, and each of its three checkouts took
    0.74 ms at the median instead of 0.27 (a ping's round trip; scratch timing inside the
    app, one chat at a time). The connections at the bottom of the stack stay idle; one
    that a server-side timeout dropped is checked and replaced when next needed (SQLAlchemy
    documents LIFO for that scheme). A checkout that waits past ``pool_timeout_s`` raises
    `sqlalchemy.exc.TimeoutError`, which the app answers with 503 (app/http/overload.py).
    A pooled connection is checked with a round trip before use when it sat idle for more
    than ``ping_after_idle_s`` seconds (`ping_after_idle`); 0 checks it before every use."""
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=ping_after_idle_s <= 0,
        pool_use_lifo=True,
    )
    if ping_after_idle_s > 0:
        ping_after_idle(engine, idle_s=ping_after_idle_s)
    return engine


_IDLE_SINCE = "ragship_idle_since"  # in a pool record's info: when it was last checked in
# Set around a checkout whose caller runs again on a new connection if this one was dropped
# (app/db_retry.py): the pool hands it out without the idle check.
_UNCHECKED: ContextVar[bool] = ContextVar("ragship_unchecked_checkout", default=False)


def ping_after_idle(engine: AsyncEngine, *, idle_s: float) -> None:
    """Before a pooled connection is handed out, check it with a round trip (the dialect's
    ping, as `pool_pre_ping` does) only when it sat in the pool for more than `idle_s`
    seconds; one that fails the check is replaced by a new one (SQLAlchemy's
    DisconnectionError protocol, up to three tries). The connections that idle timeouts,
    proxies and restarts drop are idle ones; a busy worker's connections come back to the
    pool within milliseconds, and checking each of them cost every checkout a round trip
    (about 0.4 ms alone, a wait for the event loop under load: issue 17). HikariCP, the
    Java pool, does the same: no check within `aliveBypassWindowMs` (500 ms by default) of a
    connection's last use (HikariPool.getConnection). One dropped while it was out, or in
    its last `idle_s` seconds, fails its next statement instead; the pool then replaces
    every connection older than the failure, and the request is answered 503
    (app/http/overload.py)."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from_now(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or _UNCHECKED.get() or time.monotonic() - since <= idle_s:
            return  # a new connection, one used moments ago, or a caller that retries
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as err:
            raise DisconnectionError(f"a pooled connection failed its check: {err}") from err


def make_sync_engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A short unit of work: commit on success, roll back on error, always release (`closed`:
    no task of its own for the release, unlike ``async with factory()``). The rollback is
    shielded from the caller's cancel scopes, as the release is: interrupted at its wait,
    it made SQLAlchemy discard the connection, and the pool open a new server process."""
    session = factory()
    try:
        yield session
        await session.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await session.rollback()
        raise
    finally:
        await closed(session)


@asynccontextmanager
async def autocommit_scope(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose every statement commits on its own: no BEGIN and COMMIT round trips.

    For work that is one statement at a time and needs no transaction around them (a
    lookup, a single conditional update), on the hot path before the first token.
    """
    session = factory()
    try:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session
    finally:
        await closed(session)


@asynccontextmanager
async def autocommit_connection(
    factory: async_sessionmaker[AsyncSession], *, checked: bool = True
) -> AsyncIterator[AsyncConnection]:
    """A pooled connection of ``factory``'s engine in autocommit, with no ORM session around
    it: for the hot path's statements before the first token (the sign-in lookup, the
    search, the reservation), sent with `pipelined` or as Core statements. Each statement
    commits on its own, as in `autocommit_scope`, and the connection goes back to the pool
    in the state it came out in (SQLAlchemy restores its isolation level). The session
    cost the reservation about 0.2 ms more of the event loop's CPU a call, timed alone
    (`python -m bench hot_scopes`: 0.81 against 0.62 ms at the median). ``checked=False``
    skips the idle check (`ping_after_idle`), for a caller that runs its statements again
    on another connection when this one was dropped (app/db_retry.py). Raises TypeError
    when ``factory`` is not bound to an AsyncEngine, and sqlalchemy.exc.TimeoutError when
    no connection is free within the pool's timeout."""
    engine = factory.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise TypeError(f"autocommit_connection needs a factory bound to an AsyncEngine: {engine}")
    unchecked = None if checked else _UNCHECKED.set(True)  # seen by the checkout event
    try:
        connection = await engine.connect()
    finally:
        if unchecked is not None:
            _UNCHECKED.reset(unchecked)
    try:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection
    finally:
        await closed(connection)


async def closed(resource: AsyncConnection | AsyncSession) -> None:
    """Close ``resource`` (its connection back to the pool) in the caller's task, shielded
    from cancellation by the caller's scopes (anyio). SQLAlchemy's ``async with`` exit runs
    the close in a task of its own behind `asyncio.shield` (`_run_to_completion`), which
    costs the caller three turns of the event loop (the task's first step, then the
    shield's two done callbacks; counted with a wrapped `loop._run_once`) even when the
    close does no I/O, as after a commit or in autocommit (psycopg sends no ROLLBACK to an
    idle connection): under load each turn is a pass over every ready callback, and a
    reservation or a settlement waited through them before its caller went on (issue 17).
    Without I/O the close cannot be interrupted (a task is cancelled only at a wait); with
    I/O (a transaction left open, rolled back as the connection goes back) only a native
    cancellation can reach it (`Task.cancel`, `asyncio.timeout`, `wait_for`), which
    SQLAlchemy's shielded task waited out: the pool (SQLAlchemy 2.1.9, the floor in
    pyproject.toml) then takes the connection back as failed and replaces it
    (`_checkin_failed`), a new server process for the next checkout."""
    with anyio.CancelScope(shield=True):
        await resource.close()


# Where a statement can run: an ORM session, or a Core connection (`autocommit_connection`).
Runner = AsyncSession | AsyncConnection
Statement = tuple[TextClause, Mapping[str, Any]]
Tail = Sequence[Statement]
Rows = list[tuple[Any, ...]] | None  # one statement's rows from `pipelined`


@lru_cache(maxsize=64)
def _compiled(statement: TextClause, dialect: Dialect) -> Compiled:
    """`statement` compiled for `dialect` once: SQLAlchemy's `execute` caches its compiled
    forms, and compiling again cost 0.05 to 0.16 ms a statement on every settlement."""
    return statement.compile(dialect=dialect)


async def pipelined(session: Runner, statements: Tail, *, commit: bool) -> list[Rows]:
    """Send `statements` (and a COMMIT when `commit`) in one round trip, psycopg's pipeline
    mode, in the transaction of `session` (an ORM session or a Core connection); return each
    statement's rows (None for one that returns none). In autocommit (`autocommit_scope`,
    `autocommit_connection`) the statements, up to the pipeline's one Sync, are one
    implicit transaction. Otherwise, when the transaction has not begun, psycopg sends its
    BEGIN first, in a round trip of its own. The values go to psycopg as they are (no
    SQLAlchemy type's bind processing: plain numbers, text, times, UUIDs, arrays; a vector
    as its text, `pgvector.Vector(...).to_text()`). A failing statement makes the server
    skip the rest, the COMMIT included. Raises sqlalchemy.exc.DBAPIError, as any statement
    does (the transaction is then rolled back, as any failed one: `session_scope`); a
    connection lost on the way is invalidated with every connection the pool opened before
    it, as SQLAlchemy does for its own statements. With `commit`, the session's own commit
    afterwards costs no round trip: the driver is already out of the transaction."""
    connection = session if isinstance(session, AsyncConnection) else await session.connection()
    pooled = await connection.get_raw_connection()
    raw = pooled.driver_connection
    if not isinstance(raw, psycopg.AsyncConnection):
        raise TypeError(f"pipelined needs psycopg's AsyncConnection, not {type(raw)}")
    cursors = []
    try:
        async with raw.pipeline():
            for statement, params in statements:
                compiled = _compiled(statement, connection.dialect)
                cursor = raw.cursor()
                await cursor.execute(compiled.string, compiled.construct_params(dict(params)))
                cursors.append((compiled.string, cursor))
            if commit:
                # Queued like the statements, so the pipeline's one Sync, at the block's
                # end, sends them all (`raw.commit()` here would sync, and the end again).
                await raw.cursor().execute("COMMIT")
        return [await cur.fetchall() if cur.description else None for _, cur in cursors]
    except psycopg.Error as err:  # as SQLAlchemy raises it for its own statements
        sql = "; ".join([*(sql for sql, _ in cursors), *(["COMMIT"] if commit else [])])
        if lost := raw.broken:
            # As SQLAlchemy does on a disconnect in its own statements: every connection
            # the pool opened before now is replaced at its next checkout (they talked to
            # the server that went away), then this one is dropped. Dropping only this one
            # left the others to fail the next requests in turn.
            connection.sync_engine.pool._invalidate(pooled, err)
            await connection.invalidate(err)
        raise DBAPIError.instance(
            sql, None, err, psycopg.Error, connection_invalidated=lost
        ) from err


async def commit_with_tail(session: AsyncSession, tail: Tail) -> list[tuple[Any, ...] | None]:
    """Flush the session, then send `tail`'s statements and the COMMIT in one round trip
    (`pipelined`), and return each statement's first row (None when it has none). For the
    rows every request shares (the spend counters, the rollups): the statements' row locks
    are held for the server's work and the commit only, never while this process's event
    loop is busy elsewhere; sent one by one, each waited a round trip for the client before
    the next, and at 50 concurrent answers a settlement held them through three such waits
    (issue 17). Raises sqlalchemy.exc.DBAPIError, as `pipelined` does."""
    await session.flush()  # the ORM's pending rows, in this transaction, before its COMMIT
    results = await pipelined(session, tail, commit=True)
    await session.commit()  # the driver is already out of the transaction: no round trip
    return [rows[0] if rows else None for rows in results]
