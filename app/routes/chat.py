"""Chat over Server-Sent Events, for a signed-in browser or a script with a personal access
token (`Authorization: Bearer`, app/auth/tokens.py); the caller's conversations are in
app/routes/conversations.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from pydantic import BaseModel, Field, field_validator
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from app.auth.sessions import SESSION_COOKIE
from app.caps.bounds import check_input_bounds
from app.caps.chain import admit, release_unused
from app.caps.overlap import EarlyLimit, limit_beside
from app.caps.overload import record_overload
from app.caps.refusal import CapRefused
from app.chat import stream_answer
from app.conversations import (
    ConversationNotFound,
)
from app.deps import CurrentUser, ServicesDep, get_api_user
from app.http.errors import is_json_type
from app.http.event_stream import EventStream
from app.observability.tracing import trace_id_of
from app.prepare import ChatEvent, prepare_chat
from app.question import question_writes
from app.rag.query_embedding import StartedEmbedding
from app.services import Services
from app.shutdown import StopSignal, finish_window_s
from app.textclean import CleanStr

router = APIRouter(prefix="/api", tags=["chat"])

# Headers that stop proxies (nginx, Fly, Cloudflare) from buffering the stream.
STREAM_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}


class ChatRequest(BaseModel):
    message: CleanStr = Field(min_length=1)
    conversation_id: uuid.UUID | None = None
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be blank")
        return value.strip()


async def _sse(
    first: ChatEvent, events: AsyncGenerator[ChatEvent, None]
) -> AsyncIterator[ServerSentEvent]:
    """``first`` (taken from ``events`` before the response was made), then the rest."""
    async with aclosing(events):  # closing the response closes (and settles) the stream now
        yield ServerSentEvent(data=json.dumps(first.data), event=first.name)
        async for event in events:
            yield ServerSentEvent(data=json.dumps(event.data), event=event.name)


async def early_embedding(request: Request, services: ServicesDep) -> StartedEmbedding | None:
    """The question's embedding, started before the caller is signed in: FastAPI solves the
    route's dependencies in the order of its parameters, and this one comes before the
    sign-in's (app/rag/query_embedding.py says what it saves). Only for a credential (the
    session cookie, else the `Authorization` header) that signed in on this worker lately
    (app/auth/recent.py), a JSON body the route will take (FastAPI has read and parsed it
    by now; its content type and fields are checked here as the route checks them) and a
    question and `max_tokens` within the input bounds, and only when no other query
    embedding is in flight in this worker. None otherwise, and the route embeds the
    question after the chain's first layers. Never raises: whatever fails here, the route
    answers as it would have."""
    credential = _credential(request)
    if credential is None or credential not in services.recent_credentials:
        return None
    if not is_json_type(request.headers.get("content-type", "")):
        return None
    try:
        asked = ChatRequest.model_validate(await request.json())
        check_input_bounds(services.settings, message=asked.message, max_tokens=asked.max_tokens)
    except Exception:  # bad JSON (too deep, too), a failed field, past the bounds: no early start
        return None
    return services.query_embeddings.start_if_idle(services.embedder, asked.message)


def _credential(request: Request) -> str | None:
    """The credential the hints are kept by (app/auth/recent.py): the session cookie, else
    the `Authorization` header as sent."""
    return request.cookies.get(SESSION_COOKIE) or request.headers.get("authorization")


EarlyEmbeddingDep = Annotated[StartedEmbedding | None, Depends(early_embedding)]


@dataclass(frozen=True)
class ChatCaller:
    """The signed-in caller, and the rate limit's outcome when it ran beside the sign-in."""

    user: CurrentUser
    limit: EarlyLimit | None


async def chat_caller(
    request: Request, services: ServicesDep, started: EarlyEmbeddingDep
) -> AsyncIterator[ChatCaller]:
    """The caller (`get_api_user`). When the question's embedding started early (a recent
    credential, a body within the input bounds), IDLE_OVERLAP is on and no admission is in
    flight in this worker, the rate limit runs for the credential's user during the
    sign-in lookup (app/caps/overlap.py); a lease the request never took is given back
    when it ends."""
    credential = _credential(request)
    hint = None
    if started is not None and credential is not None and services.settings.idle_overlap:
        hint = services.recent_credentials.user_of(credential)
    if hint is None or services.gate.in_flight:
        yield ChatCaller(await get_api_user(request, services), None)
        return
    user, limit = await limit_beside(services.limiter, hint, get_api_user(request, services))
    try:
        yield ChatCaller(user, limit)
    finally:
        if limit is not None:
            with anyio.CancelScope(shield=True):
                await limit.give_back(services.limiter)


ChatCallerDep = Annotated[ChatCaller, Depends(chat_caller)]


@router.post("/chat", response_model=None)
async def chat(
    started: EarlyEmbeddingDep, body: ChatRequest, services: ServicesDep, caller: ChatCallerDep
) -> EventSourceResponse | JSONResponse:
    """Answer one question as Server-Sent Events, after the cap chain admits it."""
    user = caller.user
    try:
        slot = services.gate.enter()  # 503 at once past MAX_INFLIGHT_ADMISSIONS
    except CapRefused as refused:
        return _refusal(refused, BackgroundTask(record_overload, services, user.id))
    try:
        return await _admit_and_stream(body, services, user, started, caller.limit)
    finally:
        slot.release()  # the stream runs outside the gate after its first step


async def _admit_and_stream(
    body: ChatRequest,
    services: Services,
    user: CurrentUser,
    started: StartedEmbedding | None,
    limit: EarlyLimit | None,
) -> EventSourceResponse:
    span = services.tracer.start_span("chat", attributes={"enduser.id": str(user.id)})
    try:
        admission = await admit(
            services,
            user_id=user.id,
            message=body.message,
            max_tokens=body.max_tokens,
            limit=limit,
            prepare=lambda early: prepare_chat(
                services,
                user_id=user.id,
                question=body.message,
                conversation_id=body.conversation_id,
                trace_id=trace_id_of(span),
                # reserved in the search's round trip (app/caps/early.py)
                early=early if services.settings.early_reservation else None,
                started=started,
            ),
            trace_context=trace.set_span_in_context(span),
            with_reservation=question_writes,  # ... or with the exact reservation
        )
    except ConversationNotFound as err:
        span.end()
        raise HTTPException(404, "No such conversation.") from err
    except BaseException:
        span.end()
        raise
    grace_s = services.settings.shutdown_grace_s
    shutdown = anyio.Event()  # set by sse-starlette when the server begins to shut down
    stop = StopSignal(shutdown, after_s=finish_window_s(grace_s))
    events = stream_answer(services, admission, span=span, stop=stop)
    # The answer's first step, before the response is made: it asks the upstream and gives
    # its first event (app/chat.py), so the request is out while the response and its tasks
    # are set up (about 0.5 ms at one request at a time). The headers leave with that event.
    first = await anext(events)
    try:
        return EventStream(
            _sse(first, events),
            # An answer the response never read is closed (and so settled) all the same; a
            # no-op once it ended.
            on_close=events.aclose,
            # Backstop for an admission whose stream never started: settling is idempotent,
            # so after a stream this changes nothing.
            background=BackgroundTask(release_unused, services, admission),
            headers={**STREAM_HEADERS, **admission.lease.headers},
            ping=services.settings.stream_heartbeat_s,
            # On shutdown, live answers may finish for a while, then end with a `shutdown`
            # event (app/shutdown.py), all before sse-starlette's and the server's own grace.
            shutdown_event=shutdown,
            shutdown_grace_period=max(grace_s - 1, 0),
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await events.aclose()
        raise


def _refusal(refused: CapRefused, background: BackgroundTask) -> JSONResponse:
    body = {
        "detail": refused.message,
        "layer": refused.layer,
        "retry_after_s": refused.retry_after_s,
    }
    return JSONResponse(
        body, status_code=refused.status, headers=refused.response_headers(), background=background
    )
