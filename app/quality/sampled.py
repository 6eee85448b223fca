"""A sampled answer as the judge sees it: the question and answer from the call log (as
CONTENT_LOGGING kept them: full, or masked under ``redacted``) and the passages the answer
was given, from its message's sources and the chunks they name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_CALL = text(
    "SELECT c.id, c.trace_id, c.question, c.answer, m.sources FROM llm_calls c "
    "LEFT JOIN messages m ON m.conversation_id = c.conversation_id "
    "AND m.trace_id = c.trace_id AND m.role = 'assistant' "
    "WHERE c.id = :id ORDER BY m.id DESC LIMIT 1"
)
_CHUNK = text(
    "SELECT text FROM chunks WHERE document_id = :document AND anchor = :anchor "
    "ORDER BY ordinal LIMIT 1"
)
_URL = re.compile(r"^/sources/(\d+)#(.+)$")
GONE = "(this passage is no longer in the corpus)"


@dataclass(frozen=True)
class Sampled:
    call_id: int
    trace_id: str | None
    question: str
    answer: str
    passages: list[str]  # numbered from 1 in the order the answer saw them


async def load_sampled(session: AsyncSession, call_id: int) -> Sampled | None:
    """The answer of call `call_id` with its question and passages; None when its text is
    gone (erased by retention or with its conversation since it was sampled)."""
    row = (await session.execute(_CALL, {"id": call_id})).first()
    if row is None or row.question is None or row.answer is None or row.sources is None:
        return None
    passages = [await _passage(session, source) for source in row.sources]
    return Sampled(row.id, row.trace_id, row.question, row.answer, passages)


async def _passage(session: AsyncSession, source: dict[str, Any]) -> str:
    """The chunk a `sources` entry names (its url is /sources/<document id>#<anchor>)."""
    match = _URL.match(str(source.get("url", "")))
    if match is None:
        return GONE
    found = await session.scalar(
        _CHUNK, {"document": int(match.group(1)), "anchor": match.group(2)}
    )
    return str(found) if found is not None else GONE
