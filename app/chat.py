"""The chat orchestrator: the request path in order, shared by the API and the eval runner.

`app/prepare.py`'s `prepare_chat` reads what the answer needs (conversation, history,
retrieval) and holds no connection afterwards. The cap chain (`app/caps/chain.py`) admits
the call with it, storing the question with the reservation (`app/question.py`),
and `stream_answer` streams, then settles: the answer, its cost and the call record are
written in one transaction whether the answer finished, failed or the client went away,
and the stream lease is given back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from decimal import Decimal
from typing import Any

import anyio
from opentelemetry import trace
from opentelemetry.trace import Span
from sqlalchemy.exc import SQLAlchemyError

from app.answer_source import answer_source, remember_answer
from app.caps.chain import Admission
from app.guardrails.chain import (
    output_guard,
)
from app.guardrails.output import OutputGuard
from app.guardrails.verdict import RETRACTED_MESSAGE
from app.llm.client import Finished, TextDelta, UpstreamError
from app.prepare import ChatEvent, PreparedChat
from app.rag.no_context import NO_CONTEXT_STATUS
from app.services import Services
from app.settle import Outcome, settle_patiently, source_payload
from app.shutdown import SHUTDOWN_MESSAGE, Relay, ShuttingDown, StopSignal

REFUSED_MESSAGE = "The model declined to answer this question. Try rephrasing it."
NOT_SAVED_MESSAGE = "Your answer could not be saved. Please try again."
SHUTDOWN_STATUS = "cancelled:shutdown"  # charged like a client that left mid-answer
log = logging.getLogger("ragship.chat")


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
    stream ends with an ``error`` event of kind ``shutdown``. The upstream's pieces that
    arrive while the event loop is busy with other streams go out as one ``token`` event
    (`Relay`'s batches): under load, a turn of the loop relays every piece waiting.
    """
    prepared = admission.prepared
    admission.streaming = True  # settled below, whatever happens: the backstop stands down
    context = trace.set_span_in_context(span)
    llm_span = services.tracer.start_span("llm.stream", context=context)
    outcome = Outcome()
    error: UpstreamError | None = None
    record: dict[str, Any] | None = None
    guard: OutputGuard | None = None
    relay: Relay[TextDelta | Finished] | None = None
    try:
        # The upstream is asked before the first events go out: `Relay` reads the answer
        # in its own task from now on, and a turn of the loop lets that task send the
        # request (the response's headers wait for the first event: app/http/event_stream.py).
        relay = Relay(answer_source(services, admission), stop)
        await asyncio.sleep(0)
        yield ChatEvent(
            "meta",
            {
                "conversation_id": str(prepared.conversation_id),
                "trace_id": prepared.trace_id,
                "prompt_version": prepared.route.prompt_version,
            },
        )
        yield ChatEvent("sources", {"sources": source_payload(prepared.passages)})
        guard = output_guard(services.settings, prepared)
        async with aclosing(relay.batches()) as batches:
            async for batch in batches:
                piece = _take(batch, outcome, llm_span)
                if not piece:
                    continue
                safe, outcome.retracted = guard.feed(piece) if guard else (piece, None)
                if outcome.retracted is not None:
                    break  # the upstream request is closed; the rest is never sent
                if safe:
                    yield ChatEvent("token", {"text": safe})
        await relay.aclose()  # after a break, the upstream request is closed here
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
        if relay is not None:  # an error or a client gone: the upstream request is closed
            await relay.aclose()
        llm_span.set_attribute("ragship.status", outcome.status)
        llm_span.end()
        with anyio.CancelScope(shield=True):
            try:
                with services.tracer.start_as_current_span("settle", context=context):
                    record = await settle_patiently(services, admission, outcome)
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


def _take(batch: list[TextDelta | Finished], outcome: Outcome, llm_span: Span) -> str:
    """Record a batch of upstream events in `outcome` (its text, model, first-token time,
    the `Finished`) and return its text: the deltas that arrived while the loop was busy
    are checked and sent as one piece (`Relay`), one event instead of one each."""
    texts = []
    for event in batch:
        if not isinstance(event, TextDelta):
            outcome.finished = event
            continue
        outcome.model = event.model
        if outcome.ttft_ms is None:
            outcome.ttft_ms = (time.perf_counter() - outcome.started) * 1000
            llm_span.add_event("first_token", {"ttft_ms": outcome.ttft_ms})
        outcome.parts.append(event.text)
        texts.append(event.text)
    return "".join(texts)


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
