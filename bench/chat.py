"""End-to-end chat overhead: POST /api/chat read to the end, against the model called directly.

The app and the built-in local model (no token delay) run on loopback background servers.
Each iteration asks the app, reads back from the local model's `/_stats` the exact messages
the app sent, and replays them straight to `/v1/chat/completions` with the `openai` client:
the baseline, measured in the same run with the same prompt. The difference is what the
service adds: the HTTP hop to the app, sign-in check, embedding, retrieval, SSE framing and
settling. A keep-alive GET /healthz on the same client shows the HTTP hop on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from app.main import create_app
from app.settings import Settings
from bench.fixtures import (
    DOCS,
    Timing,
    ask,
    bench_settings,
    ingest_corpus,
    shared_embedder,
    signed_in_client,
    temp_database,
)
from bench.table import DASH, Latency, Table, bounded, latency

NAME = "chat"
REQUESTS = 50
WARMUP = 3
MAX_SECONDS = 180.0

QUESTIONS = (
    "How do I ingest PDF files?",
    "How does hybrid retrieval work?",
    "What does the built-in local model do?",
    "How do I use a real OpenAI model?",
    "Which database does ragship use?",
    "What is stored for every answer?",
    "How do I run the test suite?",
    "What does DOCS_DIR configure?",
    "How are chunks created from a document?",
    "How is the cost of an answer recorded?",
)


@dataclass
class Results:
    service: list[Timing] = field(default_factory=list)
    direct: list[Timing] = field(default_factory=list)
    healthz: list[float] = field(default_factory=list)


def run() -> list[Table]:
    embedder = shared_embedder()
    with temp_database() as url:
        ingest_corpus(url, embedder, [DOCS])
        model = BackgroundServer(create_local_model(token_delay_s=0.0)).start()
        try:
            settings = bench_settings(
                database_url=url,
                llm_base_url=f"{model.url}/v1",
                # Sequential requests from one user: stay under the per-user rate limit
                # (an unknown setting is ignored by versions of the app without it).
                rate_limit_requests=10 * (WARMUP + REQUESTS),
            )
            app = BackgroundServer(create_app(settings, embedder=embedder)).start()
            try:
                results = _measure(app.url, model.url, settings)
            finally:
                app.stop()
        finally:
            model.stop()
    return [_table(results)]


def _measure(app_url: str, model_url: str, settings: Settings) -> Results:
    results = Results()
    plan = [QUESTIONS[n % len(QUESTIONS)] for n in range(WARMUP + REQUESTS)]
    with (
        signed_in_client(app_url) as http,
        OpenAI(base_url=f"{model_url}/v1", api_key="local", max_retries=0, timeout=30) as direct,
    ):
        for n, question in enumerate(bounded(plan, max_seconds=MAX_SECONDS)):
            service = ask(http, question)
            messages = http.get(f"{model_url}/_stats").json()["last_messages"]
            baseline = _direct(direct, messages, settings)
            floor = _healthz(http)
            if n >= WARMUP:
                results.service.append(service)
                results.direct.append(baseline)
                results.healthz.append(floor)
    return results


def _healthz(http: httpx.Client) -> float:
    """The HTTP round trip to the app alone, on the same keep-alive connection."""
    started = time.perf_counter()
    http.get("/healthz").raise_for_status()
    return time.perf_counter() - started


def _direct(client: OpenAI, messages: list[dict[str, Any]], settings: Settings) -> Timing:
    """The same prompt straight to the local model, streamed, as app/llm/client.py asks."""
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    stream = client.chat.completions.create(
        model=settings.llm_model,
        messages=cast(list[ChatCompletionMessageParam], messages),
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                tokens += 1
                first = first or time.perf_counter()
    finished = time.perf_counter()
    return Timing((first or finished) - started, finished - started, tokens)


def _values(ttft: Latency, total: Latency) -> list[float]:
    return [ttft.p50, ttft.p95, total.p50, total.p95, total.mean]


def _summaries(timings: list[Timing]) -> tuple[Latency, Latency]:
    return latency([t.ttft for t in timings]), latency([t.total for t in timings])


def _table(results: Results) -> Table:
    table = Table(
        f"chat end to end: {len(results.service)} sequential questions, local model "
        "with no token delay",
        ["path", "n", "TTFT p50 ms", "TTFT p95 ms", "total p50 ms", "total p95 ms", "mean ms"],
    )
    direct = _values(*_summaries(results.direct))
    service = _values(*_summaries(results.service))
    n = str(len(results.service))
    table.add("baseline: local model direct (openai)", n, *(f"{v * 1000:.2f}" for v in direct))
    table.add("ragship POST /api/chat (httpx, SSE)", n, *(f"{v * 1000:.2f}" for v in service))
    floor = latency(results.healthz)
    table.add(
        "floor: GET /healthz on the app, same client",
        str(floor.n),
        DASH,
        DASH,
        *(f"{v * 1000:.2f}" for v in (floor.p50, floor.p95, floor.mean)),
    )
    table.add(
        "added by the service (chat - baseline)",  # differences of the figures above
        "",
        *(f"{(s - d) * 1000:+.2f}" for s, d in zip(service, direct, strict=True)),
    )
    pieces = sum(t.tokens for t in results.service) / max(1, len(results.service))
    table.notes += [
        "baseline replays the exact messages the service sent (read from the model's /_stats)",
        f"about {pieces:.0f} streamed pieces per answer; {WARMUP} warm-up rounds not counted",
        "the floor row is the plain HTTP hop to the app's BackgroundServer: when it is ~40 ms,",
        "  that is Nagle + delayed ACK (no TCP_NODELAY on its sockets), not the chat path",
    ]
    if len(results.service) < REQUESTS:
        table.notes.append(f"stopped by the {MAX_SECONDS:.0f}s budget after {len(results.service)}")
    return table
