"""A refusal's ledger row, called directly against the real PostgreSQL: the row and the
shared hourly rollup row are written with the COMMIT in one flight, as a settlement writes
them, so a burst
of refusals (overload answers thousands) never holds that row's lock across a wait for a
busy event loop, where every answer settling at the same time queued behind it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.calls import record_refusal
from tests.direct import direct_services
from tests.libpq_trace import flight_from, statement_heads, traced_checkouts

MINI = "gpt-4o-mini"


def test_a_refusal_is_recorded_with_its_rollups_sent_with_the_commit(
    db_url: str, db_engine: Engine, tmp_path: Path
) -> None:
    user = uuid.uuid4()
    trace = tmp_path / "refusal.trace"

    async def go() -> None:
        async with direct_services(db_url, llm_model=MINI) as services:
            engine: AsyncEngine = services.sessions.kw["bind"]
            with traced_checkouts(engine, sink):
                await record_refusal(
                    services.sessions, user_id=user, model=MINI, layer="overloaded"
                )

    with trace.open("w") as sink:
        asyncio.run(go())
    lines = trace.read_text().splitlines()
    ledger = next(i for i, line in enumerate(lines) if "INSERT INTO llm_calls" in line)
    start = max(i for i in range(ledger) if not lines[i].startswith("F")) + 1
    flight = flight_from(lines, start)
    # The ledger row leaves in the same flight (`call_tail`): no round trip before it.
    assert statement_heads(flight) == [
        "INSERT INTO llm_calls",
        "INSERT INTO call_rollups_hourly",
        "INSERT INTO user_rollups_daily",
        "COMMIT",
    ], flight
    assert "F\t4\tSync" in flight, flight  # sent before any answer came back
    with db_engine.connect() as conn:
        row = conn.execute(
            text("SELECT admission, status FROM llm_calls WHERE user_id = :u"), {"u": user}
        ).one()
        hourly = conn.execute(
            text("SELECT count(*) FROM user_rollups_daily WHERE user_id = :u"), {"u": user}
        ).scalar_one()
    assert tuple(row) == ("overloaded", "refused") and hourly == 1
