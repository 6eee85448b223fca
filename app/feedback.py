"""Thumbs up/down on answers, and turning thumbs-down answers into draft eval cases."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Feedback, Message, utcnow


class MessageNotFound(Exception):
    pass


async def give_feedback(
    session: AsyncSession, *, message_id: int, user_id: uuid.UUID, rating: int, comment: str
) -> None:
    """Record (or change) this user's rating of one of their own answers."""
    owner = await session.scalar(
        select(Conversation.owner)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.id == message_id, Message.role == "assistant")
    )
    if owner != str(user_id):
        raise MessageNotFound(str(message_id))
    values = {
        "message_id": message_id,
        "user_id": user_id,
        "rating": rating,
        "comment": comment,
        "created_at": utcnow(),
    }
    await session.execute(
        insert(Feedback)
        .values(**values)
        .on_conflict_do_update(
            constraint="uq_feedback_message_user",
            set_={"rating": rating, "comment": comment, "created_at": values["created_at"]},
        )
    )


async def draft_cases(session: AsyncSession, *, limit: int = 200) -> list[dict[str, Any]]:
    """Thumbs-down answers as draft eval cases, for a person to review and complete."""
    rows = (
        await session.execute(
            select(Feedback, Message)
            .join(Message, Message.id == Feedback.message_id)
            .where(Feedback.rating == -1)
            .order_by(Feedback.created_at.desc())
            .limit(limit)
        )
    ).all()
    drafts = []
    for feedback, answer in rows:
        question = await session.scalar(
            select(Message.content)
            .where(
                Message.conversation_id == answer.conversation_id,
                Message.role == "user",
                Message.id < answer.id,
            )
            .order_by(Message.id.desc())
            .limit(1)
        )
        drafts.append(
            {
                "id": f"feedback-{feedback.id}",
                "status": "draft",
                "question": question or "",
                "expected_behaviour": "answer",
                "expected_sources": [
                    f"{s.get('source')}#{str(s.get('url', '')).partition('#')[2]}"
                    for s in answer.sources
                ],
                "key_facts": [],
                "notes": {
                    "answer_given": answer.content,
                    "user_comment": feedback.comment,
                    "trace_id": answer.trace_id,
                },
            }
        )
    return drafts
