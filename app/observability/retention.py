"""Retention: after RETENTION_DAYS, conversations (with their messages and feedback) are
deleted and the call log's content is erased. Call metadata (tokens, cost, latency) stays:
it is the books.

Every replica runs it hourly; a PostgreSQL advisory lock lets one at a time do the work and
the others skip that run (the deletes are idempotent; the lock keeps replicas from doing the
same large delete together and blocking each other on its rows)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import utcnow

log = logging.getLogger("ragship.retention")
RETENTION_LOCK = 72_410_004  # advisory lock id: "one replica enforces retention at a time"
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:id)")
_OLD_CONVERSATIONS = text("DELETE FROM conversations WHERE updated_at < :cutoff")
_OLD_CONTENT = text(
    "UPDATE llm_calls SET question = NULL, answer = NULL "
    "WHERE created_at < :cutoff AND (question IS NOT NULL OR answer IS NOT NULL)"
)
_OLD_SESSIONS = text("DELETE FROM auth_sessions WHERE expires_at < now()")


async def enforce_retention(
    sessions: async_sessionmaker[AsyncSession], *, days: int
) -> dict[str, int] | None:
    """Delete expired sessions and, when `days` > 0, conversations and call content older
    than `days` days. Returns rows affected per kind, or None when another replica holds
    the retention lock (nothing is done; the next run tries again)."""
    counts = {"conversations": 0, "call_content": 0, "sessions": 0}
    async with sessions() as session, session.begin():
        if not (await session.scalar(_TRY_LOCK, {"id": RETENTION_LOCK})):
            log.debug("retention: another replica holds the lock; skipped")
            return None
        counts["sessions"] = (await session.execute(_OLD_SESSIONS)).rowcount  # type: ignore[attr-defined]
        if days > 0:
            cutoff = utcnow() - timedelta(days=days)
            params = {"cutoff": cutoff}
            counts["conversations"] = (await session.execute(_OLD_CONVERSATIONS, params)).rowcount  # type: ignore[attr-defined]
            counts["call_content"] = (await session.execute(_OLD_CONTENT, params)).rowcount  # type: ignore[attr-defined]
    if any(counts.values()):
        log.info("retention: %s", counts)
    return counts
