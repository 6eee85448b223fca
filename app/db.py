"""Database engines and URLs. One async engine for the service, one sync engine for CLIs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import (
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


def make_async_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, pool_timeout_s: float = 30
) -> AsyncEngine:
    """The service's engine. A checkout that waits past ``pool_timeout_s`` raises
    `sqlalchemy.exc.TimeoutError`, which the app answers with 503 (app/http/overload.py)."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=True,
    )


def make_sync_engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A short unit of work: commit on success, roll back on error, always release."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


@asynccontextmanager
async def autocommit_scope(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose every statement commits on its own: no BEGIN and COMMIT round trips.

    For work that is one statement at a time and needs no transaction around them (a
    lookup, a single conditional update), on the hot path before the first token.
    """
    async with factory() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session
