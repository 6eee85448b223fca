"""Retrieval latency: query embedding, the hybrid SQL, and both together, per query.

Baseline, measured in the same run on the same embeddings: a vector-only query
(`ORDER BY embedding <=> :e LIMIT k`, bound parameters), the cheapest useful retrieval.
"""

from __future__ import annotations

import asyncio
import random
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import make_async_engine
from app.models import EMBEDDING_DIM
from app.rag.embedder import Embedder
from app.rag.retrieve import configured_search
from app.settings import Settings
from bench.fixtures import (
    DOCS,
    bench_settings,
    chunk_rows,
    ingest_corpus,
    shared_embedder,
    temp_database,
    write_synthetic_corpus,
)
from bench.table import Table, bounded, latency

NAME = "retrieval"
QUERIES = 300
OUT_OF_SCOPE_SHARE = 0.15
WARMUP = 10
MAX_SECONDS = 120.0
SEED = 11

OUT_OF_SCOPE = (
    "What is the capital of Mongolia?",
    "How do I bake sourdough bread at home?",
    "Who won the 1998 football world cup?",
    "Recommend a good hiking trail in the Alps",
    "How many moons does Jupiter have?",
    "What is the best way to learn the violin?",
    "Translate good morning into Japanese",
    "Explain the rules of cricket",
    "What is a healthy breakfast?",
    "How do tides work?",
)

_VECTOR_SQL = text(
    """
    SELECT c.id, 1 - (c.embedding <=> :embedding) AS similarity
    FROM chunks c
    ORDER BY c.embedding <=> :embedding
    LIMIT :top_k
    """
).bindparams(bindparam("embedding", type_=Vector(EMBEDDING_DIM)))

_FIRST_SENTENCE = re.compile(r"[A-Za-z][^.?!\n]{15,}[.?!]?")


@dataclass
class Samples:
    embed: list[float] = field(default_factory=list)
    hybrid: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    vector: list[float] = field(default_factory=list)
    hits: dict[bool, list[int]] = field(default_factory=lambda: {True: [0, 0], False: [0, 0]})


def run() -> list[Table]:
    embedder = shared_embedder()
    settings = bench_settings()
    with temp_database() as url, tempfile.TemporaryDirectory(prefix="ragship-bench-") as tmp:
        synthetic = write_synthetic_corpus(Path(tmp) / "synthetic")
        ingest_corpus(url, embedder, [DOCS, synthetic])
        rows = chunk_rows(url)
        queries = build_queries(rows, QUERIES)
        samples = asyncio.run(_measure(url, embedder, settings, queries))
    return [_table(samples, settings, len(rows), len(queries))]


def build_queries(rows: list[tuple[str, str]], count: int) -> list[tuple[str, bool]]:
    """`count` queries: headings and first sentences from the corpus, plus out-of-scope ones."""
    pool: list[str] = []
    for heading_path, body in rows:
        pool.append(heading_path.split(" › ")[-1])
        match = _FIRST_SENTENCE.search(body)
        if match:
            pool.append(" ".join(match.group(0).split()[:12]))
    pool = sorted(set(q for q in pool if q.strip()))
    rng = random.Random(SEED)
    outside = round(count * OUT_OF_SCOPE_SHARE)
    inside = count - outside
    picked = (
        rng.sample(pool, inside)
        if len(pool) >= inside
        else [pool[n % len(pool)] for n in range(inside)]
    )
    queries = [(q, True) for q in picked]
    queries += [(OUT_OF_SCOPE[n % len(OUT_OF_SCOPE)], False) for n in range(outside)]
    rng.shuffle(queries)
    return queries


async def _measure(
    url: str, embedder: Embedder, settings: Settings, queries: list[tuple[str, bool]]
) -> Samples:
    engine = make_async_engine(url, pool_size=1)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    samples = Samples()
    try:
        async with sessions() as session:
            for query, _ in queries[:WARMUP]:
                await _one(session, embedder, settings, query, Samples())
            for query, in_scope in bounded(queries, max_seconds=MAX_SECONDS):
                found = await _one(session, embedder, settings, query, samples)
                samples.hits[in_scope][0] += int(found > 0)
                samples.hits[in_scope][1] += 1
    finally:
        await engine.dispose()
    return samples


async def _one(
    session: AsyncSession, embedder: Embedder, settings: Settings, query: str, samples: Samples
) -> int:
    """Time one query three ways; returns how many passages the hybrid search kept."""
    started = time.perf_counter()
    embedding = embedder.embed_one(query)
    embedded = time.perf_counter()
    passages = await configured_search(session, settings, query=query, embedding=embedding)
    searched = time.perf_counter()
    result = await session.execute(
        _VECTOR_SQL, {"embedding": embedding, "top_k": settings.retrieval_top_k}
    )
    result.all()
    finished = time.perf_counter()
    samples.embed.append(embedded - started)
    samples.hybrid.append(searched - embedded)
    samples.total.append(searched - started)
    samples.vector.append(finished - searched)
    return len(passages)


def _table(samples: Samples, settings: Settings, chunks: int, planned: int) -> Table:
    table = Table(
        f"retrieval latency: {len(samples.total)} queries over {chunks} chunks "
        f"(top_k={settings.retrieval_top_k}, candidates={settings.retrieval_candidates})",
        ["measure", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms"],
    )
    vector, hybrid = latency(samples.vector), latency(samples.hybrid)
    table.add("baseline: vector-only SQL (<=> LIMIT k)", *vector.ms())
    table.add("embed query (Embedder.embed_one)", *latency(samples.embed).ms())
    table.add("hybrid SQL (hybrid_search)", *hybrid.ms())
    table.add("embed + hybrid SQL", *latency(samples.total).ms())
    inside, outside = samples.hits[True], samples.hits[False]
    table.notes += [
        f"hybrid SQL vs vector-only: p50 {(hybrid.p50 - vector.p50) * 1000:+.2f} ms "
        f"(x{hybrid.p50 / vector.p50:.2f}), mean {(hybrid.mean - vector.mean) * 1000:+.2f} ms",
        f"queries with >= 1 passage: corpus-derived {inside[0]}/{inside[1]}, "
        f"out-of-scope {outside[0]}/{outside[1]} (min similarity "
        f"{settings.retrieval_min_similarity})",
        f"{WARMUP} warm-up queries not counted; one async session reused for every query",
    ]
    if len(samples.total) < planned:
        table.notes.append(f"stopped by the {MAX_SECONDS:.0f}s budget after {len(samples.total)}")
    return table
