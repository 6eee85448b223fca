"""A small OpenAI-compatible HTTP server: the embedded default LLM and every test's upstream.

It speaks the Chat Completions API closely enough that the official `openai` client cannot
tell it from the real thing: streamed `chat.completion.chunk` events ending in `[DONE]`, a
final usage chunk when `stream_options.include_usage` is set, OpenAI's error bodies and
status codes, and `/v1/models`. `POST /_faults` queues misbehaviour (see `faults.py`).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from app.localmodel.adversary import misbehave
from app.localmodel.answer import answer
from app.localmodel.faults import Fault, FaultQueue, burst
from app.localmodel.judge import grade, is_judge_request
from app.localmodel.moderation import moderate
from app.localmodel.pacing import pause_until
from app.localmodel.summary import is_summary_request, summarise
from app.localmodel.truncate import truncate
from app.settings import LOCAL_MODEL_IDS
from app.tokens import count_message_tokens, count_tokens

_PIECES = re.compile(r"\S+\s*")


def _error(status: int, message: str, type_: str, code: str | None, **headers: str) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.completed_streams = 0
        self.disconnects = 0
        self.model_lists = 0
        self.last_messages: list[dict[str, Any]] = []
        self.last_model: str | None = None  # the model the last completion request named
        self.last_sampling: dict[str, Any] = {}  # the last request's temperature, max tokens
        # When recent completion requests arrived (time.monotonic()), so a test can see the
        # gap a client left between a failed attempt and its retry.
        self.arrivals: deque[float] = deque(maxlen=100)


def create_local_model(*, api_key: str | None = None, token_delay_s: float = 0.0) -> FastAPI:
    app = FastAPI(title="ragship local model", docs_url=None, redoc_url=None)
    faults = FaultQueue()
    stats = Stats()
    app.state.faults = faults
    app.state.stats = stats

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        stats.model_lists += 1
        return {
            "object": "list",
            "data": [
                {"id": model, "object": "model", "created": 0, "owned_by": "ragship"}
                for model in LOCAL_MODEL_IDS
            ],
        }

    @app.post("/_faults")
    async def add_fault(fault: Fault) -> dict[str, str]:
        faults.add(fault)
        return {"queued": fault.kind}

    @app.delete("/_faults")
    async def clear_faults() -> dict[str, str]:
        faults.clear()
        return {"cleared": "all"}

    @app.get("/_stats")
    async def get_stats() -> dict[str, Any]:
        return vars(stats)

    @app.post("/v1/moderations")
    async def moderations(request: Request) -> JSONResponse:
        """A stand-in for OpenAI's moderation endpoint: flags text with MODERATED words."""
        body = await request.json()
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        return JSONResponse(
            {
                "id": f"modr-{uuid.uuid4().hex[:12]}",
                "model": body.get("model", "omni-moderation-latest"),
                "results": [moderate(str(t)) for t in texts],
            }
        )

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        stats.requests += 1
        stats.arrivals.append(time.monotonic())
        if api_key and request.headers.get("authorization") != f"Bearer {api_key}":
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(
                400,
                "We could not parse the JSON body of your request.",
                "invalid_request_error",
                None,
            )
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' is a required property", "invalid_request_error", None)
        stats.last_messages = messages
        stats.last_sampling = {
            k: body.get(k) for k in ("temperature", "max_tokens", "max_completion_tokens")
        }
        model = body.get("model")
        stats.last_model = str(model)
        if model not in LOCAL_MODEL_IDS:
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        fault = faults.take(str(model))
        refusal = _status_fault(fault)
        if refusal is not None:
            return refusal
        if fault and fault.kind == "adversarial":
            text = misbehave(fault.behaviour, messages)
        elif fault and fault.kind == "scripted":
            text = fault.text
        else:
            text = "" if fault and fault.kind == "content_filter" else answer(messages)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if is_summary_request(messages) and not fault:
            text = summarise(
                messages, max_tokens=max_tokens if isinstance(max_tokens, int) else None
            )
        elif is_judge_request(messages) and not (
            fault and fault.kind in ("scripted", "adversarial", "content_filter")
        ):
            text = grade(messages)
        pieces = _PIECES.findall(text)
        if isinstance(max_tokens, int) and max_tokens > 0:
            pieces = truncate(pieces, max_tokens)
        finish = "content_filter" if fault and fault.kind == "content_filter" else "stop"
        if isinstance(max_tokens, int) and "".join(pieces) != text:
            finish = "length"
        usage = {
            "prompt_tokens": count_message_tokens(messages),
            "completion_tokens": count_tokens("".join(pieces)),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if not body.get("stream"):
            if fault and fault.kind == "stall":  # no first byte for delay_s, as when streaming
                until = time.monotonic() + fault.delay_s
                # Polled: Starlette tells of a disconnect only when asked.
                while time.monotonic() < until and not await request.is_disconnected():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # a client that gave up is not waited for
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": "".join(pieces),
                                "refusal": None,
                            },
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        stream = _stream(
            completion_id,
            model,
            pieces,
            finish,
            usage if include_usage else None,
            fault,
            token_delay_s,
            stats,
        )
        if fault and fault.kind == "burst":
            stream = burst(stream)
        return StreamingResponse(stream, media_type="text/event-stream")

    return app


def _status_fault(fault: Fault | None) -> JSONResponse | None:
    if fault is None:
        return None
    if fault.kind == "rate_limit":
        return _error(
            429,
            "Rate limit reached for requests. Please try again later.",
            "requests",
            "rate_limit_exceeded",
            **{"retry-after": f"{fault.retry_after:g}"},
        )
    if fault.kind == "insufficient_quota":
        return _error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        )
    if fault.kind == "server_error":
        return _error(
            500, "The server had an error while processing your request.", "server_error", None
        )
    if fault.kind == "unavailable":
        return _error(
            503, "The engine is currently overloaded, please try again later.", "server_error", None
        )
    return None


def _chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None) -> str:
    payload = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n"


async def _stream(
    completion_id: str,
    model: str,
    pieces: list[str],
    finish: str,
    usage: dict[str, int] | None,
    fault: Fault | None,
    token_delay_s: float,
    stats: Stats,
) -> AsyncIterator[str]:
    kind = fault.kind if fault else None
    try:
        if kind == "stall" and fault:
            await asyncio.sleep(fault.delay_s)
        yield _chunk(completion_id, model, {"role": "assistant", "content": ""}, None)
        slow = fault.delay_s if kind == "slow" and fault else 0.0
        started = asyncio.get_running_loop().time()
        for n, piece in enumerate(pieces):
            if fault and kind in ("cut", "malformed") and n == fault.after_tokens:
                if kind == "malformed":
                    yield 'data: {"id": "broken", "choices": [{"delta": \n\n'
                raise ConnectionAbortedError("fault injected: stream cut")
            if slow:  # a fault: at least this long between pieces, however late the last
                await asyncio.sleep(slow)
            elif token_delay_s:
                now = asyncio.get_running_loop().time()
                await asyncio.sleep(pause_until(started, n, token_delay_s, now))
            yield _chunk(completion_id, model, {"content": piece}, None)
        yield _chunk(completion_id, model, {}, finish)
        if usage is not None:
            tail = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": usage,
            }
            yield f"data: {json.dumps(tail)}\n\n"
        yield "data: [DONE]\n\n"
        stats.completed_streams += 1
    except asyncio.CancelledError:
        stats.disconnects += 1
        raise
