"""What the call log keeps of questions and answers, and for how long."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db import make_async_engine
from app.localmodel.runner import BackgroundServer
from app.observability.redact import for_call_log, redact
from app.observability.retention import RETENTION_LOCK, enforce_retention
from tests.conftest import scalar, sign_in
from tests.sse import chat


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("write to ada.l@example.co.uk today", "write to [email] today"),
        ("call +44 20 7946 0958 or 555-123-4567", "call [phone] or [phone]"),
        ("card 4111 1111 1111 1111, exp 12/29", "card [card], exp 12/29"),
        ("sk-proj-abcdefghijklmnop1234 and AKIAABCDEFGHIJKLMNOP", "[key] and [key]"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abcdefgh", "Authorization: Bearer [key]"),
        (
            "How do I run make test on port 8000 in 2026?",
            "How do I run make test on port 8000 in 2026?",
        ),
    ],
)
def test_redaction(raw: str, masked: str) -> None:
    assert redact(raw) == masked


def test_the_call_log_keeps_the_text_whole_masked_or_nothing() -> None:
    text = "mail ada@example.com"
    assert for_call_log(text, policy="full") == text
    assert for_call_log(text, policy="redacted") == "mail [email]"
    assert for_call_log(text, policy="none") is None


QUESTION = "Which emails does ALLOWED_EMAILS let sign in? Reply to grace@example.com"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


@pytest.mark.parametrize(
    ("policy", "stored"),
    [
        ("full", QUESTION),
        ("redacted", "Which emails does ALLOWED_EMAILS let sign in? Reply to [email]"),
        ("none", None),
    ],
)
def test_content_logging_policy(
    start_app, db_engine: Engine, policy: str, stored: str | None
) -> None:  # type: ignore[no-untyped-def]
    app: BackgroundServer = start_app(content_logging=policy)
    email = f"content-{policy}@example.com"
    with sign_in(app.url, email) as client:
        events = chat(client, QUESTION)
    assert events[-1][0] == "done"
    answer = "".join(d["text"] for n, d in events if n == "token")
    assert EMAIL.search(answer), answer  # the cited docs quote addresses: something to mask
    sql = "SELECT c.question FROM llm_calls c JOIN users u ON u.id = c.user_id WHERE u.email = :e"
    assert scalar(db_engine, sql, e=email) == stored
    answer_sql = (
        "SELECT c.answer FROM llm_calls c JOIN users u ON u.id = c.user_id WHERE u.email = :e"
    )
    kept = scalar(db_engine, answer_sql, e=email)
    expected = {"full": answer, "redacted": redact(answer), "none": None}[policy]
    assert kept == expected
    if policy == "redacted":
        assert isinstance(kept, str) and "[email]" in kept and not EMAIL.search(kept)


def test_retention_deletes_old_conversations_and_erases_old_call_content(
    db_url: str, db_engine: Engine
) -> None:
    old, new = uuid.uuid4(), uuid.uuid4()
    with db_engine.begin() as conn:
        for cid, age in ((old, "40 days"), (new, "1 day")):
            conn.execute(
                text(
                    "INSERT INTO conversations VALUES (:id, 'retention-test', 't', now() - CAST(:age AS interval), now() - CAST(:age AS interval))"
                ),
                {"id": cid, "age": age},
            )
            conn.execute(
                text(
                    "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (:id, 'user', 'hi', now())"
                ),
                {"id": cid},
            )
        conn.execute(
            text(
                "INSERT INTO llm_calls (created_at, feature, model, admission, status, question, answer, cost_usd, reserved_usd) "
                "VALUES (now() - interval '40 days', 'chat', 'm', 'allowed', 'ok', 'old q', 'old a', 0.01, 0.01)"
            )
        )

    async def go() -> dict[str, int] | None:
        engine = make_async_engine(db_url)
        try:
            return await enforce_retention(async_sessionmaker(engine), days=30)
        finally:
            await engine.dispose()

    # Another replica enforcing retention holds the lock: this one skips and deletes nothing.
    with db_engine.connect() as other, other.begin():
        assert other.scalar(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": RETENTION_LOCK})
        assert asyncio.run(go()) is None
    assert scalar(db_engine, "SELECT count(*) FROM conversations WHERE id = :id", id=old) == 1
    counts = asyncio.run(go())  # the lock is free again
    assert counts is not None
    assert counts["conversations"] >= 1 and counts["call_content"] >= 1
    assert scalar(db_engine, "SELECT count(*) FROM conversations WHERE id = :id", id=old) == 0
    assert (
        scalar(db_engine, "SELECT count(*) FROM messages WHERE conversation_id = :id", id=old) == 0
    )
    assert scalar(db_engine, "SELECT count(*) FROM conversations WHERE id = :id", id=new) == 1
    assert scalar(db_engine, "SELECT count(*) FROM llm_calls WHERE question = 'old q'") == 0
    assert (
        scalar(db_engine, "SELECT count(*) FROM llm_calls WHERE cost_usd = 0.01 AND model = 'm'")
        == 1
    )  # the books stay
