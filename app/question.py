"""The question, stored in the reservation's statement: when the cap chain admits a chat
request, the same single statement that reserves its money also inserts the conversation
(when new) and the user's message, or moves an existing conversation's `updated_at`; a
refused request stores nothing. The statement is the early reservation's, in the search's
round trip (app/caps/early.py), or the exact reservation's after it; an early reservation
given back takes the writes back with it (`AdmittedWrites.undo`).

The cap chain stays ignorant of conversations: this module hands it SQL to run when the
reservation is allowed (`budget.AdmittedWrites`), and the chain passes it along.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from app.caps.budget import AdmittedWrites
from app.conversations import ConversationNotFound, new_title
from app.models import utcnow

# Each reads FROM admitted: one row when the reservation is allowed, none when refused.
_NEW_CONVERSATION = (
    "INSERT INTO conversations (id, owner, title, created_at, updated_at) "
    "SELECT CAST(:q_conversation AS uuid), CAST(:q_owner AS text), CAST(:q_title AS text), "
    "CAST(:q_now AS timestamptz), CAST(:q_now AS timestamptz) FROM admitted"
)
_MESSAGE = (
    "INSERT INTO messages (conversation_id, role, content, status, created_at) "
    "SELECT CAST(:q_conversation AS uuid), CAST(:q_role AS text), CAST(:q_content AS text), "
    "CAST(:q_status AS text), CAST(:q_now AS timestamptz) FROM admitted"
)
_TOUCH = (
    "UPDATE conversations SET updated_at = CAST(:q_now AS timestamptz) FROM admitted "
    "WHERE conversations.id = CAST(:q_conversation AS uuid)"
)
# Undo, for a reservation given back before its call (app/caps/early.py). A new
# conversation goes whole (its messages by the foreign key's ON DELETE CASCADE); a
# follow-up's message is found by its conversation, time (this request's clock, to the
# microsecond) and text. The follow-up's moved `updated_at` stays.
_UNDO_NEW = (
    "DELETE FROM conversations WHERE id = CAST(:q_conversation AS uuid) "
    "AND owner = CAST(:q_owner AS text)"
)
_UNDO_MESSAGE = (
    "DELETE FROM messages WHERE conversation_id = CAST(:q_conversation AS uuid) "
    "AND role = CAST(:q_role AS text) AND created_at = CAST(:q_now AS timestamptz) "
    "AND content = CAST(:q_content AS text)"
)
# Taken before the counters' rows, as settling an answer does (conversation, then counters).
# No row (deleted since `prepare_chat` read it): nothing is reserved or written.
_LOCK = "SELECT FROM conversations WHERE id = CAST(:q_conversation AS uuid) FOR NO KEY UPDATE"


class Asked(Protocol):
    """A question to store (`app.prepare.PreparedChat` and `Question` are)."""

    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def conversation_id(self) -> uuid.UUID: ...
    @property
    def is_new_conversation(self) -> bool: ...
    @property
    def question(self) -> str: ...


@dataclass(frozen=True)
class Question:
    """A question to store, before its `PreparedChat` exists (the early reservation)."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    is_new_conversation: bool
    question: str


def question_writes(prepared: Asked) -> AdmittedWrites:
    """The writes that store ``prepared``'s question with its reservation.

    A new conversation (its id made by `prepare_chat` just now): INSERT the conversation,
    titled after the question, and the message; no lookup, no lock. A follow-up: lock the
    conversation row first, INSERT the message and move `updated_at` to now. A conversation
    deleted since `prepare_chat` read it locks no row: the reservation then raises
    `ConversationNotFound` (the route's 404, as for any unknown conversation), having
    reserved and stored nothing; no cap refused, so no refusal is recorded. Once locked, the
    row cannot be deleted before the statement commits (a delete waits for the lock), so
    the message's foreign key holds. Timestamps are this process's clock (UTC), like every
    other write."""
    params = {
        "q_conversation": prepared.conversation_id,
        "q_content": prepared.question,
        "q_role": "user",
        "q_status": "ok",
        "q_now": utcnow(),
    }
    if prepared.is_new_conversation:
        params["q_owner"] = str(prepared.user_id)
        params["q_title"] = new_title(prepared.question)
        return AdmittedWrites(
            writes=(_NEW_CONVERSATION, _MESSAGE), params=params, undo=(_UNDO_NEW,)
        )
    gone = partial(ConversationNotFound, str(prepared.conversation_id))
    return AdmittedWrites(
        writes=(_MESSAGE, _TOUCH), params=params, lock=_LOCK, gone=gone, undo=(_UNDO_MESSAGE,)
    )
