"""The admins' manual kill switch, in the database so every replica sees it at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AppFlag, utcnow

KILL_SWITCH = "kill_switch"


async def is_paused(session: AsyncSession) -> bool:
    enabled = await session.scalar(select(AppFlag.enabled).where(AppFlag.key == KILL_SWITCH))
    return bool(enabled)


async def set_paused(session: AsyncSession, *, paused: bool, by: str) -> None:
    values = {"key": KILL_SWITCH, "enabled": paused, "updated_by": by, "updated_at": utcnow()}
    await session.execute(
        insert(AppFlag).values(**values).on_conflict_do_update(index_elements=["key"], set_=values)
    )
