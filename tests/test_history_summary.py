"""History summarisation over HTTP: a 60-turn conversation stays inside its context budget
at every turn, and a fact stated in turn 2 is still in the running summary at turn 60."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from app.localmodel.summary import summarise
from app.rag.prompt import SUMMARY_HEADING
from app.rag.summarise import SUMMARY_PROMPT_VERSION, summary_messages
from app.tokens import count_message_tokens, count_tokens
from tests.conftest import LocalModel, sign_in
from tests.sse import chat

FACT = "Remember that my deployment is called bluefin-42."
QUESTIONS = [
    "How do I run the tests?",
    "How do I ingest PDF files?",
    "What are the caps on spending?",
    "How does the circuit breaker work?",
    "How are prices of models found?",
    "What happens when ingest is interrupted?",
]
WINDOW, MAX_OUTPUT = 2048, 512  # 1536 tokens of prompt: 384 for history, 153 for the summary


def test_sixty_turns_stay_in_budget_and_keep_a_fact_from_turn_two(
    start_app: Any, local_model: LocalModel, db_engine: Engine
) -> None:
    server = start_app(llm_context_window=WINDOW, rate_limit_requests=10_000)
    conversation_id = None
    with sign_in(server.url, "tess@example.com") as client:
        for turn in range(1, 61):
            question = QUESTIONS[turn % len(QUESTIONS)]
            if turn == 2:
                question = f"{FACT} {question}"
            events = chat(client, question, conversation_id=conversation_id)
            assert events[-1][0] == "done", (turn, events[-1])
            conversation_id = events[0][1]["conversation_id"]
            sent = local_model.stats()["last_messages"]
            assert isinstance(sent, list)
            assert count_message_tokens(sent) <= WINDOW - MAX_OUTPUT, turn
    assert sent[1]["role"] == "system" and sent[1]["content"].startswith(SUMMARY_HEADING)
    assert "bluefin-42" in sent[1]["content"]  # the summary went to the model at turn 60
    with db_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT summary FROM conversations WHERE id = :id"), {"id": conversation_id}
        ).scalar_one()
        calls = conn.execute(
            text(
                "SELECT status, prompt_version, cost_usd, reserved_usd, reservation_id "
                "FROM llm_calls WHERE conversation_id = :id AND feature = 'summary'"
            ),
            {"id": conversation_id},
        ).all()
    assert "bluefin-42" in stored and count_tokens(stored) <= int(0.10 * (WINDOW - MAX_OUTPUT))
    assert 5 <= len(calls) < 60  # folded now and then, not every turn
    for status, version, cost, reserved, reservation in calls:
        assert status == "ok" and version == SUMMARY_PROMPT_VERSION
        assert 0 < cost <= reserved and reservation is not None  # priced, reserved, settled


def test_the_built_in_model_keeps_statements_first_and_the_newest_questions() -> None:
    older = [
        (1, "user", "My team is Orion. How do I run the tests?"),
        (2, "assistant", "Run make test [1]."),
        (3, "user", "How do I ingest PDF files?"),
        (4, "assistant", "Put them in docs [2]."),
    ]
    summary = summarise(summary_messages("Asked: What is ragship?", older), max_tokens=20)
    lines = summary.splitlines()
    assert lines[0] == "My team is Orion."
    assert "Asked: How do I ingest PDF files?" in lines  # the newest question first
    assert "Run make test" not in summary and count_tokens(summary) <= 20
