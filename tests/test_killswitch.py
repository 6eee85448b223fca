"""The operator's kill switch in the database, called directly: off until set, on and off
again by an upsert that records who flipped it and when. The fast checks `make mutation-db
GROUP=killswitch` runs on app/caps/killswitch.py (docs/mutation.md); the HTTP test of the
admin route is in tests/test_caps_http.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.caps.killswitch import KILL_SWITCH, is_paused, set_paused
from app.db import make_async_engine, make_sync_engine


def _flags(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, enabled, updated_by, updated_at FROM app_flags"))
        return [tuple(r) for r in rows]


def test_the_switch_is_off_until_set_and_each_flip_records_who_and_when(
    new_database,  # type: ignore[no-untyped-def]
) -> None:
    url = new_database()  # its own database: no other test's flip
    engine = make_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    seen: list[bool] = []
    times: list[datetime] = []

    async def flip(paused: bool, by: str) -> None:
        times.append(datetime.now(UTC))
        async with sessions() as session, session.begin():
            await set_paused(session, paused=paused, by=by)
        times.append(datetime.now(UTC))
        async with sessions() as session:
            seen.append(await is_paused(session))

    async def go() -> list[list[tuple[Any, ...]]]:
        sync = make_sync_engine(url)
        try:
            async with sessions() as session:
                seen.append(await is_paused(session))
            states = [_flags(sync)]
            await flip(True, "ops@example.com")
            states.append(_flags(sync))
            await flip(False, "root@example.com")
            states.append(_flags(sync))
            await flip(True, "ops@example.com")
            return states
        finally:
            sync.dispose()
            await engine.dispose()

    states = asyncio.run(go())
    assert seen == [False, True, False, True]
    assert states[0] == []
    [(key, enabled, by, at)] = states[1]
    assert KILL_SWITCH == "kill_switch"
    assert (key, enabled, by) == ("kill_switch", True, "ops@example.com")
    assert times[0] <= at <= times[1]
    [(key, enabled, by, at)] = states[2]  # the same row, updated
    assert (key, enabled, by) == ("kill_switch", False, "root@example.com")
    assert times[2] <= at <= times[3]
