"""Conversations and their messages: create, load bounded history, append."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Runner
from app.models import Conversation, Feedback, LLMCall, Message, utcnow


class ConversationNotFound(Exception):
    pass


async def find_conversation(
    session: AsyncSession, *, conversation_id: uuid.UUID, owner: str
) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.owner != owner:
        raise ConversationNotFound(str(conversation_id))
    return conversation


async def conversation_summary(
    db: Runner, *, conversation_id: uuid.UUID, owner: str
) -> tuple[str | None, int | None]:
    """The running summary of ``owner``'s conversation and the id of the last message it
    covers (None, None before any fold), as Core columns: it runs on the request path's
    `autocommit_connection`, which has no ORM session. Raises ConversationNotFound for a
    conversation that does not exist or is someone else's."""
    row = (
        await db.execute(
            select(Conversation.summary, Conversation.summary_through).where(
                Conversation.id == conversation_id, Conversation.owner == owner
            )
        )
    ).first()
    if row is None:
        raise ConversationNotFound(str(conversation_id))
    return row[0], row[1]


async def ensure_conversation(
    session: AsyncSession, *, conversation_id: uuid.UUID, owner: str, title: str
) -> None:
    """Create the conversation when its first question is admitted."""
    if await session.get(Conversation, conversation_id) is None:
        add_new_conversation(session, conversation_id=conversation_id, owner=owner, title=title)
        await session.flush()


def add_new_conversation(
    session: AsyncSession, *, conversation_id: uuid.UUID, owner: str, title: str
) -> None:
    """Add a conversation whose id was just made (no row can have it: no lookup first); it
    is inserted with the session's next flush, before any message added with it."""
    session.add(Conversation(id=conversation_id, owner=owner, title=new_title(title)))


def new_title(question: str) -> str:
    """A new conversation's title: its first question, trimmed, at most 80 characters."""
    return question.strip()[:80] or "New conversation"


async def hold_conversation(session: AsyncSession, *, conversation_id: uuid.UUID) -> bool:
    """Lock the conversation against deletion until the transaction ends (``FOR KEY SHARE``:
    a concurrent delete waits). False when it is gone: deleted by its owner, say, while an
    answer streamed."""
    row = await session.execute(
        select(Conversation.id)
        .where(Conversation.id == conversation_id)
        .with_for_update(key_share=True)
    )
    return row.first() is not None


async def append_message(
    session: AsyncSession,
    *,
    conversation_id: uuid.UUID,
    role: str,
    content: str,
    status: str = "ok",
    sources: list[dict[str, Any]] | None = None,
    model: str | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: Decimal = Decimal(0),
    trace_id: str | None = None,
    touch: bool = True,
) -> int:
    """Add a message and flush it; its id. `touch` also moves the conversation's
    `updated_at` to now (not needed when the conversation was added in this transaction)."""
    message = Message(
        conversation_id=conversation_id,
        role=role,
        content=content,
        status=status,
        sources=sources or [],
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        trace_id=trace_id,
        created_at=utcnow(),
    )
    session.add(message)
    if touch:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(updated_at=utcnow())
        )
    await session.flush()
    return message.id


async def list_conversations(
    session: AsyncSession, *, owner: str, limit: int = 50
) -> list[Conversation]:
    rows = await session.execute(
        select(Conversation)
        .where(Conversation.owner == owner)
        .order_by(Conversation.updated_at.desc())
        .limit(limit)
    )
    return list(rows.scalars())


async def conversation_messages(
    session: AsyncSession, *, conversation_id: uuid.UUID, owner: str
) -> list[Message]:
    await find_conversation(session, conversation_id=conversation_id, owner=owner)
    rows = await session.execute(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
    )
    return list(rows.scalars())


async def unsummarised_history(
    session: Runner, *, conversation_id: uuid.UUID, after: int | None, limit: int
) -> list[tuple[int, str, str]]:
    """(id, role, content) of the completed messages after message `after` (the last one
    the running summary covers; None: from the start), oldest first, at most the newest
    `limit`."""
    query = select(Message.id, Message.role, Message.content).where(
        Message.conversation_id == conversation_id, Message.status == "ok"
    )
    if after is not None:
        query = query.where(Message.id > after)
    rows = await session.execute(query.order_by(Message.id.desc()).limit(limit))
    return [(i, role, content) for i, role, content in reversed(rows.all())]


async def message_ratings(
    session: AsyncSession, *, message_ids: list[int], user_id: uuid.UUID
) -> dict[int, str]:
    """This user's thumbs on these messages: message id -> "up" or "down"."""
    if not message_ids:
        return {}
    rows = await session.execute(
        select(Feedback.message_id, Feedback.rating).where(
            Feedback.message_id.in_(message_ids), Feedback.user_id == user_id
        )
    )
    return {message_id: "up" if rating > 0 else "down" for message_id, rating in rows.all()}


async def rename_conversation(
    session: AsyncSession, *, conversation_id: uuid.UUID, owner: str, title: str
) -> None:
    """Set the title (1-80 characters, trimmed). Raises ConversationNotFound."""
    conversation = await find_conversation(session, conversation_id=conversation_id, owner=owner)
    conversation.title = title.strip()[:80]
    await session.flush()


async def delete_conversation(
    session: AsyncSession, *, conversation_id: uuid.UUID, owner: str
) -> None:
    """Delete the conversation for good: its messages and their feedback, the answer it put
    in the response cache (cascading foreign keys), and the question and answer text of its
    call records. The call records themselves stay, without text, for cost accounting.
    Raises ConversationNotFound.

    The row is deleted first: an answer settling at that moment holds it (`hold_conversation`),
    so the delete waits for that settle to commit and the text update below then sees its
    call record too."""
    await find_conversation(session, conversation_id=conversation_id, owner=owner)
    await session.execute(delete(Conversation).where(Conversation.id == conversation_id))
    await session.execute(
        update(LLMCall)
        .where(LLMCall.conversation_id == conversation_id)
        .values(question=None, answer=None)
    )
