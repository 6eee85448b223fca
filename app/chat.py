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
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from opentelemetry import trace
from opentelemetry.trace import Span
from sqlalchemy.exc import SQLAlchemyError

from app.answer_source import answer_source, remember_answer
from app.cache.responses import CachedAnswer, CacheKey, corpus_version
from app.cache.responses import lookup as lookup_answer
from app.caps.chain import Admission
from app.conversations import (
    append_message,
    ensure_conversation,
    find_conversation,
    unsummarised_history,
)
from app.db import session_scope
from app.guardrails.chain import (
    Trigger,
    output_guard,
    screen_input,
    screen_sources,
    upstream_question,
)
from app.guardrails.output import OutputGuard
from app.guardrails.verdict import RETRACTED_MESSAGE
from app.llm.client import TextDelta, UpstreamError
from app.rag.context_budget import (
    budget_for,
    check_fits,
    fit_history,
    fit_passages,
    fit_summary,
    window_of,
)
from app.rag.no_context import NO_CONTEXT_STATUS
from app.rag.prompt import PROMPT_VERSION, build_messages
from app.rag.retrieve import Passage, Relevance, hybrid_search
from app.rag.summarise import MAX_UNSUMMARISED, Turn, fold, turns_to_fold
from app.services import Services
from app.settle import Outcome, settle_call, source_payload
from app.shutdown import SHUTDOWN_MESSAGE, ShuttingDown, StopSignal, until_stopped

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
    planted: list[str] = field(default_factory=list)  # instruction sentences in sources
    triggers: list[Trigger] = field(default_factory=list)  # guardrail flags so far
    embedding: list[float] = field(default_factory=list)  # the question's
    cache_key: CacheKey | None = None  # set when the response cache applies (first turns)
    cached: CachedAnswer | None = None  # a cache hit: streamed instead of calling the model


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
    triggers = await screen_input(  # raises GuardrailBlocked
        services, user_id=user_id, trace_id=trace_id, question=question, embedding=embedding
    )
    async with session_scope(services.sessions) as session:
        turns: list[Turn] = []
        summary: str | None = None
        if conversation_id is not None:
            conversation = await find_conversation(
                session, conversation_id=conversation_id, owner=str(user_id)
            )
        if conversation_id is not None and settings.history_messages:
            summary = conversation.summary
            turns = await unsummarised_history(
                session,
                conversation_id=conversation_id,
                after=conversation.summary_through,
                limit=MAX_UNSUMMARISED,
            )
        cache_key, cached = None, None
        if settings.response_cache and conversation_id is None and not triggers:
            cache_key = CacheKey(await corpus_version(session), PROMPT_VERSION, services.llm.model)
            cached = await lookup_answer(
                session,
                key=cache_key,
                question=question,
                embedding=embedding,
                threshold=settings.response_cache_similarity,
            )
        passages = (
            cached.passages
            if cached
            else await hybrid_search(
                session,
                query=question,
                embedding=embedding,
                top_k=settings.retrieval_top_k,
                candidates=settings.retrieval_candidates,
                min_similarity=settings.retrieval_min_similarity,
                rrf_k=settings.rrf_k,
                relevance=Relevance(
                    settings.relevance_similarity, settings.relevance_keyword_share
                ),
            )
        )
    window = window_of(services.prices, services.llm.models)
    budget = budget_for(settings, window=window, max_output=settings.llm_max_tokens)
    passages = fit_passages(passages, budget.passages)
    folded = turns_to_fold(
        turns,
        budget=budget,
        threshold=settings.context_summary_threshold,
        max_messages=settings.history_messages,
    )
    if folded and conversation_id is not None:
        summary = (
            await fold(
                services,
                user_id=user_id,
                conversation_id=conversation_id,
                trace_id=trace_id,
                summary=summary,
                older=turns[:folded],
                max_tokens=min(settings.llm_max_tokens_summary, budget.summary),
            )
            or summary
        )
        turns = turns[folded:]
    history = fit_history([{"role": r, "content": c} for _, r, c in turns], budget.history)
    flagged, planted, source_flags = screen_sources(settings, passages)
    messages = build_messages(
        question=upstream_question(settings, question),
        passages=passages,
        history=history,
        flagged=flagged,
        summary=fit_summary(summary, budget.summary),
        bot_name=settings.bot_name,
    )
    check_fits(messages, budget)  # raises CapRefused (413)
    return PreparedChat(
        user_id=user_id,
        conversation_id=conversation_id or uuid.uuid4(),
        is_new_conversation=conversation_id is None,
        question=question,
        trace_id=trace_id,
        passages=passages,
        messages=messages,
        planted=planted,
        triggers=triggers + source_flags,
        embedding=embedding,
        cache_key=cache_key,
        cached=cached,
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
    outcome = Outcome()
    error: UpstreamError | None = None
    record: dict[str, Any] | None = None
    guard: OutputGuard | None = None
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
        upstream = answer_source(services, admission)
        guard = output_guard(services.settings, prepared)
        async with aclosing(until_stopped(upstream, stop)) as events:  # a break closes it
            async for event in events:
                if not isinstance(event, TextDelta):
                    outcome.finished = event
                    continue
                outcome.model = event.model
                if outcome.ttft_ms is None:
                    outcome.ttft_ms = (time.perf_counter() - outcome.started) * 1000
                    llm_span.add_event("first_token", {"ttft_ms": outcome.ttft_ms})
                outcome.parts.append(event.text)
                safe, outcome.retracted = guard.feed(event.text) if guard else (event.text, None)
                if outcome.retracted is not None:
                    break  # the upstream request is closed; the rest is never sent
                if safe:
                    yield ChatEvent("token", {"text": safe})
        if guard is not None and outcome.retracted is None:
            rest, outcome.retracted = guard.finish()
            if rest:
                yield ChatEvent("token", {"text": rest})
        text = "".join(outcome.parts)
        refused = not text.strip() or (
            outcome.finished and outcome.finished.reason == "content_filter"
        )
        outcome.status = "refused" if refused else "ok"
        if outcome.finished is not None and outcome.finished.reason == NO_CONTEXT_STATUS:
            outcome.status = NO_CONTEXT_STATUS
        if outcome.retracted is not None:
            outcome.status = f"blocked:{outcome.retracted.rule}"
            llm_span.add_event("guardrail", {"rule": outcome.retracted.rule, "action": "block"})
        if guard is not None:
            outcome.flags = guard.flags
    except UpstreamError as err:
        outcome.status = f"error:{err.kind}"
        error = err
        async for held in _release_held(guard, outcome):  # the partial answer, checked
            yield held
    except ShuttingDown:
        outcome.status = SHUTDOWN_STATUS
        async for held in _release_held(guard, outcome):
            yield held
    finally:
        llm_span.set_attribute("ragship.status", outcome.status)
        llm_span.end()
        with anyio.CancelScope(shield=True):
            try:
                with services.tracer.start_as_current_span("settle", context=context):
                    record = await settle_call(services, admission, outcome)
                    await remember_answer(services, prepared, outcome, Decimal(record["cost_usd"]))
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
    elif outcome.retracted is not None:
        retract = {"rule": outcome.retracted.rule, "message": RETRACTED_MESSAGE}
        yield ChatEvent("retract", {**retract, **record})
    elif outcome.status == "refused":
        yield ChatEvent("error", {"kind": "refused", "message": REFUSED_MESSAGE, **record})
    elif error is not None:
        yield ChatEvent("error", {"kind": error.kind, "message": str(error), **record})
    else:
        yield ChatEvent("done", record)


async def _release_held(guard: OutputGuard | None, outcome: Outcome) -> AsyncIterator[ChatEvent]:
    """When the stream ends early, the text the guard still holds is checked and sent."""
    if guard is None or outcome.retracted is not None:
        return
    rest, outcome.retracted = guard.finish()
    if outcome.retracted is None and rest:
        yield ChatEvent("token", {"text": rest})


def _span_usage(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "gen_ai.request.model": record["model"],
        "gen_ai.usage.input_tokens": record["usage"]["input_tokens"],
        "gen_ai.usage.output_tokens": record["usage"]["output_tokens"],
        "ragship.cost_usd": record["cost_usd"],
    }
