"""The chat orchestrator: the request path in order, shared by the API and the eval runner.

`prepare_chat` reads what the answer needs (conversation, history, retrieval) and holds no
connection afterwards. The cap chain (`app/caps/chain.py`) admits the call with it.
`record_question` stores the question, and `stream_answer` streams, then settles: the
answer, its cost and the call record are written in one transaction whether the answer
finished, failed or the client went away, and the stream lease is given back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from opentelemetry import trace
from opentelemetry.trace import Span
from sqlalchemy.exc import SQLAlchemyError

from app.calls import record_call
from app.caps import budget
from app.caps.chain import Admission
from app.conversations import append_message, ensure_conversation, find_conversation, recent_history
from app.db import session_scope
from app.llm.client import Finished, TextDelta, UpstreamError
from app.observability.redact import for_call_log
from app.rag.prompt import PROMPT_VERSION, build_messages
from app.rag.retrieve import Passage, hybrid_search
from app.services import Services
from app.shutdown import SHUTDOWN_MESSAGE, ShuttingDown, StopSignal, until_stopped
from app.tokens import count_message_tokens, count_tokens

REFUSED_MESSAGE = "The model declined to answer this question. Try rephrasing it."
NOT_SAVED_MESSAGE = "Your answer could not be saved. Please try again."
SHUTDOWN_STATUS = "cancelled:shutdown"  # charged like a client that left mid-answer
log = logging.getLogger("ragship.chat")


@dataclass(frozen=True)
class ChatEvent:
    name: str
    data: dict[str, Any]


@dataclass
class PreparedChat:
    user_id: uuid.UUID
    conversation_id: uuid.UUID
    is_new_conversation: bool
    question: str
    trace_id: str
    passages: list[Passage]
    messages: list[dict[str, str]]


@dataclass
class _Outcome:
    parts: list[str] = field(default_factory=list)
    finished: Finished | None = None
    status: str = "cancelled"
    started: float = field(default_factory=time.perf_counter)
    ttft_ms: float | None = None
    model: str | None = None  # the model that streamed, when it is known


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
    services: Services,
    *,
    user_id: uuid.UUID,
    question: str,
    conversation_id: uuid.UUID | None,
    trace_id: str,
) -> PreparedChat:
    settings = services.settings
    embedding = await asyncio.to_thread(services.embedder.embed_one, question)
    async with session_scope(services.sessions) as session:
        history: list[dict[str, str]] = []
        if conversation_id is not None:
            await find_conversation(session, conversation_id=conversation_id, owner=str(user_id))
            history = await recent_history(
                session, conversation_id=conversation_id, limit=settings.history_messages
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
    return PreparedChat(
        user_id=user_id,
        conversation_id=conversation_id or uuid.uuid4(),
        is_new_conversation=conversation_id is None,
        question=question,
        trace_id=trace_id,
        passages=passages,
        messages=build_messages(question=question, passages=passages, history=history),
    )


async def record_question(services: Services, prepared: PreparedChat) -> None:
    async with session_scope(services.sessions) as session:
        if prepared.is_new_conversation:
            await ensure_conversation(
                session,
                conversation_id=prepared.conversation_id,
                owner=str(prepared.user_id),
                title=prepared.question,
            )
        await append_message(
            session,
            conversation_id=prepared.conversation_id,
            role="user",
            content=prepared.question,
        )


async def stream_answer(
    services: Services,
    admission: Admission[PreparedChat],
    *,
    span: Span,
    stop: StopSignal | None = None,
) -> AsyncGenerator[ChatEvent, None]:
    """Stream the answer; `span` (the request's) ends when the call is settled.

    Everything after admission is inside one try/finally, so a client that leaves at any
    point (even before the first event) still gets its call settled and its lease back.
    When `stop` fires (the server is shutting down), the answer so far is settled and the
    stream ends with an ``error`` event of kind ``shutdown``.
    """
    prepared = admission.prepared
    context = trace.set_span_in_context(span)
    llm_span = services.tracer.start_span("llm.stream", context=context)
    outcome = _Outcome()
    error: UpstreamError | None = None
    record: dict[str, Any] | None = None
    try:
        yield ChatEvent(
            "meta",
            {
                "conversation_id": str(prepared.conversation_id),
                "trace_id": prepared.trace_id,
                "prompt_version": PROMPT_VERSION,
            },
        )
        yield ChatEvent("sources", {"sources": source_payload(prepared.passages)})
        upstream = services.llm.stream_chat(
            prepared.messages,
            max_tokens=admission.max_tokens,
            temperature=services.settings.llm_temperature,
        )
        async for event in until_stopped(upstream, stop):
            if isinstance(event, TextDelta):
                outcome.model = event.model
                if outcome.ttft_ms is None:
                    outcome.ttft_ms = (time.perf_counter() - outcome.started) * 1000
                    llm_span.add_event("first_token", {"ttft_ms": outcome.ttft_ms})
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
    except ShuttingDown:
        outcome.status = SHUTDOWN_STATUS
    finally:
        llm_span.set_attribute("ragship.status", outcome.status)
        llm_span.end()
        with anyio.CancelScope(shield=True):
            try:
                with services.tracer.start_as_current_span("settle", context=context):
                    record = await _settle(services, admission, outcome)
                span.set_attributes({"ragship.status": outcome.status, **_span_usage(record)})
            except SQLAlchemyError:
                log.exception("could not settle call %s", prepared.trace_id)
            finally:
                await services.limiter.release(admission.lease)
                span.end()
    if record is None:
        yield ChatEvent("error", {"kind": "internal", "message": NOT_SAVED_MESSAGE})
    elif outcome.status == SHUTDOWN_STATUS:
        yield ChatEvent("error", {"kind": "shutdown", "message": SHUTDOWN_MESSAGE, **record})
    elif outcome.status == "refused":
        yield ChatEvent("error", {"kind": "refused", "message": REFUSED_MESSAGE, **record})
    elif error is not None:
        yield ChatEvent("error", {"kind": error.kind, "message": str(error), **record})
    else:
        yield ChatEvent("done", record)


def _span_usage(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "gen_ai.request.model": record["model"],
        "gen_ai.usage.input_tokens": record["usage"]["input_tokens"],
        "gen_ai.usage.output_tokens": record["usage"]["output_tokens"],
        "ragship.cost_usd": record["cost_usd"],
    }


def _usage(prepared: PreparedChat, outcome: _Outcome) -> tuple[int, int, int]:
    """(input, cached input, output) tokens to charge: as the upstream reported them, else
    counted locally.

    An upstream failure that streamed nothing and reported no usage (a 5xx, a refused
    connection, a timeout before the first token) is charged nothing: providers do not
    bill failed requests. A client that leaves, or a stream cut after some text, is charged
    for the prompt and what was streamed: the provider did the work.
    """
    finished = outcome.finished
    text = "".join(outcome.parts)
    reported = finished is not None and finished.input_tokens is not None
    if outcome.status.startswith("error:") and not text and not reported:
        return 0, 0, 0
    counted_output = count_tokens(text)
    if finished is None or finished.input_tokens is None:
        return count_message_tokens(prepared.messages), 0, counted_output
    output = finished.output_tokens if finished.output_tokens is not None else counted_output
    return finished.input_tokens, finished.cached_input_tokens, output


async def _settle(
    services: Services, admission: Admission[PreparedChat], outcome: _Outcome
) -> dict[str, Any]:
    prepared = admission.prepared
    reservation = admission.reservation
    input_tokens, cached, output_tokens = _usage(prepared, outcome)
    model = (outcome.finished.model if outcome.finished else outcome.model) or services.llm.model
    price = services.prices[model]
    cost = price.cost(
        input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached
    )
    if cost > reservation.amount:  # only a tokenizer far off the reserved margin gets here
        log.error(
            "ALERT call %s cost $%s, more than its reservation of $%s",
            prepared.trace_id,
            cost,
            reservation.amount,
        )
    async with session_scope(services.sessions) as session:
        message_id = await append_message(
            session,
            conversation_id=prepared.conversation_id,
            role="assistant",
            content="".join(outcome.parts),
            status=outcome.status,
            sources=source_payload(prepared.passages),
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            trace_id=prepared.trace_id,
        )
        # False when the expiry sweep already charged the whole reservation for this call.
        settled = await budget.settle(session, reservation_id=reservation.id, cost=cost)
        await record_call(
            session,
            user_id=prepared.user_id,
            conversation_id=prepared.conversation_id,
            model=model,
            prompt_version=PROMPT_VERSION,
            status=outcome.status if settled else f"{outcome.status}:late",
            input_tokens=input_tokens,
            cached_input_tokens=cached,
            output_tokens=output_tokens,
            cost_usd=cost if settled else Decimal(0),
            reserved_usd=reservation.amount,
            ttft_ms=outcome.ttft_ms,
            latency_ms=(time.perf_counter() - outcome.started) * 1000,
            reservation_id=reservation.id if settled else None,
            trace_id=prepared.trace_id,
            attempts=outcome.finished.attempts if outcome.finished else 1,
            provider=services.llm.provider,
            price_source=price.source,
            question=for_call_log(prepared.question, policy=services.settings.content_logging),
            answer=for_call_log("".join(outcome.parts), policy=services.settings.content_logging),
        )
        spent, reserved = await budget.spend_today(session, user_id=prepared.user_id)
    remaining = max(services.settings.user_daily_cap_usd - spent - reserved, Decimal(0))
    return {
        "message_id": message_id,
        "model": model,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "cost_usd": str(cost),
        "remaining_today_usd": str(remaining.quantize(Decimal("0.01"))),
    }
