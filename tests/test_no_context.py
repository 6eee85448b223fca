"""Nothing retrieved: "I don't know" is answered locally, at $0, with no upstream request."""

from __future__ import annotations

from decimal import Decimal

import httpx
from sqlalchemy import Engine, text

from app.localmodel.answer import DONT_KNOW
from app.rag.no_context import DONT_KNOW_MESSAGE
from tests.conftest import LocalModel, sign_in
from tests.sse import chat

OUT_OF_SCOPE = "What was the score of the 1998 World Cup final?"


def _call(engine: Engine, trace_id: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT status, cost_usd, input_tokens, output_tokens, attempts, reserved_usd, "
                "(SELECT sum(s.reserved_usd) FROM spend_counters s "
                " WHERE s.scope = 'user:' || c.user_id::text) AS user_reserved "
                "FROM llm_calls c WHERE c.trace_id = :t"
            ),
            {"t": trace_id},
        ).one()
    return dict(row._mapping)


def test_nothing_retrieved_is_answered_without_calling_the_model(
    client: httpx.Client, local_model: LocalModel, db_engine: Engine
) -> None:
    before = local_model.stats()["requests"]
    events = chat(client, OUT_OF_SCOPE)
    assert local_model.stats()["requests"] == before  # the upstream got no request
    assert events[1][1]["sources"] == []
    assert "".join(d["text"] for n, d in events if n == "token") == DONT_KNOW_MESSAGE
    done = events[-1]
    assert done[0] == "done" and Decimal(done[1]["cost_usd"]) == 0
    assert done[1]["usage"] == {"input_tokens": 0, "output_tokens": 0}
    call = _call(db_engine, events[0][1]["trace_id"])
    assert call["status"] == "no_context" and call["cost_usd"] == 0
    assert call["input_tokens"] == call["output_tokens"] == call["attempts"] == 0
    # The early reservation's bound (app/caps/early.py) was held for the instant of the
    # local answer, then freed: nothing stays reserved, and nothing was charged.
    assert call["reserved_usd"] > 0 and call["user_reserved"] == 0  # type: ignore[operator]


def test_the_local_answer_is_the_one_the_prompt_asks_the_model_for() -> None:
    assert DONT_KNOW_MESSAGE == DONT_KNOW


def test_turned_off_the_model_is_asked_and_charged(
    start_app, local_model: LocalModel, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    server = start_app(answer_without_sources_locally=False, rate_limit_requests=10_000)
    with sign_in(server.url, "grace@example.com") as client:
        before = local_model.stats()["requests"]
        events = chat(client, OUT_OF_SCOPE)
        assert local_model.stats()["requests"] == before + 1
    assert Decimal(events[-1][1]["cost_usd"]) > 0
    assert _call(db_engine, events[0][1]["trace_id"])["status"] == "ok"


def test_without_the_early_reservation_nothing_is_held_for_the_local_answer(
    start_app, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    """EARLY_RESERVATION=false: the request reserves its exact amount after retrieval, $0
    for an answer without the model (docs/caps.md, "The early reservation")."""
    server = start_app(early_reservation=False, rate_limit_requests=10_000)
    with sign_in(server.url, "hopper@example.com") as client:
        events = chat(client, OUT_OF_SCOPE)
    call = _call(db_engine, events[0][1]["trace_id"])
    assert call["status"] == "no_context" and call["reserved_usd"] == 0
    assert call["user_reserved"] == 0
