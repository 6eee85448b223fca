"""Storing the question before the first token, against the real PostgreSQL: a new
conversation costs two INSERTs and the commit (no lookup, no `updated_at` update); a
follow-up question moves the conversation's `updated_at`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.chat import record_question
from app.llm.routing import ARM_MAIN, Route
from app.prepare import PreparedChat
from app.rag.prompt import PROMPT_VERSION
from tests.conftest import scalar
from tests.direct import direct_services


def _prepared(conversation_id: uuid.UUID, *, new: bool, question: str) -> PreparedChat:
    return PreparedChat(
        user_id=uuid.uuid4(),
        conversation_id=conversation_id,
        is_new_conversation=new,
        question=question,
        trace_id=uuid.uuid4().hex,
        passages=[],
        messages=[],
        route=Route(ARM_MAIN, "m", PROMPT_VERSION, ("m",)),
    )


def _record(db_url: str, prepared: PreparedChat) -> list[str]:
    """Record the question; the SQL statements it sent, by their first two words."""

    async def go() -> list[str]:
        async with direct_services(db_url) as services:
            engine: AsyncEngine = services.sessions.kw["bind"]
            sent: list[str] = []

            def seen(*args: Any) -> None:
                sent.append(" ".join(args[2].split()[:3]))

            event.listen(engine.sync_engine, "before_cursor_execute", seen)
            await record_question(services, prepared)
            await engine.dispose()
            return sent

    return asyncio.run(go())


def test_a_new_conversation_and_its_question_take_two_inserts(
    db_url: str, db_engine: Engine
) -> None:
    conversation = uuid.uuid4()
    sent = _record(db_url, _prepared(conversation, new=True, question="  How do I ingest? "))
    assert sent == ["INSERT INTO conversations", "INSERT INTO messages"]
    title = "SELECT title FROM conversations WHERE id = :c"
    assert scalar(db_engine, title, c=conversation) == "How do I ingest?"
    first = "SELECT content FROM messages WHERE conversation_id = :c AND role = 'user'"
    assert scalar(db_engine, first, c=conversation) == "  How do I ingest? "

    updated = "SELECT updated_at FROM conversations WHERE id = :c"
    before = scalar(db_engine, updated, c=conversation)
    sent = _record(db_url, _prepared(conversation, new=False, question="And PDFs?"))
    assert sent == ["INSERT INTO messages", "UPDATE conversations SET"]
    assert scalar(db_engine, updated, c=conversation) > before
    count = "SELECT count(*) FROM messages WHERE conversation_id = :c"
    assert scalar(db_engine, count, c=conversation) == 2
