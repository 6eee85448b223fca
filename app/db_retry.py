"""Idempotent reads on the hot path, run without the pool's idle check and once more when
their connection turns out to have been dropped.

Every signed-in request's first statement is the sign-in lookup (app/deps.py). At low
traffic its connection has sat in the pool for longer than `DB_PING_AFTER_IDLE_S`, so the
pool checked it with a round trip of its own before the lookup (`app.db.ping_after_idle`):
at one request at a time that check cost each request a round trip before the first token
(issue 17). The lookup is safe to run twice, so it skips the check instead. When the
connection was dropped (a restart, an idle timeout, a proxy), its statement fails as a
lost connection, the pool replaces that connection and every one opened before it (as
after any lost connection: `app.db.pipelined`), and the lookup runs again on a checked
one. So a dropped idle connection still never fails the request; it costs the round trip
the check would have cost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.db import autocommit_connection

T = TypeVar("T")


async def run_idempotent(
    factory: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncConnection], Awaitable[T]],
) -> T:
    """``work``'s result, run on an autocommit connection (`autocommit_connection`) handed
    out unchecked; when that connection was lost (`DBAPIError.connection_invalidated`), run
    again, once, on a connection the pool checked. ``work`` must be safe to run twice (a
    read, or writes that end in the same state). Raises what ``work`` raises the second
    time, or the first time when its connection was not lost; and what
    `autocommit_connection` raises."""
    try:
        async with autocommit_connection(factory, checked=False) as connection:
            return await work(connection)
    except DBAPIError as err:
        if not err.connection_invalidated:
            raise
    async with autocommit_connection(factory) as connection:
        return await work(connection)
