"""What a user has spent and holds reserved today, and what is left of the cap to show."""

from __future__ import annotations

import uuid
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.caps.budget import periods, user_scope

CENT = Decimal("0.01")
_SPEND = text(
    "SELECT spent_usd, reserved_usd FROM spend_counters WHERE scope = :scope AND period = :day"
)


async def spend_today(session: AsyncSession, *, user_id: uuid.UUID) -> tuple[Decimal, Decimal]:
    """(spent, reserved) USD for the user today (UTC)."""
    day, _ = periods()
    row = (await session.execute(_SPEND, {"scope": user_scope(user_id), "day": day})).first()
    return (Decimal(row[0]), Decimal(row[1])) if row else (Decimal(0), Decimal(0))


def remaining_display(cap: Decimal, spent: Decimal, reserved: Decimal) -> str:
    """What is left of a daily cap (USD) for people to read: rounded down to the cent, so it
    never shows more than is left ($0.4999 left shows "0.49"), and never below "0.00"."""
    return str(max(cap - spent - reserved, Decimal(0)).quantize(CENT, rounding=ROUND_DOWN))
