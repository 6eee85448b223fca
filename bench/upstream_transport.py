"""Reading a streamed answer from the upstream: the `openai` SDK's default httpx2 transport
against its aiohttp one (`DefaultAioHttpClient`, what `app/llm/client.py` uses), and a
floor for both: the same request on a bare `aiohttp` session, no SDK, its stream split
into SSE lines here and each chunk parsed with `json.loads`, as the SDK parses it.

The upstream is the built-in local model in its own process, paced at 20 ms a piece
(bench/procs.py `start_model`). Every side sends the body `LLMClient.stream_chat` sends
(the SDK sides with its very call; the floor as plain JSON, on connections kept alive,
each response read to its end so that its connection goes back to the pool)
for a prompt built by `app/rag/prompt.py` from a page of the docs, capped at MAX_TOKENS
(about 64 chunks, as issue 17's upstream), and reads the stream to its end. Rounds take
the sides in turn, forwards then backwards (ABC, CBA: none always goes first), each on a
fresh client.

Columns: the event loop's own CPU time per answer (`time.thread_time`; this process holds
only the client, so that is what the transport costs the app's loop), the time to the
first chunk, and answers per second at the concurrency. At 50 concurrent the local model
is the limit (about 2,400 chunks a second on this 2-core machine), so answers per second
and the first chunk there measure the model as much as the client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import openai

from app.rag.prompt import build_messages
from app.rag.retrieve import Passage
from app.settings import LOCAL_MODEL_ID
from bench.procs import start_model
from bench.table import Table, latency

NAME = "upstream_transport"
ROUNDS = 3
PLAN = {1: 20, 50: 200}  # concurrency: answers per side per round
MAX_TOKENS = 108  # about 64 chunks of the local model's answer to QUESTION
QUESTION = "How do I ingest PDF files?"
PAGE = Path(__file__).resolve().parents[1] / "docs" / "ingest.md"
SIDES = (
    "httpx2 (the SDK's default)",
    "aiohttp (DefaultAioHttpClient)",
    "aiohttp alone, no SDK (a floor)",
)
Answer = Callable[[Callable[[], None]], Awaitable[None]]  # reads one answer, calling back per chunk


def _body() -> dict[str, object]:
    text = PAGE.read_text(encoding="utf-8")[:6000]
    passage = Passage(1, 1, "ingest.md", "Ingest", "Ingest", "ingest", text, 1.0, 1.0)
    messages = build_messages(question=QUESTION, passages=[passage], history=[])
    return {"model": LOCAL_MODEL_ID, "messages": messages, "stream": True,
            "max_tokens": MAX_TOKENS, "temperature": 0.0,
            "stream_options": {"include_usage": True}}  # fmt: skip


@asynccontextmanager
async def _client(url: str, side: str, body: dict[str, object]) -> AsyncIterator[Answer]:
    """A fresh client for ``side``, as a function that reads one answer to ``body``."""
    if side == SIDES[2]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            yield lambda chunk: _bare(session, f"{url}/v1/chat/completions", body, chunk)
        return
    transport = openai.DefaultAioHttpClient(timeout=60) if side == SIDES[1] else None
    async with openai.AsyncOpenAI(
        base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=60, http_client=transport
    ) as client:
        yield lambda chunk: _sdk(client, body, chunk)


async def _sdk(
    client: openai.AsyncOpenAI, body: dict[str, object], chunk: Callable[[], None]
) -> None:
    """The call `LLMClient._attempt` makes (app/llm/client.py)."""
    stream = await client.post(
        "/chat/completions", body=body, cast_to=object, stream=True,
        stream_cls=openai.AsyncStream[object],
    )  # fmt: skip
    async with stream:
        async for _ in stream:
            chunk()


async def _bare(
    session: aiohttp.ClientSession, url: str, body: dict[str, object], chunk: Callable[[], None]
) -> None:
    """The same request without the SDK: each `data:` line before `[DONE]` parsed as JSON.
    The body is read to its end, as the SDK reads it: aiohttp may close a connection whose
    response was left unfinished instead of pooling it."""
    headers = {"Authorization": "Bearer bench"}
    done = False
    async with session.post(url, json=body, headers=headers) as response:
        response.raise_for_status()
        async for line in response.content:
            data = line[5:].strip() if line.startswith(b"data:") else None
            if done or data is None:
                continue
            if data == b"[DONE]":
                done = True
                continue
            json.loads(data)
            chunk()


async def _round(
    answer: Answer, concurrency: int, n: int
) -> tuple[list[float], float, float, float]:
    """(first-chunk times, loop CPU per answer, answers per second, chunks per answer)."""
    gate = asyncio.Semaphore(concurrency)
    firsts: list[float] = []
    chunks = 0

    async def one() -> None:
        first = True

        def chunk() -> None:
            nonlocal chunks, first
            if first:
                firsts.append(time.perf_counter() - started)
                first = False
            chunks += 1

        async with gate:
            started = time.perf_counter()
            await answer(chunk)

    used, started = time.thread_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - started
    return firsts, (time.thread_time() - used) / n, n / wall, chunks / n


async def _measure(url: str) -> dict[tuple[int, str], list[tuple[list[float], float, float]]]:
    body = _body()
    results: dict[tuple[int, str], list[tuple[list[float], float, float]]] = {}
    for turn in range(ROUNDS):
        for concurrency, n in PLAN.items():
            for side in SIDES if turn % 2 == 0 else SIDES[::-1]:  # ABC, CBA: none always first
                async with _client(url, side, body) as answer:
                    await _round(answer, min(concurrency, 5), 10)  # connections, caches
                    firsts, cpu, rate, chunks = await _round(answer, concurrency, n)
                results.setdefault((concurrency, side), []).append((firsts, cpu, rate))
                results.setdefault((0, "chunks"), []).append(([], chunks, 0.0))
    return results


def run() -> list[Table]:
    table = Table(
        "Reading the upstream's stream: the SDK's httpx2 transport, its aiohttp one, and no SDK",
        ["concurrency", "transport", "answers", "loop CPU ms/answer (rounds)",
         "first chunk p50/p95 ms", "answers/s (rounds)"],
    )  # fmt: skip
    with start_model() as url:
        results = asyncio.run(_measure(url))
    for (concurrency, side), rounds in results.items():
        if concurrency == 0:
            continue
        firsts = latency([f for r in rounds for f in r[0]])
        table.add(
            concurrency, side, firsts.n, " ".join(f"{r[1] * 1000:.1f}" for r in rounds),
            f"{firsts.p50 * 1000:.1f}/{firsts.p95 * 1000:.1f}",
            " ".join(f"{r[2]:.1f}" for r in rounds),
        )  # fmt: skip
    chunks = sorted({round(r[1]) for r in results[(0, "chunks")]})
    table.notes += [
        f"{ROUNDS} rounds, the sides in turn (ABC, CBA); chunks per answer: {chunks} "
        f"(max_tokens {MAX_TOKENS}, the local model at 20 ms a piece in its own process)",
        "loop CPU: this process's event-loop thread, which holds only the client",
    ]
    return [table]
