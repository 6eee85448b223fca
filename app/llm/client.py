"""The one module that talks to the LLM upstream, through the official `openai` client.

Any OpenAI-compatible server works: OpenAI itself, Ollama, vLLM, LM Studio, or ragship's
built-in local model. `stream_chat` yields text deltas and then the usage, and handles the
ways providers fail: bounded retries with backoff and jitter (honouring Retry-After) for
429s, 5xx, connection errors and stalls before the first token; no retry for a spent
quota or once tokens have streamed; a fallback model; a circuit breaker per model; a
first-token timeout and a total-time limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any, cast

import httpx
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient
from openai.types.chat import ChatCompletionMessageParam

from app.llm.breaker import CircuitBreaker
from app.llm.errors import OPERATOR_KINDS, UpstreamError, classify
from app.llm.events import Finished, TextDelta, finished_from_usage, with_attempts
from app.llm.routing import chain_of, routable_models
from app.llm.watch import UpstreamWatcher
from app.settings import Settings

log = logging.getLogger("ragship.llm")
QUOTA_COOLDOWN_S = 300.0
BREAKER_KINDS = frozenset(
    {
        "rate_limit",
        "server_error",
        "connection",
        "first_token_timeout",
        "broken_stream",
        "total_timeout",
    }
)
MAX_RETRY_AFTER_S = 30.0
# The health probe's call: tiny, and max_completion_tokens rather than max_tokens=1, which
# reasoning models reject; a 200 cut short by the limit still proves the upstream answers.
PING_MESSAGES = [{"role": "user", "content": "Reply with the word OK."}]
PING_MAX_TOKENS = 16


def backoff_s(attempt: int, *, retry_after_s: float | None, base_s: float = 0.5) -> float:
    """Retry-After when the provider sent one, else exponential backoff with full jitter."""
    if retry_after_s is not None:
        return min(retry_after_s, MAX_RETRY_AFTER_S)
    return random.uniform(0, min(8.0, base_s * 2**attempt))


class LLMClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        settings: Settings,
        breaker_clock: Callable[[], float] = time.monotonic,
        watcher: UpstreamWatcher | None = None,
    ) -> None:
        self.settings = settings
        self.watcher = watcher  # told of every verdict: alerts, the live status page
        self.model = settings.llm_model
        self.models = list(chain_of(self.model, settings.llm_fallback_model))
        self.breakers = {  # one per model a request may be routed to (app/llm/routing.py)
            m: CircuitBreaker(
                failures=settings.breaker_failures,
                cooldown_s=settings.breaker_cooldown_s,
                clock=breaker_clock,
            )
            for m in routable_models(settings)
        }
        self.provider = httpx.URL(base_url).host  # recorded with each call
        # The SDK's aiohttp transport (`openai[aiohttp]`): its C HTTP parser reads a
        # streamed answer for about half the event loop's CPU time of the default httpx2
        # one at 50 concurrent streams (bench/upstream_transport.py). Its session is made
        # on the first request, on the loop that serves it.
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=settings.llm_timeout_s,
            max_retries=0,
            http_client=DefaultAioHttpClient(timeout=settings.llm_timeout_s),
        )

    async def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        model: str | None = None,
    ) -> AsyncGenerator[TextDelta | Finished, None]:
        """Deltas, then a `Finished`, from `model` (default ``LLM_MODEL``; a routed or canary
        model, app/llm/routing.py), then ``LLM_FALLBACK_MODEL`` when it keeps failing.
        Raises `UpstreamError` once every model and retry is spent."""
        s = self.settings
        started = time.monotonic()
        total_deadline = started + s.llm_total_timeout_s
        retry_deadline = started + s.llm_retry_budget_s
        last: UpstreamError | None = None
        attempts = 0
        first = model or self.model
        for model in chain_of(first, s.llm_fallback_model):
            breaker = self.breakers[model]
            for attempt in range(s.llm_max_retries + 1):
                permit = breaker.admit()
                if permit is None:
                    # A spent quota keeps saying so while the breaker holds requests back.
                    kind = (
                        "insufficient_quota"
                        if breaker.reason == "insufficient_quota"
                        else "breaker_open"
                    )
                    if last is None:
                        last = UpstreamError(kind, retry_after_s=breaker.retry_in_s())
                        await self._failed(last, model, held=True)
                    break
                attempts += 1
                verdict = False
                try:
                    async with aclosing(
                        self._attempt(model, messages, max_tokens, temperature, total_deadline)
                    ) as events:
                        async for event in events:
                            if isinstance(event, Finished):  # the upstream answered in full
                                breaker.record_success()
                                verdict = True
                                if self.watcher is not None:
                                    await self.watcher.succeeded(model=model)
                                event = with_attempts(event, attempts)
                            yield event
                    return
                except UpstreamError as err:
                    last = err
                    verdict = True
                    if err.kind == "insufficient_quota":
                        breaker.trip(QUOTA_COOLDOWN_S, err.kind)
                    else:
                        breaker.record_failure(err.kind)
                    await self._failed(err, model)
                    if not err.retryable:
                        raise
                    delay = backoff_s(attempt, retry_after_s=err.retry_after_s)
                    if attempt == s.llm_max_retries or time.monotonic() + delay > retry_deadline:
                        break
                    log.warning(
                        "upstream %s on %s; retry %d in %.2fs", err.kind, model, attempt + 1, delay
                    )
                    await asyncio.sleep(delay)
                finally:
                    # Cancelled, closed by its consumer, or any other exception: no verdict
                    # on the upstream, so the trial must not hold the breaker half-open.
                    if permit == "trial" and not verdict:
                        breaker.release_trial()
            if last is not None and last.kind == "insufficient_quota":
                break
        assert last is not None
        raise last

    async def _attempt(
        self,
        model: str,
        messages: list[dict[str, str]],
        max_tokens: int,
        temperature: float,
        total_deadline: float,
    ) -> AsyncGenerator[TextDelta | Finished, None]:
        """One streamed call. Chunks come as the JSON the upstream sent (`cast_to=object`):
        the SDK's SSE decoding and its error events still apply, but no pydantic model is
        built per chunk, which took a quarter of the event loop at 50 concurrent streams
        (issue 17's profile). Each wait is bounded with `asyncio.timeout_at` around the
        await alone: no task per chunk (as `wait_for` makes on Python 3.11), and no yield
        inside a timeout scope."""
        s = self.settings
        first_token_deadline = min(time.monotonic() + s.llm_first_token_timeout_s, total_deadline)
        started_streaming = False
        reason: str | None = None
        usage: dict[str, Any] | None = None
        body = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        try:
            async with asyncio.timeout_at(_loop_time(first_token_deadline)):
                stream = await self._client.post(
                    "/chat/completions",
                    body=body,
                    cast_to=object,
                    stream=True,
                    stream_cls=openai.AsyncStream[object],
                )
            async with stream:
                chunks = stream.__aiter__()
                while True:
                    deadline = total_deadline if started_streaming else first_token_deadline
                    try:
                        async with asyncio.timeout_at(_loop_time(deadline)):
                            chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                    if not isinstance(chunk, dict):
                        raise json.JSONDecodeError("a chunk that is not an object", str(chunk), 0)
                    for choice in chunk.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            started_streaming = True
                            yield TextDelta(text, model)
                        if choice.get("finish_reason"):
                            reason = choice["finish_reason"]
                            started_streaming = True
                    if chunk.get("usage") is not None:  # some servers report it on every chunk
                        usage = chunk["usage"]
        except TimeoutError as err:
            kind = "total_timeout" if started_streaming else "first_token_timeout"
            raise UpstreamError(kind, started=started_streaming) from err
        except (openai.APIError, httpx.HTTPError, json.JSONDecodeError) as err:
            raise classify(err, started=started_streaming) from err
        except (AttributeError, TypeError) as err:  # a chunk of the wrong shape
            raise UpstreamError("broken_stream", started=True) from err
        yield (
            finished_from_usage(model, reason, usage)
            if usage
            else Finished(model, reason, None, None, 0)
        )

    async def ping(self) -> tuple[int, int]:
        """A real, minimal call to the main model: (input tokens, output tokens).

        Uses max_completion_tokens=16, not max_tokens=1, which reasoning models reject;
        a 200 cut short by the limit still proves the upstream answers.
        """
        try:
            result = await asyncio.wait_for(
                self._client.chat.completions.create(
                    model=self.model,
                    messages=cast(list[ChatCompletionMessageParam], PING_MESSAGES),
                    max_completion_tokens=PING_MAX_TOKENS,
                ),
                timeout=self.settings.llm_first_token_timeout_s,
            )
        except TimeoutError as err:
            raise UpstreamError("first_token_timeout") from err
        except (openai.APIError, httpx.HTTPError, json.JSONDecodeError) as err:
            failure = classify(err, started=False)
            if failure.kind in OPERATOR_KINDS:  # a wrong key is found by the start-up probe
                await self._failed(failure, self.model)
            raise failure from err
        if self.watcher is not None:
            await self.watcher.succeeded(model=self.model)
        usage = result.usage
        return (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)

    async def _failed(self, err: UpstreamError, model: str, *, held: bool = False) -> None:
        """Tell the watcher (status page, operator alert) of a failure. Without one, an
        operator-kind failure is logged at ERROR when the upstream returned it, not again
        for each request the breaker then holds back (`held`)."""
        if self.watcher is None:
            if err.kind in OPERATOR_KINDS and not held:
                log.error("upstream %s on %s: no watcher to alert the operator", err.kind, model)
            return
        await self.watcher.failed(err, model=model, breaker=self.breakers[model])

    @property
    def openai(self) -> AsyncOpenAI:
        """The upstream's OpenAI client (moderation calls share its connection pool)."""
        return self._client

    async def close(self) -> None:
        await self._client.close()


def _loop_time(monotonic_deadline: float) -> float:
    """A `time.monotonic()` deadline on the running loop's clock (`asyncio.timeout_at`)."""
    return asyncio.get_running_loop().time() + (monotonic_deadline - time.monotonic())
