"""The chat orchestrator: the request path in order, shared by the API and the eval runner.

`prepare_chat` does everything that needs the database (conversation, history, retrieval,
the user's message) and returns before any token is requested, so no connection is held
while the answer streams. `stream_answer` streams and then settles: it records the answer
with its usage and cost whether it finished, failed or the client went away.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio

from app.conversations import append_message, get_or_create, recent_history
from app.db import session_scope
from app.llm.client import Finished, TextDelta, UpstreamError
from app.llm.pricing import cost_usd
from app.rag.prompt import PROMPT_VERSION, build_messages
from app.rag.retrieve import Passage, hybrid_search
from app.services import Services
from app.tokens import count_message_tokens, count_tokens

REFUSED_MESSAGE = "The model declined to answer this question. Try rephrasing it."


@dataclass(frozen=True)
class ChatEvent:
    name: str
    data: dict[str, Any]


@dataclass
class PreparedChat:
    conversation_id: uuid.UUID
    trace_id: str
    passages: list[Passage]
    messages: list[dict[str, str]]


@dataclass
class _Outcome:
    parts: list[str] = field(default_factory=list)
    finished: Finished | None = None
    status: str = "cancelled"


def source_payload(passages: list[Passage]) -> list[dict[str, Any]]:
    return [
        {
            "n": n,
            "title": p.title,
            "section": p.heading_path,
            "source": p.source,
            "url": p.url,
            "score": round(p.score, 5),
        }
        for n, p in enumerate(passages, start=1)
    ]


async def prepare_chat(
    services: Services, *, owner: str, question: str, conversation_id: uuid.UUID | None
) -> PreparedChat:
    settings = services.settings
    embedding = await asyncio.to_thread(services.embedder.embed_one, question)
    async with session_scope(services.sessions) as session:
        conversation = await get_or_create(
            session, conversation_id=conversation_id, owner=owner, first_message=question
        )
        history = await recent_history(
            session, conversation_id=conversation.id, limit=settings.history_messages
        )
        passages = await hybrid_search(
            session,
            query=question,
            embedding=embedding,
            top_k=settings.retrieval_top_k,
            candidates=settings.retrieval_candidates,
            min_similarity=settings.retrieval_min_similarity,
            rrf_k=settings.rrf_k,
        )
        await append_message(
            session, conversation_id=conversation.id, role="user", content=question
        )
    return PreparedChat(
        conversation_id=conversation.id,
        trace_id=uuid.uuid4().hex,
        passages=passages,
        messages=build_messages(question=question, passages=passages, history=history),
    )


async def stream_answer(services: Services, prepared: PreparedChat) -> AsyncIterator[ChatEvent]:
    settings = services.settings
    yield ChatEvent(
        "meta",
        {
            "conversation_id": str(prepared.conversation_id),
            "trace_id": prepared.trace_id,
            "prompt_version": PROMPT_VERSION,
        },
    )
    yield ChatEvent("sources", {"sources": source_payload(prepared.passages)})
    outcome = _Outcome()
    error: UpstreamError | None = None
    try:
        async for event in services.llm.stream_chat(
            prepared.messages,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
        ):
            if isinstance(event, TextDelta):
                outcome.parts.append(event.text)
                yield ChatEvent("token", {"text": event.text})
            else:
                outcome.finished = event
        text = "".join(outcome.parts)
        refused = not text.strip() or (
            outcome.finished and outcome.finished.reason == "content_filter"
        )
        outcome.status = "refused" if refused else "ok"
    except UpstreamError as err:
        outcome.status = f"error:{err.kind}"
        error = err
    finally:
        with anyio.CancelScope(shield=True):
            record = await _settle(services, prepared, outcome)
    if outcome.status == "refused":
        yield ChatEvent("error", {"kind": "refused", "message": REFUSED_MESSAGE, **record})
    elif error is not None:
        yield ChatEvent("error", {"kind": error.kind, "message": str(error), **record})
    else:
        yield ChatEvent("done", record)


async def _settle(services: Services, prepared: PreparedChat, outcome: _Outcome) -> dict[str, Any]:
    """Record the answer and what it cost: reported usage, else tokens counted locally."""
    text = "".join(outcome.parts)
    finished = outcome.finished
    input_tokens = (finished and finished.input_tokens) or count_message_tokens(prepared.messages)
    output_tokens = (
        finished.output_tokens
        if finished and finished.output_tokens is not None
        else count_tokens(text)
    )
    cached = finished.cached_input_tokens if finished else 0
    model = services.llm.model
    try:
        cost = cost_usd(
            model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached,
        )
    except KeyError:
        cost = Decimal(0)
    async with session_scope(services.sessions) as session:
        message_id = await append_message(
            session,
            conversation_id=prepared.conversation_id,
            role="assistant",
            content=text,
            status=outcome.status,
            sources=source_payload(prepared.passages),
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            trace_id=prepared.trace_id,
        )
    return {
        "message_id": message_id,
        "model": model,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "cost_usd": str(cost.quantize(Decimal("0.000001"))),
    }
