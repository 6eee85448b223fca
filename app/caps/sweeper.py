"""Reservations never leak: any left open past their expiry (a replica crashed mid-call)
are settled by this sweep, charged at the full reserved amount since the real usage is
unknown. Safe to run on every replica: rows are claimed with SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.calls import record_call
from app.caps import budget

log = logging.getLogger("ragship.caps")

_EXPIRED = text(
    "SELECT id, user_id, amount_usd FROM reservations "
    "WHERE settled_at IS NULL AND expires_at < now() "
    "ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED"
)


async def sweep_expired(sessions: async_sessionmaker[AsyncSession], *, model: str) -> int:
    swept = 0
    async with sessions() as session, session.begin():
        for reservation_id, user_id, amount in (await session.execute(_EXPIRED)).all():
            if await budget.settle(session, reservation_id=reservation_id, cost=Decimal(amount)):
                await record_call(
                    session,
                    user_id=user_id,
                    model=model,
                    status="expired",
                    cost_usd=Decimal(amount),
                    reserved_usd=Decimal(amount),
                    reservation_id=reservation_id,
                )
                swept += 1
    if swept:
        log.warning("settled %d expired reservations at their full amount", swept)
    return swept


async def run_sweeper(
    sessions: async_sessionmaker[AsyncSession], *, model: str, every_s: float
) -> None:
    while True:
        try:
            await sweep_expired(sessions, model=model)
        except SQLAlchemyError as err:
            log.error("reservation sweep failed: %r", err)
        await asyncio.sleep(every_s)
