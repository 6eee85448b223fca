"""One open-loop request of `python -m bench ceiling`, sent and judged.

Each sends one streamed answer request at its scheduled time and returns its Outcome
(bench/openloop.py): "ok" with the time from `scheduled` (the event loop's clock, seconds)
to the first answer text, "shed" for a 503 with Retry-After, or "error" with why. Network
errors are outcomes, never raised.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bench.openloop import Outcome
from bench.sse_client import QUESTION, has_text


def refused(response: httpx.Response) -> Outcome:
    """A non-200 answer: shed when it is a 503 with Retry-After, else an error."""
    shed = response.status_code == 503 and "retry-after" in response.headers
    return Outcome("shed") if shed else Outcome("error", why=f"status {response.status_code}")


async def direct(http: httpx.AsyncClient, body: dict[str, Any], scheduled: float) -> Outcome:
    """POST /v1/chat/completions (an OpenAI-compatible upstream or proxy); ok when the
    stream carried text and ended with `data: [DONE]`."""
    loop = asyncio.get_running_loop()
    ttft: float | None = None
    last = ""
    try:
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                return refused(response)
            async for line in response.aiter_lines():
                if ttft is None and has_text(line):
                    ttft = loop.time() - scheduled
                last = line or last
    except httpx.HTTPError as exc:
        return Outcome("error", why=type(exc).__name__)
    complete = last.strip() == "data: [DONE]"
    ok = complete and ttft is not None
    return Outcome("ok", ttft) if ok else Outcome("error", why=f"ended with {last[:40]!r}")


async def ragship(http: httpx.AsyncClient, scheduled: float) -> Outcome:
    """POST /api/chat with QUESTION; ok when a `token` event came and the last event was
    `done`. The time is to the first `token` event (after the guardrail hold-back)."""
    loop = asyncio.get_running_loop()
    ttft: float | None = None
    last = ""
    try:
        async with http.stream("POST", "/api/chat", json={"message": QUESTION}) as response:
            if response.status_code != 200:
                return refused(response)
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    last = line[6:].strip()
                    if last == "token" and ttft is None:
                        ttft = loop.time() - scheduled
    except httpx.HTTPError as exc:
        return Outcome("error", why=type(exc).__name__)
    ok = last == "done" and ttft is not None
    return Outcome("ok", ttft) if ok else Outcome("error", why=f"ended with {last!r}")
