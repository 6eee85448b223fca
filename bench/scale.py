"""Retrieval at a forker's corpus size: 10k and 100k chunks (1M: `python -m bench scale_1m`).

Synthetic chunks: clustered unit vectors (a mixture of 200 Gaussian clusters, as real
embeddings cluster by topic) with synthetic sentences for the keyword side, loaded with
COPY into a fresh migrated database; then the HNSW index is rebuilt and its build timed.
Up to 200k chunks the database is kept under /tmp and reused by the next run with the same
chunks and schema (`bench.scale_db`); the build column then shows the first run's build
time, marked "(reused)", and the queries run on the same HNSW graph (a rebuild's graph,
and so its recall, varies a little from build to build). Queries are perturbed copies of
random chunks' vectors with those chunks' words.

Per size: the HNSW build time, recall@10 of the vector-only query against exact search
(numpy, brute force over every vector) at pgvector's default `hnsw.ef_search` (40), at 100,
at the setting's default and at 400, and p50/p95 of the vector-only SQL and of
`hybrid_search`, both with the default settings (keyword pool, ef_search) and, as the
baseline, with the keyword side unbounded (a pool as large as the corpus: every match
ranked, as before issue 17) at ef_search 40. `hybrid_search` runs in autocommit, as the
chat path runs it (app/prepare.py): its settings and the search in one round trip.
Each size runs at PostgreSQL's default `shared_buffers` (128 MB) and, where it is larger,
at the size docs/retrieval.md ("Memory") gives for the corpus, the server started afresh
for each.
"""

from __future__ import annotations

import asyncio
import random
import time

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import autocommit_scope, make_async_engine
from app.models import EMBEDDING_DIM
from app.rag.retrieve import EF_SEARCH as DEFAULT_EF
from app.rag.retrieve import hybrid_search
from app.settings import Settings
from bench.fixtures import _sentence, bench_settings
from bench.scale_db import (
    DEFAULT_SHARED_BUFFERS_MB,
    KEEP_UP_TO,
    KEPT,
    scale_database,
    sized_buffers_mb,
)
from bench.table import Latency, Table, latency

NAME = "scale"
SIZES = (10_000, 100_000)
QUERIES = 100
CLUSTERS = 200
SEED = 17
EF_SEARCH = (40, 100, DEFAULT_EF, 400)
Query = tuple[str, np.ndarray]  # a question's words and its unit vector
COLUMNS = ["chunks", "shared_buffers", "query", "recall@10", "p50 ms", "p95 ms", "HNSW build s"]
BUFFERS_NOTE = (
    "shared_buffers: PostgreSQL's default (128 MB), then sized to hold the HNSW index and the "
    "chunks table as docs/retrieval.md sizes it (about 4 KB a chunk); the server starts with "
    "empty buffers for each and every query is run once untimed before the timed passes"
)

_VECTOR_SQL = text("SELECT id FROM chunks ORDER BY embedding <=> :embedding LIMIT 10").bindparams(
    bindparam("embedding", type_=Vector(EMBEDDING_DIM))
)


def _vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((CLUSTERS, EMBEDDING_DIM)).astype(np.float32)
    points = centres[rng.integers(0, CLUSTERS, n)] + 0.6 * rng.standard_normal(
        (n, EMBEDDING_DIM)
    ).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


async def _warm(sessions: async_sessionmaker[AsyncSession], queries: list[Query]) -> None:
    """Every query once, untimed, at the largest ef_search and through `hybrid_search`: the
    timed passes then measure a running server's steady state, not its first reads (a
    server started with 4 GB of empty shared buffers took 35 ms at the median for the
    first pass of vector queries at 1M chunks, against 8 ms with 128 MB)."""
    settings = bench_settings()
    async with sessions() as session:
        await session.execute(text(f"SET hnsw.ef_search = {max(EF_SEARCH)}"))
        for _, vector in queries:
            await session.execute(_VECTOR_SQL, {"embedding": vector.tolist()})
    async with autocommit_scope(sessions) as session:
        for question in queries:
            pool, ef = settings.retrieval_keyword_pool, settings.retrieval_ef_search
            await _hybrid(session, settings, question, pool=pool, ef=ef)


async def _hybrid(
    session: AsyncSession, settings: Settings, question: Query, *, pool: int, ef: int
) -> None:
    """`hybrid_search` for one question with the settings' top_k, candidates, minimum
    similarity and RRF k, and the given keyword pool and ef_search."""
    words, vector = question
    await hybrid_search(
        session,
        query=words,
        embedding=vector.tolist(),
        top_k=settings.retrieval_top_k,
        candidates=settings.retrieval_candidates,
        min_similarity=settings.retrieval_min_similarity,
        rrf_k=settings.rrf_k,
        pool=pool,
        ef_search=ef,
    )


async def _query(
    url: str, queries: list[Query], ids: np.ndarray, size: int, baseline: bool
) -> dict[str, tuple[float | None, Latency]]:
    settings = bench_settings()
    engine = make_async_engine(url, pool_size=1)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    out: dict[str, tuple[float | None, Latency]] = {}
    try:
        await _warm(sessions, queries)
        async with sessions() as session:
            for ef in EF_SEARCH:
                await session.execute(text(f"SET hnsw.ef_search = {int(ef)}"))
                found, took = 0, []
                for (_, vector), exact in zip(queries, ids, strict=True):
                    started = time.perf_counter()
                    rows = (
                        await session.execute(_VECTOR_SQL, {"embedding": vector.tolist()})
                    ).all()
                    took.append(time.perf_counter() - started)
                    found += len({r.id for r in rows} & set(exact.tolist()))
                out[f"vector ef={ef}"] = (found / (10 * len(queries)), latency(took))
        hybrids = [
            (
                f"hybrid, pool={settings.retrieval_keyword_pool}, "
                f"ef={settings.retrieval_ef_search} (settings)",
                settings.retrieval_keyword_pool,
                settings.retrieval_ef_search,
            ),
        ]
        if baseline:
            label = f"hybrid, unbounded keyword side, ef={EF_SEARCH[0]} (before)"
            hybrids.insert(0, (label, size, 40))
        # As the chat path runs it (app/prepare.py): in autocommit, so the question's
        # settings and the search are one round trip and one implicit transaction.
        async with autocommit_scope(sessions) as session:
            for label, pool, ef in hybrids:
                took = []
                for question in queries:
                    started = time.perf_counter()
                    await _hybrid(session, settings, question, pool=pool, ef=ef)
                    took.append(time.perf_counter() - started)
                out[label] = (None, latency(took))
    finally:
        await engine.dispose()
    return out


def measure(size: int, table: Table, *, baseline: bool = True) -> None:
    """Add `size`'s rows to `table`; `baseline` adds the unbounded keyword side (slow)."""
    rng = np.random.default_rng(SEED)
    words = random.Random(SEED)
    vectors = _vectors(size, rng)
    texts = [_sentence(words) for _ in range(size)]
    picks = rng.choice(size, QUERIES, replace=False)
    noisy = vectors[picks] + 0.05 * rng.standard_normal((QUERIES, EMBEDDING_DIM)).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    exact = np.argsort(-(noisy @ vectors.T), axis=1)[:, :10] + 1  # chunk ids start at 1
    queries = [(texts[p], noisy[n]) for n, p in enumerate(picks)]
    with scale_database(vectors, texts) as db:
        for buffers in dict.fromkeys([DEFAULT_SHARED_BUFFERS_MB, sized_buffers_mb(size)]):
            with db.serving(buffers) as url:
                # The unbounded baseline once, at PostgreSQL's default (17 s a run, idle).
                first = buffers == DEFAULT_SHARED_BUFFERS_MB
                results = asyncio.run(_query(url, queries, exact, size, baseline and first))
            build = f"{db.build_s:.1f}" + (" (reused)" if db.reused else "")
            for label, (recall, lat) in results.items():
                table.add(
                    f"{size:,}",
                    f"{buffers} MB",
                    label,
                    "-" if recall is None else f"{recall:.3f}",
                    f"{lat.p50 * 1000:.2f}",
                    f"{lat.p95 * 1000:.2f}",
                    build,
                )


def one_size(size: int) -> list[Table]:
    """`measure` at one size without the unbounded baseline (bench scale_100k, scale_1m)."""
    table = Table(
        f"Retrieval at scale: {QUERIES} queries, {size:,} synthetic clustered vectors",
        COLUMNS,
    )
    measure(size, table, baseline=False)
    table.notes += [
        "recall@10 against exact search (numpy brute force); HNSW as the migrations build it "
        "(m=16, ef_construction=128)",
        "hybrid = hybrid_search with the default settings, in autocommit as the chat path "
        "runs it (one round trip); the unbounded baseline is left out",
        BUFFERS_NOTE,
    ]
    if size <= KEEP_UP_TO:
        table.notes.append(f"database kept in {KEPT} (delete it to rebuild)")
    return [table]


def run() -> list[Table]:
    table = Table(
        f"Retrieval at scale: {QUERIES} queries per size, synthetic clustered vectors",
        COLUMNS,
    )
    for size in SIZES:
        measure(size, table)
    table.notes += [
        "recall@10 against exact search (numpy brute force); HNSW as the migrations build it "
        "(m=16, ef_construction=128)",
        "hybrid = hybrid_search (vector candidates + full text, RRF), top_k and candidates "
        "from the default settings; 'before' ranks every full-text match (pool = the corpus)",
        f"databases up to {KEEP_UP_TO:,} chunks kept in {KEPT} (delete it to rebuild); "
        "1M chunks: python -m bench scale_1m",
        BUFFERS_NOTE,
    ]
    return [table]
