"""The load benchmarks' HTTP side: one answer through ragship or straight to an
OpenAI-compatible upstream, timed to its first text, and closed-loop rounds of them."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

QUESTION = "How do I ingest PDF files?"


@dataclass
class Side:
    ttft: list[float] = field(default_factory=list)
    first_event: list[float] = field(default_factory=list)
    errors: int = 0
    wall: float = 0.0


async def ragship_once(http: httpx.AsyncClient, side: Side) -> None:
    started = time.perf_counter()
    first_event: float | None = None
    ttft: float | None = None
    last = ""
    try:
        async with http.stream("POST", "/api/chat", json={"message": QUESTION}) as response:
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    last = line[6:].strip()
                    now = time.perf_counter() - started
                    first_event = first_event if first_event is not None else now
                    if last == "token" and ttft is None:
                        ttft = now
            ok = response.status_code == 200 and last == "done"
    except httpx.HTTPError:
        ok = False
    if ok and ttft is not None and first_event is not None:
        side.ttft.append(ttft)
        side.first_event.append(first_event)
    else:
        side.errors += 1


async def direct_once(http: httpx.AsyncClient, body: dict[str, Any], side: Side) -> None:
    started = time.perf_counter()
    ttft: float | None = None
    try:
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if ttft is None and has_text(line):
                    ttft = time.perf_counter() - started
            ok = response.status_code == 200
    except httpx.HTTPError:
        ok = False
    if ok and ttft is not None:
        side.ttft.append(ttft)
        side.first_event.append(ttft)
    else:
        side.errors += 1


def has_text(line: str) -> bool:
    """Whether one SSE line of an OpenAI-style stream carries answer text."""
    if not line.startswith("data:") or line.endswith("[DONE]"):
        return False
    choices = json.loads(line[5:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def closed_round(concurrency: int, n: int, send: Any) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await send()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - started


async def upstream_side(
    url: str, concurrency: int, n: int, body: dict[str, Any], side: Side, key: str = ""
) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with client(url, concurrency, headers=headers) as up:
        side.wall = await closed_round(concurrency, n, lambda: direct_once(up, body, side))


async def ragship_side(
    url: str,
    concurrency: int,
    n: int,
    cookies: httpx.Cookies,
    headers: dict[str, str],
    side: Side,
) -> None:
    async with client(url, concurrency, cookies=cookies, headers=headers) as http:
        side.wall = await closed_round(concurrency, n, lambda: ragship_once(http, side))


def client(url: str, n: int, timeout_s: float = 120, **kwargs: Any) -> httpx.AsyncClient:
    """An async client for `n` concurrent streams to `url` (kwargs go to httpx.AsyncClient)."""
    limits = httpx.Limits(max_connections=n + 5, max_keepalive_connections=n + 5)
    return httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits, **kwargs)
