"""Layers 3–5, money: per-user daily cap, global daily cap, monthly budget, by reservation.

Before a call, the most it can cost is reserved in PostgreSQL with conditional UPDATEs
(`spent + reserved + amount <= cap`): row locks make concurrent reservations queue, and
each re-checks the condition, so parallel requests can never overspend a cap. After the
call, `settle` turns the reservation into the actual cost in the same transaction that
records the call. Days are UTC calendar days (reset at 00:00 UTC); months likewise.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.caps.refusal import GLOBAL_DAILY, MONTHLY, USER_DAILY, CapRefused
from app.settings import Settings

GLOBAL = "global"

_ENSURE = text(
    "INSERT INTO spend_counters (scope, period, spent_usd, reserved_usd) "
    "VALUES (:user_scope, :day, 0, 0), (:global, :day, 0, 0), (:global, :month, 0, 0) "
    "ON CONFLICT DO NOTHING"
)
_RESERVE = text(
    "UPDATE spend_counters SET reserved_usd = reserved_usd + :amount "
    "WHERE scope = :scope AND period = :period AND spent_usd + reserved_usd + :amount <= :cap "
    "RETURNING 1"
)
_RECORD = text(
    "INSERT INTO reservations (id, user_id, day, month, amount_usd, created_at, expires_at) "
    "VALUES (:id, :user_id, :day, :month, :amount, now(), now() + make_interval(secs => :ttl))"
)
_CLOSE = text(
    "UPDATE reservations SET settled_at = now() WHERE id = :id AND settled_at IS NULL "
    "RETURNING user_id, day, month, amount_usd"
)
_SETTLE = text(
    "UPDATE spend_counters SET reserved_usd = reserved_usd - :amount, "
    "spent_usd = spent_usd + :cost WHERE scope = :scope AND period = :period"
)


@dataclass(frozen=True)
class Reservation:
    id: uuid.UUID
    user_id: uuid.UUID | None  # None: a service call (health probe), global caps only
    amount: Decimal
    day: str
    month: str


def periods(now: datetime | None = None) -> tuple[str, str]:
    now = now or datetime.now(UTC)
    return now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")


def seconds_to_midnight_utc(now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((midnight - now).total_seconds()) + 1


def _user_scope(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def _scopes(user_id: uuid.UUID | None, day: str, month: str) -> list[tuple[str, str]]:
    """The counters a reservation holds, in lock order (user, global day, global month)."""
    user = [(_user_scope(user_id), day)] if user_id is not None else []
    return [*user, (GLOBAL, day), (GLOBAL, month)]


async def reserve(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    user_id: uuid.UUID | None,
    amount: Decimal,
) -> Reservation:
    """Reserve ``amount`` (USD) against every cap at once, or raise `CapRefused` naming the
    first cap hit. ``user_id=None`` (a service call such as the health probe) reserves
    against the global daily cap and the monthly budget only."""
    day, month = periods()
    reservation = Reservation(uuid.uuid4(), user_id, amount, day, month)
    async with sessions() as session:
        await session.execute(
            _ENSURE,
            {
                "user_scope": _user_scope(user_id) if user_id else GLOBAL,
                "global": GLOBAL,
                "day": day,
                "month": month,
            },
        )
        await session.commit()
        # Always the same lock order (user, global day, global month): no deadlocks.
        caps = [settings.user_daily_cap_usd] if user_id is not None else []
        layers = [USER_DAILY] if user_id is not None else []
        caps += [settings.global_daily_cap_usd, settings.monthly_budget_usd]
        layers += [GLOBAL_DAILY, MONTHLY]
        checks = [
            (scope, period, cap, layer)
            for (scope, period), cap, layer in zip(
                _scopes(user_id, day, month), caps, layers, strict=True
            )
        ]
        for scope, period, cap, layer in checks:
            params = {"scope": scope, "period": period, "cap": cap, "amount": amount}
            if (await session.execute(_RESERVE, params)).first() is None:
                await session.rollback()
                raise _refusal(layer, settings)
        await session.execute(
            _RECORD,
            {
                "id": reservation.id,
                "user_id": user_id,
                "day": day,
                "month": month,
                "amount": amount,
                "ttl": settings.reservation_ttl_s,
            },
        )
        await session.commit()
    return reservation


async def settle(session: AsyncSession, *, reservation_id: uuid.UUID, cost: Decimal) -> bool:
    """Release the reservation and charge ``cost``, inside the caller's transaction.

    Idempotent: a reservation settles once; a second call (say, the expiry sweep racing a
    late settle) changes nothing and returns False.
    """
    row = (await session.execute(_CLOSE, {"id": reservation_id})).first()
    if row is None:
        return False
    user_id, day, month, amount = row
    for scope, period in _scopes(user_id, day, month):
        await session.execute(
            _SETTLE, {"scope": scope, "period": period, "amount": amount, "cost": cost}
        )
    return True


async def spend_today(session: AsyncSession, *, user_id: uuid.UUID) -> tuple[Decimal, Decimal]:
    """(spent, reserved) for the user today."""
    day, _ = periods()
    row = (
        await session.execute(
            text(
                "SELECT spent_usd, reserved_usd FROM spend_counters "
                "WHERE scope = :scope AND period = :day"
            ),
            {"scope": _user_scope(user_id), "day": day},
        )
    ).first()
    return (Decimal(row[0]), Decimal(row[1])) if row else (Decimal(0), Decimal(0))


def _refusal(layer: str, settings: Settings) -> CapRefused:
    until_midnight = seconds_to_midnight_utc()
    hours, minutes = divmod(until_midnight // 60, 60)
    if layer == USER_DAILY:
        return CapRefused(
            layer,
            429,
            f"You've reached today's limit of ${settings.user_daily_cap_usd}. "
            f"It resets at 00:00 UTC (in {hours}h {minutes:02d}m).",
            retry_after_s=until_midnight,
        )
    if layer == GLOBAL_DAILY:
        return CapRefused(
            layer,
            503,
            "The assistant is paused for today: the service's daily budget is used up. "
            f"It resumes at 00:00 UTC (in {hours}h {minutes:02d}m).",
            retry_after_s=until_midnight,
        )
    return CapRefused(MONTHLY, 503, "The assistant is paused: this month's budget is used up.")
