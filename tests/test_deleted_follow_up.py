"""A follow-up whose conversation is deleted after `prepare_chat` read it and before its
reservation's statement locks it, over real HTTP against the real PostgreSQL, the delete
through its real route: answered 404 like any unknown conversation, nothing reserved or
stored, no refusal on the books, and the user's one stream slot is free at once.

The race is made deterministic with row locks, no sleeps: the delete's transaction is held
after it deleted the conversation's row (uncommitted, so the follow-up's `prepare_chat`
still reads the conversation), and the follow-up's lock then waits for it to commit."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, text

from app.caps import budget
from app.localmodel.runner import BackgroundServer
from tests.conftest import eventually, scalar, sign_in
from tests.sse import chat

EMAIL = "deleted-follow-up@example.com"
_WAITING = text(
    "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND state = 'active' AND query LIKE :start"
)
# Reached by the delete's transaction after it deleted the conversation's row, before commit.
_HOLD_CALL_TEXT = text(
    "SELECT 1 FROM llm_calls WHERE conversation_id = CAST(:c AS uuid) FOR UPDATE"
)


def _waiting(engine: Engine, start: str) -> list[tuple[int, list[int]]]:
    """(pid, the pids it waits for) of each active statement that starts with ``start``."""
    with engine.connect() as conn:
        rows = conn.execute(_WAITING, {"start": f"{start}%"}).all()
    return [(pid, list(blockers)) for pid, blockers in rows]


def _books(engine: Engine, user_id: object) -> tuple[Any, ...]:
    """The user's reservations, call records (refusals included) and today's counter."""
    day, _ = budget.periods()
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM reservations WHERE user_id = :u), "
                    "(SELECT count(*) FROM llm_calls WHERE user_id = :u), "
                    "(SELECT spent_usd FROM spend_counters WHERE scope = :s AND period = :d), "
                    "(SELECT reserved_usd FROM spend_counters WHERE scope = :s AND period = :d)"
                ),
                {"u": user_id, "s": f"user:{user_id}", "d": day},
            ).one()
        )


def test_a_follow_up_whose_conversation_was_just_deleted_is_404_and_leaves_nothing(
    start_app: Callable[..., BackgroundServer], db_engine: Engine
) -> None:
    server = start_app(max_concurrent_streams=1)  # a leaked stream slot would refuse (429)
    with sign_in(server.url, EMAIL) as client:
        conversation_id = chat(client, "How do I ingest PDF files?")[0][1]["conversation_id"]
        user_id = scalar(db_engine, "SELECT id FROM users WHERE email = :e", e=EMAIL)
        before = _books(db_engine, user_id)
        assert before[0] == 1 and before[1] == 1  # the first answer's reservation and call
        holder = db_engine.connect()
        try:
            holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
            holder.execute(_HOLD_CALL_TEXT, {"c": conversation_id})
            with ThreadPoolExecutor(2) as pool:
                deleting = pool.submit(client.delete, f"/api/conversations/{conversation_id}")
                eventually(
                    lambda: (
                        [b for _, b in _waiting(db_engine, "UPDATE llm_calls")] == [[holder_pid]]
                    ),
                    what="the delete holds the deleted row, waiting to erase the call's text",
                )
                delete_pid = _waiting(db_engine, "UPDATE llm_calls")[0][0]
                body = {"message": "And HTML files?", "conversation_id": conversation_id}
                asking = pool.submit(client.post, "/api/chat", json=body)
                eventually(
                    lambda: [b for _, b in _waiting(db_engine, "WITH held AS")] == [[delete_pid]],
                    what="the follow-up, prepared, waits at its lock for the delete",
                )
                holder.rollback()  # the delete goes on and commits
                assert deleting.result(timeout=60).status_code == 204
                answer = asking.result(timeout=60)
        finally:
            holder.close()
        assert answer.status_code == 404, answer.text
        missing = client.get(f"/api/conversations/{conversation_id}")
        assert missing.status_code == 404
        assert answer.json() == missing.json() == {"detail": "No such conversation."}
        # Nothing reserved, no counter moved, no refusal (nor any call) recorded, no message.
        assert _books(db_engine, user_id) == before
        messages = "SELECT count(*) FROM messages WHERE conversation_id = CAST(:c AS uuid)"
        assert scalar(db_engine, messages, c=conversation_id) == 0
        # The one stream slot was given back: the next question is answered at once.
        assert chat(client, "What is ragship?")[-1][0] == "done"
