"""The context budget over HTTP: prompts sized to the model's window before they are sent."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from app.rag.context_budget import fit_history, fit_passages, history_tokens, passage_tokens
from app.rag.prompt import PROMPT_VERSION, system_prompt
from app.rag.retrieve import Passage
from app.tokens import count_message_tokens, count_tokens
from tests.conftest import LocalModel, make_settings, scalar, sign_in
from tests.sse import chat

QUESTIONS = [
    "How do I run the tests?",
    "How do I ingest PDF files?",
    "What are the caps on spending?",
    "How does the circuit breaker work?",
    "How are prices of models found?",
    "What happens when ingest is interrupted?",
]


def test_a_long_conversation_stays_inside_a_small_window(
    start_app: Any, local_model: LocalModel
) -> None:
    # 2048-token window, 512 set aside for the answer: 1536 for the prompt, 768 of them
    # for passages (about two chunks) and 384 for history.
    server = start_app(llm_context_window=2048, rate_limit_requests=10_000)
    with sign_in(server.url, "lin@example.com") as client:
        conversation_id, sources, kept = None, [], []
        for question in QUESTIONS:
            events = chat(client, question, conversation_id=conversation_id)
            assert events[-1][0] == "done", events[-1]
            conversation_id = events[0][1]["conversation_id"]
            sent = local_model.stats()["last_messages"]
            assert isinstance(sent, list)
            assert count_message_tokens(sent) <= 2048 - 512
            sources.append(len(events[1][1]["sources"]))
            assert count_tokens(sent[-1]["content"]) <= 768 + count_tokens(question)
            history = [m for m in sent[1:-1] if m["role"] != "system"]  # not the summary
            assert history_tokens(history) <= 384
            assert not history or history[0]["role"] == "user"
            kept.append(len(history))
        assert min(sources) < 5  # top-k is 5: the least relevant passages were dropped
        # Turns were sent verbatim, and the oldest dropped. (Right after a fold, the newest
        # turn alone may exceed half the history share, and is folded too: which turn that
        # is depends on the answers, so on the docs corpus.)
        assert max(kept) > 0 and kept[-1] < 2 * (len(QUESTIONS) - 1)


def test_a_prompt_that_cannot_fit_is_refused_before_the_upstream(
    start_app: Any, local_model: LocalModel, db_engine: Engine
) -> None:
    server = start_app(llm_context_window=1024, rate_limit_requests=10_000)
    question = "How do I ingest PDF files " + "and configure the retrieval settings " * 40
    with sign_in(server.url, "kit@example.com") as client:
        before = local_model.stats()["requests"]
        response = client.post("/api/chat", json={"message": question})
        assert response.status_code == 413
        assert "the model's window leaves for input" in response.text
        assert local_model.stats()["requests"] == before
    refused = scalar(
        db_engine,
        "SELECT count(*) FROM llm_calls c JOIN users u ON u.id = c.user_id "
        "WHERE u.email = 'kit@example.com' AND c.admission = 'context_window'",
    )
    assert refused == 1


def _passage(n: int, words: int) -> Passage:
    return Passage(n, 1, "docs/x.md", "X", "A", f"a{n}", "word " * words, 1.0 / n, 0.5)


def test_passages_are_kept_most_relevant_first_and_the_best_is_cut_rather_than_lost() -> None:
    passages = [_passage(n, 100) for n in range(1, 6)]
    kept = fit_passages(passages, 3 * passage_tokens(passages[0]))
    assert [p.chunk_id for p in kept] == [1, 2, 3]
    cut = fit_passages([_passage(1, 1000)], 200)
    assert len(cut) == 1 and passage_tokens(cut[0]) <= 200


def test_history_keeps_the_newest_turns_and_starts_with_a_question() -> None:
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "x " * 50}
        for i in range(10)
    ]
    kept = fit_history(history, 180)
    assert kept and kept[-1] is history[-1] and kept[0]["role"] == "user"
    assert len(kept) < len(history)


def test_shares_over_the_whole_budget_stop_the_start() -> None:
    with pytest.raises(ValidationError, match="CONTEXT_SHARE_"):
        make_settings(context_share_passages=0.9, context_share_history=0.5)


def test_prompts_near_the_window_raise_the_prompt_size_alert(start_app: Any) -> None:
    alerting = {
        "llm_context_window": 2048,
        "admin_emails": "ops@example.com",
        "alert_min_calls": 2,
        "alert_cooldown_s": 0,
        "rate_limit_requests": 10_000,
    }
    squeezed = start_app(**alerting, alert_prompt_size_share=0.3)  # 30 % of 1536 tokens
    with sign_in(squeezed.url, "ops@example.com") as ops:
        for question in QUESTIONS[:2]:
            assert chat(ops, question)[-1][0] == "done"
        fired = ops.post("/api/admin/dashboard/alerts/evaluate").json()
    assert [a["rule"] for a in fired if a["rule"] == "prompt_size"] == ["prompt_size"]
    assert "of the 1536-token input budget" in next(
        a["message"] for a in fired if a["rule"] == "prompt_size"
    )
    # The same prompts against a 100k window are far from it: no alert.
    roomy = start_app(**{**alerting, "llm_context_window": 100_000})
    with sign_in(roomy.url, "ops@example.com") as ops:
        fired = ops.post("/api/admin/dashboard/alerts/evaluate").json()
    assert "prompt_size" not in [a["rule"] for a in fired]


def test_a_kept_system_count_is_the_count() -> None:
    """A system message's count is kept between prompts (app/tokens.py): counting the same
    prompt again, and one whose other messages changed, gives tiktoken's count of each."""
    system = system_prompt(PROMPT_VERSION, bot_name="Ragship")
    for question in ("How do I ingest PDF files?", "And Markdown?", "And Markdown?"):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        assert count_message_tokens(messages) == 3 + 6 + count_tokens(system) + count_tokens(
            question
        )
