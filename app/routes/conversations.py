"""The caller's conversations and feedback on its answers: list, read, rename, delete, rate.
For a signed-in browser, or a script with a personal access token (app/auth/tokens.py)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, field_validator

from app.conversations import (
    ConversationNotFound,
    conversation_messages,
    delete_conversation,
    list_conversations,
    message_ratings,
    rename_conversation,
)
from app.db import session_scope
from app.deps import ApiUserDep, ServicesDep
from app.feedback import MessageNotFound, give_feedback
from app.http.params import RowId
from app.textclean import CleanStr

router = APIRouter(prefix="/api", tags=["chat"])


@router.get("/conversations")
async def conversations(services: ServicesDep, user: ApiUserDep) -> list[dict[str, Any]]:
    async with session_scope(services.sessions) as session:
        rows = await list_conversations(session, owner=str(user.id))
    return [
        {"id": str(c.id), "title": c.title, "updated_at": c.updated_at.isoformat()} for c in rows
    ]


@router.get("/conversations/{conversation_id}")
async def conversation(
    conversation_id: uuid.UUID, services: ServicesDep, user: ApiUserDep
) -> dict[str, Any]:
    try:
        async with session_scope(services.sessions) as session:
            messages = await conversation_messages(
                session, conversation_id=conversation_id, owner=str(user.id)
            )
            ratings = await message_ratings(
                session, message_ids=[m.id for m in messages], user_id=user.id
            )
    except ConversationNotFound as err:
        raise HTTPException(404, "No such conversation.") from err
    return {
        "id": str(conversation_id),
        "messages": [
            {
                "id": m.id,
                "role": m.role,
                "content": m.content,
                "sources": m.sources,
                "status": m.status,
                "trace_id": m.trace_id,
                "rating": ratings.get(m.id),
            }
            for m in messages
        ],
    }


class RenameRequest(BaseModel):
    title: CleanStr = Field(min_length=1, max_length=80)

    @field_validator("title")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("title must not be blank")
        return value.strip()


@router.patch("/conversations/{conversation_id}")
async def rename(
    conversation_id: uuid.UUID, body: RenameRequest, services: ServicesDep, user: ApiUserDep
) -> dict[str, Any]:
    """Rename one of the user's conversations."""
    try:
        async with session_scope(services.sessions) as session:
            await rename_conversation(
                session, conversation_id=conversation_id, owner=str(user.id), title=body.title
            )
    except ConversationNotFound as err:
        raise HTTPException(404, "No such conversation.") from err
    return {"id": str(conversation_id), "title": body.title}


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete(conversation_id: uuid.UUID, services: ServicesDep, user: ApiUserDep) -> None:
    """Delete one of the user's conversations and its messages for good (docs/chat-api.md)."""
    try:
        async with session_scope(services.sessions) as session:
            await delete_conversation(session, conversation_id=conversation_id, owner=str(user.id))
    except ConversationNotFound as err:
        raise HTTPException(404, "No such conversation.") from err


class FeedbackRequest(BaseModel):
    rating: Literal["up", "down"]
    comment: CleanStr = Field("", max_length=2000)


@router.post("/messages/{message_id}/feedback")
async def feedback(
    message_id: RowId, body: FeedbackRequest, services: ServicesDep, user: ApiUserDep
) -> dict[str, Any]:
    """Thumbs up or down (with an optional comment) on one of the user's answers."""
    rating = 1 if body.rating == "up" else -1
    try:
        async with session_scope(services.sessions) as session:
            await give_feedback(
                session, message_id=message_id, user_id=user.id, rating=rating, comment=body.comment
            )
    except MessageNotFound as err:
        raise HTTPException(404, "No such answer.") from err
    return {"message_id": message_id, "rating": body.rating}
