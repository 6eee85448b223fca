"""The call ledger: one `llm_calls` row per LLM call or refused attempt."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import TextClause, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.tokens import CALLER_TOKEN
from app.caps import budget
from app.db import commit_with_tail, session_scope
from app.models import LLMCall, utcnow
from app.observability.rollups import outcome_of, rollup_statements

log = logging.getLogger("ragship.calls")


async def record_call(
    session: AsyncSession,
    *,
    user_id: uuid.UUID | None,
    model: str,
    status: str,
    admission: str = "allowed",
    feature: str = "chat",
    conversation_id: uuid.UUID | None = None,
    prompt_version: str | None = None,
    input_tokens: int = 0,
    cached_input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: Decimal = Decimal(0),
    reserved_usd: Decimal = Decimal(0),
    ttft_ms: float | None = None,
    latency_ms: float | None = None,
    reservation_id: uuid.UUID | None = None,
    trace_id: str | None = None,
    attempts: int = 1,
    provider: str = "",
    price_source: str | None = None,
    question: str | None = None,
    answer: str | None = None,
    cache_hit: bool = False,
    saved_usd: Decimal = Decimal(0),
    arm: str | None = None,
    rollups: bool = True,
) -> LLMCall:
    """Add the call to the ledger and to the rollups, in the caller's transaction. `arm`:
    the routing arm of a chat answer (main, canary, route:short; app/llm/routing.py).
    ``rollups=False`` leaves the ledger row and the rollups to the caller's commit
    (`commit_call`, or `commit_with_tail` of `call_tail`): the row is not added to the
    session but inserted in the same flight as the counters, the rollups and the COMMIT,
    one round trip less than a flush before them; every writer takes the spend counters
    before the rollup rows."""
    now = utcnow()
    call = LLMCall(
        created_at=now,
        user_id=user_id,
        conversation_id=conversation_id,
        feature=feature,
        model=model,
        prompt_version=prompt_version,
        admission=admission,
        status=status,
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        reserved_usd=reserved_usd,
        ttft_ms=ttft_ms,
        latency_ms=latency_ms,
        reservation_id=reservation_id,
        trace_id=trace_id,
        attempts=attempts,
        provider=provider,
        price_source=price_source,
        question=question,
        answer=answer,
        cache_hit=cache_hit,
        saved_usd=saved_usd,
        arm=arm,
        api_token_id=CALLER_TOKEN.get(),  # the request's API token, if it came with one
    )
    if rollups:
        session.add(call)
        await rollup_call(session, call)
    return call


# The ledger row's INSERT with every column but the id, in the table's order (`call_tail`).
_CALL_COLUMNS = [(a.key, a.columns[0].name) for a in inspect(LLMCall).column_attrs if a.key != "id"]
_INSERT_CALL = text(
    f"INSERT INTO llm_calls ({', '.join(name for _, name in _CALL_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(f':{name}' for _, name in _CALL_COLUMNS)})"
)


def call_row(call: LLMCall) -> tuple[TextClause, dict[str, Any]]:
    """The INSERT of ``call``'s ledger row (made by `record_call` with ``rollups=False``);
    the row gets its id from the table."""
    return _INSERT_CALL, {name: getattr(call, key) for key, name in _CALL_COLUMNS}


def call_tail(call: LLMCall) -> list[tuple[TextClause, dict[str, Any]]]:
    """The statements that record ``call`` with no charge: its ledger row, then its
    rollups (`rollup_tail`)."""
    return [call_row(call), *rollup_tail(call)]


def rollup_tail(call: LLMCall) -> list[tuple[TextClause, dict[str, Any]]]:
    """The upserts that add a recorded call to the hourly and daily rollups."""
    return rollup_statements(
        at=call.created_at,
        feature=call.feature,
        model=call.model,
        outcome=outcome_of(admission=call.admission, status=call.status),
        user_id=call.user_id,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cost_usd=call.cost_usd,
        latency_ms=call.latency_ms,
        ttft_ms=call.ttft_ms,
    )


async def rollup_call(session: AsyncSession, call: LLMCall) -> None:
    """Add a recorded call to the rollups in the caller's transaction (two upserts)."""
    for statement, params in rollup_tail(call):
        await session.execute(statement, params)


async def commit_call(
    session: AsyncSession, call: LLMCall, closed: budget.Closed | None, *, cost: Decimal
) -> tuple[Decimal, Decimal] | None:
    """Commit the caller's transaction with the call's ledger row (`call_row`) and the rows
    every call shares written last, sent with the COMMIT in one round trip
    (`commit_with_tail`): the ledger row, then the closed reservation's
    counters charged ``cost`` (`budget.charge_statement`; none when `closed` is None, a
    reservation the expiry sweep settled first), then the call's rollups, the lock order of
    every writer. Record `call` with ``rollups=False`` before. Returns the first counter's
    (spent, reserved) after the charge, or None without one."""
    charge = [budget.charge_statement(closed, cost=cost)] if closed is not None else []
    rows = await commit_with_tail(session, [call_row(call), *charge, *rollup_tail(call)])
    return budget.charged(rows[1]) if closed is not None else None


async def record_refusal(
    sessions: async_sessionmaker[AsyncSession], *, user_id: uuid.UUID, model: str, layer: str
) -> None:
    """A refused attempt costs nothing but is on the books: who was stopped, where.

    The ledger row, then the rollups (whose hourly row every call shares), sent with the
    COMMIT in one round trip (`call_tail`), as a settlement sends them (`commit_call`): the shared
    row's lock is held for the server's work only, never across a wait for this process's
    event loop, where the answers settling at the same time would queue behind it (issue
    17: under overload a worker records thousands of refusals)."""
    try:
        async with session_scope(sessions) as session:
            call = await record_call(
                session,
                user_id=user_id,
                model=model,
                status="refused",
                admission=layer,
                rollups=False,
            )
            await commit_with_tail(session, call_tail(call))
    except SQLAlchemyError as err:  # never turn a refusal into a crash
        log.error("could not record refusal (%s) for %s: %r", layer, user_id, err)
