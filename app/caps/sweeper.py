"""Reservations never leak: any left open past their expiry (a replica crashed mid-call)
are settled by this sweep, charged at the full reserved amount since the real usage is
unknown. Safe to run on every replica: rows are claimed with SKIP LOCKED.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.calls import record_call
from app.caps import budget

log = logging.getLogger("ragship.caps")

_EXPIRED = text(
    "SELECT id, user_id, amount_usd FROM reservations "
    "WHERE settled_at IS NULL AND expires_at < now() "
    "ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED"
)


async def sweep_expired(
    sessions: async_sessionmaker[AsyncSession], *, model: str, limit: int = 100
) -> int:
    """Settle up to ``limit`` expired reservations, one short transaction each: a batch
    holding several users' counters at once could deadlock with live reservations."""
    swept = 0
    for _ in range(limit):
        async with sessions() as session, session.begin():
            row = (await session.execute(_EXPIRED)).first()
            if row is None:
                break
            reservation_id, user_id, amount = row
            if await budget.settle(session, reservation_id=reservation_id, cost=Decimal(amount)):
                await record_call(
                    session,
                    user_id=user_id,
                    model=model,
                    status="expired",
                    cost_usd=Decimal(amount),
                    reserved_usd=Decimal(amount),
                    reservation_id=reservation_id,
                    price_source="reservation",
                )
                swept += 1
    if swept:
        log.warning("settled %d expired reservations at their full amount", swept)
    return swept
