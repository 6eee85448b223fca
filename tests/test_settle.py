"""Settling a call, called directly against the real PostgreSQL: what the message, the
reservation, the ledger row and the guardrail rows hold for each way an answer ends, and
what the `done` event reports. No app and no model: the fast checks `make mutation-db
GROUP=settle` runs on app/settle.py (docs/mutation.md)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from app.cache.responses import CachedAnswer
from app.caps import budget
from app.caps.chain import Admission
from app.caps.ratelimit import StreamLease
from app.conversations import ensure_conversation
from app.guardrails.verdict import RETRACTED_MESSAGE, Verdict
from app.llm.client import Finished
from app.llm.routing import ARM_MAIN, Route
from app.prepare import PreparedChat
from app.rag.prompt import PROMPT_VERSION
from app.rag.retrieve import Passage
from app.services import Services
from app.settle import Outcome, settle_call
from app.tokens import count_message_tokens, count_tokens
from tests.direct import direct_services

MINI, FULL = "gpt-4o-mini", "gpt-4o"  # priced by genai-prices: cached input costs less
MESSAGES = [{"role": "user", "content": "What port does the server listen on?"}]
PASSAGES = [
    Passage(
        1, 10, "guide.md", "Guide", "Guide › Install", "install", "Run make dev.", 0.123456789, 0.8
    ),
    Passage(2, 11, "ops.md", "Operations", "Ops › Ports", "ports", "Port 8000.", 0.5, 0.7),
]
SOURCES = [
    {"n": 1, "title": "Guide", "section": "Guide › Install", "source": "guide.md",
     "url": "/sources/10#install", "score": 0.12346},
    {"n": 2, "title": "Operations", "section": "Ops › Ports", "source": "ops.md",
     "url": "/sources/11#ports", "score": 0.5},
]  # fmt: skip
SETTINGS: dict[str, object] = {
    "llm_model": MINI,
    "llm_fallback_model": FULL,
    "content_logging": "full",
    "user_daily_cap_usd": Decimal("0.50"),
}


def _prepared(user: uuid.UUID, **fields: Any) -> PreparedChat:
    values: dict[str, Any] = {
        "user_id": user,
        "conversation_id": uuid.uuid4(),
        "is_new_conversation": True,
        "question": "What port? Mail ada@example.com",
        "trace_id": uuid.uuid4().hex,
        "passages": PASSAGES,
        "messages": MESSAGES,
        "route": Route(ARM_MAIN, MINI, PROMPT_VERSION, (MINI, FULL)),
    }
    return PreparedChat(**{**values, **fields})


async def _settle(
    services: Services,
    prepared: PreparedChat,
    outcome: Outcome,
    *,
    amount: str = "0.01",
    settled_before: bool = False,
) -> tuple[dict[str, Any], budget.Reservation, tuple[float, float]]:
    """Reserve ``amount`` for the user, settle the call; returns the `done` record, the
    reservation and the perf_counter readings just before and after settling."""
    reservation = await budget.reserve(
        services.sessions, services.settings, user_id=prepared.user_id, amount=Decimal(amount)
    )
    async with services.sessions() as session, session.begin():
        await ensure_conversation(
            session, conversation_id=prepared.conversation_id, owner="ada", title="t"
        )
        if settled_before:  # the expiry sweep charged it already
            await budget.settle(session, reservation_id=reservation.id, cost=reservation.amount)
    admission = Admission(prepared, StreamLease("k", "m", {}), reservation, 200)
    before = time.perf_counter()
    record = await settle_call(services, admission, outcome)
    return record, reservation, (before, time.perf_counter())


def _row(engine: Engine, sql: str, **params: object) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).mappings().all()
    assert len(rows) == 1, rows
    return dict(rows[0])


def _call(engine: Engine, trace_id: str) -> dict[str, Any]:
    return _row(engine, "SELECT * FROM llm_calls WHERE trace_id = :t", t=trace_id)


def _spent(engine: Engine, user: uuid.UUID) -> tuple[Decimal, Decimal]:
    day, _ = budget.periods()
    row = _row(
        engine,
        "SELECT spent_usd, reserved_usd FROM spend_counters WHERE scope = :s AND period = :d",
        s=f"user:{user}",
        d=day,
    )
    return row["spent_usd"], row["reserved_usd"]


def test_a_finished_answer_is_stored_charged_recorded_and_reported_whole(
    db_url: str, db_engine: Engine
) -> None:
    user = uuid.uuid4()
    prepared = _prepared(user, triggers=[("input", Verdict("pii", "flag", "ada@example.com"))])
    outcome = Outcome(
        parts=["Port ", "8000 [2]."],
        finished=Finished(FULL, "stop", 1000, 100, 400, attempts=3),
        status="ok",
        started=time.perf_counter() - 86_400,  # a day: a slip in the ms conversion shows
        ttft_ms=12.5,
        model=MINI,
        flags=[Verdict("tone", "flag", "8000")],
    )

    async def go() -> tuple[dict[str, Any], budget.Reservation, tuple[float, float], str]:
        async with direct_services(db_url, **SETTINGS) as services:
            # $0.20 spent earlier today and $0.10 held by a call still streaming
            earlier = await budget.reserve(
                services.sessions, services.settings, user_id=user, amount=Decimal("0.20")
            )
            async with services.sessions() as session, session.begin():
                await budget.settle(session, reservation_id=earlier.id, cost=Decimal("0.20"))
            await budget.reserve(
                services.sessions, services.settings, user_id=user, amount=Decimal("0.10")
            )
            record, reservation, times = await _settle(services, prepared, outcome)
            return record, reservation, times, services.prices[FULL].source

    record, reservation, (before, after), source = asyncio.run(go())
    # gpt-4o: 600 input at $2.50/M, 400 cached at $1.25/M, 100 output at $10/M
    cost = Decimal("0.003000")
    assert record == {
        "message_id": record["message_id"],
        "model": FULL,
        "usage": {"input_tokens": 1000, "output_tokens": 100},
        "cost_usd": "0.003000",
        "remaining_today_usd": "0.19",  # 0.50 - 0.203 spent - 0.10 reserved, cent rounded down
    }
    message = _row(db_engine, "SELECT * FROM messages WHERE id = :i", i=record["message_id"])
    assert message == {
        **message,
        "conversation_id": prepared.conversation_id,
        "role": "assistant",
        "content": "Port 8000 [2].",
        "status": "ok",
        "sources": SOURCES,
        "model": FULL,
        "input_tokens": 1000,
        "output_tokens": 100,
        "cost_usd": cost,
        "trace_id": prepared.trace_id,
    }
    assert _spent(db_engine, user) == (Decimal("0.203000"), Decimal("0.100000"))
    settled = _row(db_engine, "SELECT settled_at FROM reservations WHERE id = :i", i=reservation.id)
    assert settled["settled_at"] is not None
    call = _call(db_engine, prepared.trace_id)
    latency = call.pop("latency_ms")
    assert (before - outcome.started) * 1000 - 0.1 <= latency <= (after - outcome.started) * 1000
    assert call == {
        **call,
        "user_id": user,
        "conversation_id": prepared.conversation_id,
        "feature": "chat",
        "model": FULL,
        "prompt_version": PROMPT_VERSION,
        "admission": "allowed",
        "status": "ok",
        "input_tokens": 1000,
        "cached_input_tokens": 400,
        "output_tokens": 100,
        "cost_usd": cost,
        "reserved_usd": Decimal("0.010000"),
        "ttft_ms": Decimal("12.5"),
        "reservation_id": reservation.id,
        "attempts": 3,
        "provider": "127.0.0.1",
        "price_source": source,
        "cache_hit": False,
        "saved_usd": Decimal(0),
        "question": "What port? Mail ada@example.com",
        "answer": "Port 8000 [2].",
    }
    with db_engine.connect() as conn:
        triggers = conn.execute(
            text(
                "SELECT user_id, trace_id, layer, rule, action, excerpt FROM guardrail_triggers "
                "WHERE trace_id = :t ORDER BY id"
            ),
            {"t": prepared.trace_id},
        ).all()
    assert [tuple(t) for t in triggers] == [
        (user, prepared.trace_id, "input", "pii", "flag", "ada@example.com"),
        (user, prepared.trace_id, "output", "tone", "flag", "8000"),
    ]


def test_a_retracted_answer_is_stored_and_logged_as_the_retraction_redacted(
    db_url: str, db_engine: Engine
) -> None:
    user = uuid.uuid4()
    prepared = _prepared(user, triggers=[("input", Verdict("pii", "flag", "ada@example.com"))])
    outcome = Outcome(
        parts=["Mail bob@example.com for the key"],
        finished=Finished(MINI, "stop", 1000, 10, 0),
        status="blocked:secrets",
        flags=[Verdict("tone", "flag", "carol@example.com")],
        retracted=Verdict("secrets", "block", "dave@example.com"),
    )

    async def go() -> dict[str, Any]:
        settings = {**SETTINGS, "content_logging": "redacted"}
        async with direct_services(db_url, **settings) as services:
            return (await _settle(services, prepared, outcome))[0]

    record = asyncio.run(go())
    message = _row(db_engine, "SELECT * FROM messages WHERE id = :i", i=record["message_id"])
    assert (message["content"], message["status"]) == (RETRACTED_MESSAGE, "blocked:secrets")
    call = _call(db_engine, prepared.trace_id)
    assert (call["question"], call["answer"]) == ("What port? Mail [email]", RETRACTED_MESSAGE)
    assert (call["status"], call["model"], call["attempts"]) == ("blocked:secrets", MINI, 1)
    with db_engine.connect() as conn:
        triggers = conn.execute(
            text(
                "SELECT layer, rule, action, excerpt FROM guardrail_triggers "
                "WHERE trace_id = :t ORDER BY id"
            ),
            {"t": prepared.trace_id},
        ).all()
    assert [tuple(t) for t in triggers] == [
        ("input", "pii", "flag", "[email]"),
        ("output", "tone", "flag", "[email]"),
        ("output", "secrets", "block", "[email]"),
    ]


def test_under_content_logging_none_the_ledger_keeps_no_text(
    db_url: str, db_engine: Engine
) -> None:
    prepared = _prepared(uuid.uuid4())
    outcome = Outcome(parts=["Port 8000."], finished=Finished(MINI, "stop", 10, 3, 0), status="ok")

    async def go() -> None:
        async with direct_services(db_url, **{**SETTINGS, "content_logging": "none"}) as services:
            await _settle(services, prepared, outcome)

    asyncio.run(go())
    call = _call(db_engine, prepared.trace_id)
    assert (call["question"], call["answer"]) == (None, None)


def test_a_late_settle_stores_the_answer_but_charges_nothing_twice(
    db_url: str, db_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The expiry sweep charged the whole reservation first: the ledger row is the call's
    tokens at $0, marked late and tied to no reservation; the message keeps the real cost.
    Its cost above the reservation is logged as an alert."""
    user = uuid.uuid4()
    prepared = _prepared(user)
    outcome = Outcome(parts=["x"], finished=Finished(MINI, "stop", 1000, 100, 400), status="ok")

    async def go() -> dict[str, Any]:
        async with direct_services(db_url, **SETTINGS) as services:
            return (
                await _settle(services, prepared, outcome, amount="0.0001", settled_before=True)
            )[0]

    with caplog.at_level(logging.ERROR, logger="ragship.chat"):
        record = asyncio.run(go())
    assert record["cost_usd"] == "0.000180"
    assert record["remaining_today_usd"] == "0.49"  # 0.50 - 0.0001 swept, cent rounded down
    call = _call(db_engine, prepared.trace_id)
    assert (call["status"], call["cost_usd"], call["reservation_id"]) == ("ok:late", 0, None)
    assert (call["input_tokens"], call["reserved_usd"]) == (1000, Decimal("0.000100"))
    assert _spent(db_engine, user) == (Decimal("0.000100"), 0)
    assert [r.getMessage() for r in caplog.records] == [
        f"ALERT call {prepared.trace_id} cost $0.000180, more than its reservation of $0.0001"
    ]


def test_a_call_that_costs_exactly_its_reservation_raises_no_alert(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    prepared = _prepared(uuid.uuid4())
    outcome = Outcome(parts=["x"], finished=Finished(MINI, "stop", 1000, 100, 400), status="ok")

    async def go() -> dict[str, Any]:
        async with direct_services(db_url, **SETTINGS) as services:
            return (await _settle(services, prepared, outcome, amount="0.000180"))[0]

    with caplog.at_level(logging.ERROR, logger="ragship.chat"):
        assert asyncio.run(go())["cost_usd"] == "0.000180"
    assert caplog.records == []


def test_over_the_daily_cap_nothing_remains_today(db_url: str) -> None:
    user = uuid.uuid4()
    prepared = _prepared(user)
    outcome = Outcome(parts=["x"], finished=Finished(MINI, "stop", 1000, 100, 0), status="ok")

    async def go() -> dict[str, Any]:
        settings = {**SETTINGS, "user_daily_cap_usd": Decimal("0.02")}
        async with direct_services(db_url, **settings) as services:
            ours, other = [
                await budget.reserve(
                    services.sessions, services.settings, user_id=user, amount=Decimal("0.01")
                )
                for _ in range(2)
            ]
            async with services.sessions() as session, session.begin():
                await ensure_conversation(
                    session, conversation_id=prepared.conversation_id, owner="ada", title="t"
                )  # the other call ran over its reservation:
                await budget.settle(session, reservation_id=other.id, cost=Decimal("0.05"))
            lease = StreamLease("k", "m", {})
            return await settle_call(services, Admission(prepared, lease, ours, 200), outcome)

    assert asyncio.run(go())["remaining_today_usd"] == "0.00"


PROMPT_TOKENS = count_message_tokens(MESSAGES)


@pytest.mark.parametrize(
    ("parts", "finished", "status", "usage"),
    [
        # what the upstream reported, the text's own count where it reported no output
        ([], Finished(MINI, "stop", 50, 7, 20), "ok", (50, 20, 7)),
        (["Port 8000."], Finished(MINI, "stop", 50, None, 20), "ok", (50, 20, count_tokens("Port 8000."))),
        # no usage reported: the prompt and the streamed text, counted here
        (["Port 8000."], Finished(MINI, "stop", None, 7, 20), "ok", (PROMPT_TOKENS, 0, count_tokens("Port 8000."))),
        (["Port 8000."], None, "cancelled", (PROMPT_TOKENS, 0, count_tokens("Port 8000."))),
        (["Port ", "8000."], None, "cancelled", (PROMPT_TOKENS, 0, count_tokens("Port 8000."))),
        ([], None, "cancelled", (PROMPT_TOKENS, 0, 0)),  # the client left before any token
        (["Port"], None, "error:timeout", (PROMPT_TOKENS, 0, count_tokens("Port"))),
        # an upstream failure with no text and no usage: providers bill nothing
        ([], None, "error:server", (0, 0, 0)),
        ([], Finished(MINI, None, 50, 0, 0), "error:server", (50, 0, 0)),
    ],
)  # fmt: skip
def test_the_tokens_charged_are_the_reported_ones_else_counted_and_none_for_a_failure(
    db_url: str,
    db_engine: Engine,
    parts: list[str],
    finished: Finished | None,
    status: str,
    usage: tuple[int, int, int],
) -> None:
    prepared = _prepared(uuid.uuid4())
    outcome = Outcome(parts=parts, finished=finished, status=status)

    async def go() -> dict[str, Any]:
        async with direct_services(db_url, **SETTINGS) as services:
            return (await _settle(services, prepared, outcome))[0]

    record = asyncio.run(go())
    call = _call(db_engine, prepared.trace_id)
    assert (call["input_tokens"], call["cached_input_tokens"], call["output_tokens"]) == usage
    assert record["usage"] == {"input_tokens": usage[0], "output_tokens": usage[2]}
    assert (call["model"], call["attempts"]) == (MINI, finished.attempts if finished else 1)


@pytest.mark.parametrize("local", [True, False])
def test_an_answer_made_without_the_model_is_charged_nothing(
    db_url: str, db_engine: Engine, local: bool
) -> None:
    """A cache hit (its saving recorded), or the local "I don't know" when nothing was
    retrieved: $0 and no tokens however it ended."""
    cached = None if local else CachedAnswer("Port 8000.", PASSAGES, Decimal("0.004"), True, 1.0)
    prepared = _prepared(
        uuid.uuid4(), passages=[] if local else PASSAGES, cached=cached, without_model=True
    )
    outcome = Outcome(parts=["Port 8000."], status="cancelled")

    async def go() -> dict[str, Any]:
        async with direct_services(db_url, **SETTINGS, answer_without_sources_locally=True) as s:
            return (await _settle(s, prepared, outcome))[0]

    record = asyncio.run(go())
    call = _call(db_engine, prepared.trace_id)
    assert (call["input_tokens"], call["cached_input_tokens"], call["output_tokens"]) == (0, 0, 0)
    assert (record["cost_usd"], call["cost_usd"]) == ("0.000000", 0)
    assert (call["cache_hit"], call["saved_usd"]) == (not local, Decimal("0" if local else "0.004"))


def test_with_the_local_answer_off_an_unsourced_answer_is_charged(
    db_url: str, db_engine: Engine
) -> None:
    prepared = _prepared(uuid.uuid4(), passages=[])
    outcome = Outcome(parts=["Port 8000."], status="cancelled", model=FULL)

    async def go() -> dict[str, Any]:
        async with direct_services(db_url, **SETTINGS, answer_without_sources_locally=False) as s:
            return (await _settle(s, prepared, outcome))[0]

    record = asyncio.run(go())
    call = _call(db_engine, prepared.trace_id)
    assert (call["input_tokens"], call["output_tokens"]) == (
        PROMPT_TOKENS,
        count_tokens("Port 8000."),
    )
    assert (record["model"], call["model"]) == (FULL, FULL)  # the model that was streaming
    assert call["cost_usd"] > 0


def test_the_shared_rows_are_written_last_counters_then_rollups_sent_with_the_commit(
    db_url: str, tmp_path: Path
) -> None:
    """The counters' global rows and the hourly rollup row are shared by every answer and
    stay locked until COMMIT: settling writes them after everything else, the counters in
    one statement (`ragship_charge`), then the rollups (the lock order of every writer),
    and sends them with the COMMIT in one flight, before the server has answered any of
    them (libpq's trace of the settling connection), so the locks never wait for this
    process."""
    from tests.libpq_trace import flight_from, statement_heads

    trace = tmp_path / "settle.trace"
    _settle_traced(db_url, trace)
    lines = trace.read_text().splitlines()
    charge = next(i for i, line in enumerate(lines) if "ragship_charge" in line)
    flight = flight_from(lines, charge)
    assert statement_heads(flight) == [
        "SELECT spent, reserved",
        "INSERT INTO call_rollups_hourly",
        "INSERT INTO user_rollups_daily",
        "COMMIT",
    ], flight
    assert "F\t4\tSync" in flight, flight  # sent before any answer came back
    assert any("INSERT INTO llm_calls" in line for line in lines[:charge]), lines
    assert not any("spend_counters" in line for line in lines), lines  # all in the function


def test_the_answer_and_the_reservation_leave_in_one_statement(db_url: str, tmp_path: Path) -> None:
    """Settling sends, in order: BEGIN, one statement that holds the conversation, stores
    the answer, moves `updated_at` and closes the reservation (app/settle_writes.py), then
    in one flight the ledger row, the counters, the rollups and the COMMIT: three round
    trips. Four statements, one round trip each, stood where the second is, and the ledger
    row was flushed in one of its own (bench/settle_writes.py measures the former)."""
    from tests.libpq_trace import flight_from, sent_statements, statement_heads

    trace = tmp_path / "settle.trace"
    record = _settle_traced(db_url, trace)
    assert isinstance(record["message_id"], int)
    lines = trace.read_text().splitlines()
    assert sent_statements(lines) == [
        "BEGIN ISOLATION LEVEL",
        "WITH held AS",
        "INSERT INTO llm_calls",
        "SELECT spent, reserved",
        "INSERT INTO call_rollups_hourly",
        "INSERT INTO user_rollups_daily",
        "COMMIT",
    ]
    ledger = next(i for i, line in enumerate(lines) if "INSERT INTO llm_calls" in line)
    flight = flight_from(lines, ledger)
    assert statement_heads(flight)[:2] == ["INSERT INTO llm_calls", "SELECT spent, reserved"]
    assert "F\t4\tSync" in flight, flight  # one Sync after the COMMIT: one round trip


def _settle_traced(db_url: str, trace: Path) -> dict[str, Any]:
    """Settle a finished answer in its own conversation, libpq tracing the settling
    connection into ``trace``; the record `settle_call` returned."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    from tests.libpq_trace import traced_checkouts

    user = uuid.uuid4()
    outcome = Outcome(parts=["Port 8000."], finished=Finished(MINI, "stop", 10, 3, 0), status="ok")

    async def go() -> dict[str, Any]:
        async with direct_services(db_url, **SETTINGS) as services:
            engine: AsyncEngine = services.sessions.kw["bind"]
            prepared = _prepared(user)
            reservation = await budget.reserve(
                services.sessions, services.settings, user_id=user, amount=Decimal("0.01")
            )
            async with services.sessions() as session, session.begin():
                await ensure_conversation(
                    session, conversation_id=prepared.conversation_id, owner="ada", title="t"
                )
            admission = Admission(prepared, StreamLease("k", "m", {}), reservation, 200)
            with trace.open("w") as sink, traced_checkouts(engine, sink):
                return await settle_call(services, admission, outcome)

    return asyncio.run(go())
