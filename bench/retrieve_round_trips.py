"""Retrieval's round trips: the chat path's hybrid search in one round trip against the
four it took, same run.

`app/prepare.py` reads in autocommit and `hybrid_search` sends the question's settings and
the search in one pipeline (`app.db.pipelined`): one round trip, one implicit transaction.
The baseline runs the same two statements as before: one at a time inside the session's
BEGIN and COMMIT (`session_scope`), four round trips. Both hold a pooled connection for as
long as they take, so a busy event loop, which each round trip waits for, makes a request
hold its connection longer (issue 17: at 50 concurrent answers the reservation waited for
a free connection).

A fourth side sends the chat path's search as it was until 2026-12-03: with the corpus check
(`CorpusFit`) and, since the docs fit the keyword pool, the keyword side that ranks every
match in one scan (`HYBRID_WHOLE_SQL`) instead of the bounded tiers; same passages. It runs
on one generic plan per connection; the third side sends the same statements planned for
each search's values, as the chat path did until 2026-12-02. The fifth is the chat path
now: the same, with the check sent at most every `RECHECK_S` (a worker's `CorpusFit`).

A second table does the same for a first turn with the response cache on (its default): the
corpus version, the cache lookup and the search, one round trip each as they were, against
`search_or_cached`, which sends the lookup (reading the version with the entry) and the
search in one pipeline.

The bundled docs, ingested into one temporary PostgreSQL; the eval questions, embedded
once; each question asked both ways in random order, three rounds (the first warms up and
is not counted). Twice: on an idle event loop, then beside 50 relay tasks that each spin
0.5 ms of CPU every 20 ms (as `bench settle_tail` keeps the loop as busy as 50 streams).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cache.responses import CacheKeyParts, corpus_version, lookup_statement
from app.db import autocommit_scope, make_async_engine, pipelined, session_scope
from app.models import EMBEDDING_DIM
from app.prepare import search_or_cached
from app.rag import retrieve, search_sql
from app.rag.corpus_fit import RECHECK_S, CorpusFit
from bench.fixtures import DOCS, bench_settings, ingest_corpus, shared_embedder, temp_database
from bench.settle_tail import RELAYS, relay
from bench.table import Table, latency, ratio
from evals.cases import load_cases

NAME = "retrieve_round_trips"
ROUNDS = 3
SETTINGS = bench_settings()
CACHED = bench_settings(response_cache=True)
CACHE_SIMILARITY = CACHED.response_cache_similarity
Sessions = async_sessionmaker[AsyncSession]
Ask = Callable[[Sessions, str, list[float]], Awaitable[Any]]

# The statement as the baseline sent it, through SQLAlchemy (its vector type binds the list).
_ONE_AT_A_TIME = search_sql.HYBRID_SQL.bindparams(
    bindparam("embedding", type_=Vector(EMBEDDING_DIM))
)


def _params(question: str, embedding: list[float]) -> dict[str, Any]:
    s = SETTINGS
    return {
        "embedding": embedding,
        "query": question,
        "candidates": max(s.retrieval_candidates, s.retrieval_top_k),
        "min_similarity": s.retrieval_min_similarity,
        "rrf_k": s.rrf_k,
        "top_k": s.retrieval_top_k,
        "confident_similarity": s.relevance_similarity,
        "keyword_share": s.relevance_keyword_share,
        "pool": s.retrieval_keyword_pool,
        "common_share": retrieve.COMMON_SHARE,
    }


async def _four_round_trips(sessions: Sessions, question: str, embedding: list[float]) -> Any:
    s = SETTINGS
    async with session_scope(sessions) as session:  # BEGIN (with the first), COMMIT
        plan, values = retrieve._plan_per_query(ef_search=s.retrieval_ef_search)
        await session.execute(plan, values)
        return (await session.execute(_ONE_AT_A_TIME, _params(question, embedding))).all()


async def _one_round_trip(sessions: Sessions, question: str, embedding: list[float]) -> Any:
    async with autocommit_scope(sessions) as session:
        return await retrieve.configured_search(
            session, SETTINGS, query=question, embedding=embedding
        )


# The docs fit the keyword pool: from the second question on, the whole-corpus statement.
_FIT = CorpusFit()  # checked on every search, as until 2026-12-03
_RECHECKED = CorpusFit(recheck_s=RECHECK_S)  # as a worker's: checked at most every RECHECK_S


async def _whole_corpus(sessions: Sessions, question: str, embedding: list[float]) -> Any:
    async with autocommit_scope(sessions) as session:
        return await retrieve.configured_search(
            session, SETTINGS, query=question, embedding=embedding, fit=_FIT
        )


async def _whole_corpus_rechecked(sessions: Sessions, question: str, embedding: list[float]) -> Any:
    async with autocommit_scope(sessions) as session:
        return await retrieve.configured_search(
            session, SETTINGS, query=question, embedding=embedding, fit=_RECHECKED
        )


async def _whole_corpus_planned_each_time(
    sessions: Sessions, question: str, embedding: list[float]
) -> Any:
    """`_whole_corpus` as it ran until 2026-12-02: planned for each search's values."""
    async with autocommit_scope(sessions) as session:
        check, (plan, values), search = retrieve.configured_statements(
            SETTINGS, query=question, embedding=embedding, fit=_FIT
        )
        custom = {**values, "plan_cache_mode": "force_custom_plan"}
        results = await pipelined(session, [check, (plan, custom), search], commit=False)
        _FIT.saw(results[0])
        return retrieve.passages_of(results[-1])


SIDES: dict[str, Ask] = {
    "BEGIN, settings, search, COMMIT (baseline)": _four_round_trips,
    "settings + search pipelined, autocommit": _one_round_trip,
    "+ corpus check, whole-corpus, planned per search (until 2026-12-02)": (
        _whole_corpus_planned_each_time
    ),
    "+ corpus check, whole-corpus, one generic plan (until 2026-12-03)": _whole_corpus,
    f"as chat: the check at most every {RECHECK_S:.0f} s": _whole_corpus_rechecked,
}

# A first turn with the response cache on (its default): the corpus version, the lookup and
# the search. The baseline sends today's statements one round trip each, as before.
_PARTS = CacheKeyParts("bench", "local", "main")


async def _three_round_trips(sessions: Sessions, question: str, embedding: list[float]) -> Any:
    async with autocommit_scope(sessions) as session:
        await corpus_version(session)
        looking = lookup_statement(
            _PARTS, question=question, embedding=embedding, threshold=CACHE_SIMILARITY
        )
        await pipelined(session, [looking], commit=False)
        return await retrieve.configured_search(
            session, SETTINGS, query=question, embedding=embedding
        )


async def _first_turn_one_round_trip(
    sessions: Sessions, question: str, embedding: list[float]
) -> Any:
    async with autocommit_scope(sessions) as session:
        return await search_or_cached(  # a fit never seen: the tiers, as before
            session, CACHED, question=question, embedding=embedding, cache=_PARTS, fit=CorpusFit()
        )


FIRST_TURN_SIDES: dict[str, Ask] = {
    "version, lookup, search: 3 round trips (baseline)": _three_round_trips,
    "lookup (with the version) + search pipelined": _first_turn_one_round_trip,
}


async def _measure(
    url: str, questions: list[tuple[str, list[float]]], table: Table, sides: dict[str, Ask]
) -> None:
    engine = make_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        for busy in (False, True):
            stop = asyncio.Event()
            relays = [asyncio.create_task(relay(stop)) for _ in range(RELAYS if busy else 0)]
            took: dict[str, list[float]] = {label: [] for label in sides}
            order = random.Random(17)
            for round_ in range(ROUNDS):
                for question, embedding in questions:
                    labels = list(sides)
                    order.shuffle(labels)
                    for label in labels:
                        started = time.perf_counter()
                        await sides[label](sessions, question, embedding)
                        if round_:  # the first round warms up
                            took[label].append(time.perf_counter() - started)
            stop.set()
            await asyncio.gather(*relays)
            base = latency(next(iter(took.values())))
            for label, samples in took.items():
                lat = latency(samples)
                table.add(
                    f"{RELAYS} relays" if busy else "idle",
                    label,
                    lat.n,
                    f"{lat.p50 * 1000:.2f}",
                    f"{lat.p95 * 1000:.2f}",
                    ratio(lat.p50, base.p50),
                )
    finally:
        await engine.dispose()


def run() -> list[Table]:
    embedder = shared_embedder()
    questions = [(c.question, embedder.embed_one(c.question)) for c in load_cases()]
    columns = ["event loop", "sent as", "n", "p50 ms", "p95 ms", "p50 vs baseline"]
    table = Table(
        f"Retrieval's round trips: hybrid search on the docs, {len(questions)} eval questions",
        columns,
    )
    first = Table(
        f"A first turn's reads, response cache on (all misses): {len(questions)} eval questions",
        columns,
    )
    with temp_database() as url:
        ingest_corpus(url, embedder, [DOCS])
        asyncio.run(_measure(url, questions, table, SIDES))
        asyncio.run(_measure(url, questions, first, FIRST_TURN_SIDES))
    notes = [
        "each question asked both ways in random order; the first of three rounds not counted",
        f"{RELAYS} relays: tasks each spinning 0.5 ms of CPU every 20 ms (bench settle_tail)",
    ]
    table.notes += notes
    first.notes += [*notes, "nothing is stored in the cache, so every lookup misses"]
    return [table, first]
