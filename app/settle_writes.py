"""The answer's writes in one statement: hold the conversation, store the answer, move the
conversation's `updated_at`, close the reservation (app/settle.py runs it first in the
settling transaction, then the call record, the counters and the COMMIT).

Sent one at a time (ORM), these were four round trips, each of which waited for the event
loop while the transaction held its locks; under load (issue 17: 50 answers streaming on a
worker) each wait is a turn of a busy loop, with a pool connection held throughout. As one
statement with data-modifying CTEs they are one round trip. PostgreSQL runs a statement's
CTEs in no promised order, so the conversation's row and the reservation's may be locked in
either order; no cycle can form from that: the reservation's row is this call's own, and the
only other writers that lock it (the expiry sweep, `release_unused`) lock no conversation.
The shared rows, the counters and rollups, still come last, with the COMMIT
(`app.calls.commit_call`; docs/caps.md, "No deadlocks").
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.caps.budget import CLOSED_COLUMNS, Closed, closed_from
from app.models import utcnow

# `held` is empty when the conversation is gone (deleted while the answer streamed): no
# message, no update. A delete in progress is waited for, and once committed the row is
# not found (READ COMMITTED re-checks a locked row's latest version). `closed` is empty
# when the reservation was settled already (the expiry sweep came first).
_WRITE = text(
    f"""WITH held AS (
        SELECT id FROM conversations WHERE id = :conversation_id FOR KEY SHARE
    ),
    message AS (
        INSERT INTO messages (conversation_id, role, content, status, sources, model,
                              input_tokens, output_tokens, cost_usd, trace_id, created_at)
        SELECT id, 'assistant', :content, :status, CAST(:sources AS jsonb), :model,
               :input_tokens, :output_tokens, :cost_usd, :trace_id, :now
        FROM held
        RETURNING id
    ),
    touched AS (
        UPDATE conversations SET updated_at = :now FROM held WHERE conversations.id = held.id
    ),
    closed AS (
        UPDATE reservations SET settled_at = now()
        WHERE id = :reservation_id AND settled_at IS NULL
        RETURNING {CLOSED_COLUMNS}
    )
    SELECT (SELECT id FROM message) AS message_id, closed.*
    FROM (SELECT 1) AS one LEFT JOIN closed ON true
    """  # noqa: S608 (the column list is a constant; values are bound)
)


@dataclass(frozen=True)
class Answer:
    """The assistant's message as stored: what `write_answer` inserts."""

    conversation_id: uuid.UUID
    content: str
    status: str
    sources: list[dict[str, Any]]
    model: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    trace_id: str | None


async def write_answer(
    session: AsyncSession, answer: Answer, *, reservation_id: uuid.UUID
) -> tuple[int | None, Closed | None]:
    """Store ``answer`` and close the reservation, in the session's transaction, one round
    trip: (the message's id, None when the conversation is gone; the closed reservation,
    None when it was settled already). Raises sqlalchemy.exc.DBAPIError as any statement."""
    row = (
        await session.execute(
            _WRITE,
            {
                "conversation_id": answer.conversation_id,
                "content": answer.content,
                "status": answer.status,
                "sources": json.dumps(answer.sources),
                "model": answer.model,
                "input_tokens": answer.input_tokens,
                "output_tokens": answer.output_tokens,
                "cost_usd": answer.cost_usd,
                "trace_id": answer.trace_id,
                "now": utcnow(),
                "reservation_id": reservation_id,
            },
        )
    ).one()
    message_id, *closed = row
    return message_id, (None if closed[0] is None else closed_from(closed))
