"""Retention: after RETENTION_DAYS, conversations (with their messages and feedback) are
deleted and the call log's content is erased. Call metadata (tokens, cost, latency) stays:
it is the books."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import utcnow

log = logging.getLogger("ragship.retention")
_OLD_CONVERSATIONS = text("DELETE FROM conversations WHERE updated_at < :cutoff")
_OLD_CONTENT = text(
    "UPDATE llm_calls SET question = NULL, answer = NULL "
    "WHERE created_at < :cutoff AND (question IS NOT NULL OR answer IS NOT NULL)"
)
_OLD_SESSIONS = text("DELETE FROM auth_sessions WHERE expires_at < now()")


async def enforce_retention(
    sessions: async_sessionmaker[AsyncSession], *, days: int
) -> dict[str, int]:
    counts = {"conversations": 0, "call_content": 0, "sessions": 0}
    async with sessions() as session, session.begin():
        counts["sessions"] = (await session.execute(_OLD_SESSIONS)).rowcount  # type: ignore[attr-defined]
        if days > 0:
            cutoff = utcnow() - timedelta(days=days)
            params = {"cutoff": cutoff}
            counts["conversations"] = (await session.execute(_OLD_CONVERSATIONS, params)).rowcount  # type: ignore[attr-defined]
            counts["call_content"] = (await session.execute(_OLD_CONTENT, params)).rowcount  # type: ignore[attr-defined]
    if any(counts.values()):
        log.info("retention: %s", counts)
    return counts


async def run_retention(sessions: async_sessionmaker[AsyncSession], *, days: int) -> None:
    while True:
        try:
            await enforce_retention(sessions, days=days)
        except Exception:  # retention must outlive any one failure; logged, retried
            log.exception("retention job failed")
        await asyncio.sleep(3600)
