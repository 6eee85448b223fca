"""The keyword side ranks a bounded pool, and the vector side's hnsw.ef_search is set per
question: against the ingested docs, in real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from psycopg import pq
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import autocommit_scope, make_async_engine
from app.rag.embedder import Embedder
from app.rag.retrieve import COMMON_SHARE, EF_SEARCH, hybrid_search, keyword_search
from ingest.pipeline import IngestReport

T = TypeVar("T")

# The keyword side before it was bounded: every chunk holding any lexeme, ranked.
UNBOUNDED = """
    SELECT id FROM chunks,
         (SELECT replace(plainto_tsquery('english', :query)::text, ' & ', ' | ')::tsquery
          AS query) AS terms
    WHERE tsv @@ query
    ORDER BY ts_rank('{0.1, 0.2, 0.4, 0.2}', tsv, query, 1) DESC, id
    LIMIT :candidates
"""


def in_session(db_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def go() -> T:
        engine = make_async_engine(db_url)
        try:
            async with async_sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def search(
    session: AsyncSession, embedder: Embedder, question: str, *, ef_search: int = EF_SEARCH
) -> None:
    """The app's hybrid search for `question` with the docs' usual retrieval values."""
    await hybrid_search(
        session,
        query=question,
        embedding=embedder.embed_one(question),
        top_k=5,
        candidates=40,
        min_similarity=0.25,
        rrf_k=60,
        ef_search=ef_search,
    )


def keywords(db_url: str, query: str, *, pool: int, candidates: int = 40) -> list[int]:
    return in_session(
        db_url, lambda s: keyword_search(s, query=query, candidates=candidates, pool=pool)
    )


def test_a_corpus_whose_matches_fit_the_pool_is_ranked_in_full(
    db_url: str, db_engine: Engine, corpus: IngestReport
) -> None:
    """Bounding changes nothing on a corpus the pool holds: same ids, same order as
    ranking every match."""
    question = "How do I roll back a release when the migration failed?"
    with db_engine.connect() as conn:
        matches = conn.execute(text(UNBOUNDED), {"query": question, "candidates": 10_000}).scalars()
        expected = list(matches)
    assert len(expected) > 40, "the question must match more chunks than it keeps"
    assert keywords(db_url, question, pool=len(expected)) == expected[:40]


def test_the_keyword_side_ranks_at_most_the_pool(db_url: str, corpus: IngestReport) -> None:
    question = "How do I roll back a release when the migration failed?"
    assert len(keywords(db_url, question, pool=1000)) == 40
    assert len(keywords(db_url, question, pool=3)) == 3


def test_a_rare_word_is_found_however_many_chunks_share_a_common_one(
    db_url: str, db_engine: Engine, corpus: IngestReport
) -> None:
    """A full pool does not crowd out the one chunk holding a selective word: chunks with
    a word in at most COMMON_SHARE of them come before the scan of every match."""
    pool = 3
    with db_engine.begin() as conn:
        common, share = conn.execute(  # as the ingest's ANALYZE found them (migration 0024)
            text(
                "SELECT word, share FROM common_lexemes "
                "WHERE tsvector_to_array(to_tsvector('english', word)) = ARRAY[word] "
                "ORDER BY share DESC, word LIMIT 1"
            )
        ).one()
        rare, rare_id = conn.execute(
            text(
                "SELECT s.word, c.id FROM ts_stat('SELECT tsv FROM chunks') AS s "
                "JOIN chunks c ON c.tsv @@ s.word::tsquery "
                "WHERE s.ndoc = 1 AND s.word ~ '^[a-z]{6,}$' "
                "AND tsvector_to_array(to_tsvector('english', s.word)) = ARRAY[s.word] "
                "ORDER BY c.id DESC, s.word LIMIT 1"
            )
        ).one()
        scanned = conn.execute(
            text("SELECT id FROM chunks WHERE tsv @@ to_tsquery(:q) LIMIT :pool"),
            {"q": f"{common} | {rare}", "pool": pool},
        ).scalars()
        assert rare_id not in list(scanned), "the rare chunk must lie past the pool in a scan"
    assert share > COMMON_SHARE
    assert rare_id in keywords(db_url, f"{common} {rare}", pool=pool)


def test_each_question_sets_ef_search_for_its_transaction(
    db_url: str, embedder: Embedder, corpus: IngestReport
) -> None:
    """The HNSW scan keeps the setting's candidates, and seq scans start at the table's
    first page (the third tier's pool is the same each time); the next transaction is back
    to the server's defaults."""
    question = "What happens if ingest is interrupted halfway?"
    settings = (
        "SELECT current_setting('hnsw.ef_search') || ' ' || current_setting('synchronize_seqscans')"
    )

    async def work(session: AsyncSession) -> tuple[str, str]:
        await search(session, embedder, question, ef_search=123)
        during = (await session.execute(text(settings))).scalar_one()
        await session.commit()
        after = (await session.execute(text(settings))).scalar_one()
        return during, after

    assert in_session(db_url, work) == ("123 off", "40 on")


def test_the_chunks_hnsw_index_is_built_with_ef_construction_128(db_engine: Engine) -> None:
    """Migration 0021: recall@10 at ef_search 200 went from 0.907–0.977 (pgvector's default
    64, one build to the next) to 0.990 at 100k chunks (docs/retrieval.md)."""
    sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_chunks_embedding_hnsw'"
    with db_engine.connect() as conn:
        definition = conn.execute(text(sql)).scalar_one()
    assert "USING hnsw" in definition
    assert "ef_construction='128'" in definition.replace(" ", "")


def test_the_common_lexemes_are_read_once_per_question(
    db_url: str, embedder: Embedder, corpus: IngestReport
) -> None:
    """ragship_common_lexemes (migration 0020) runs once per statement, not once per word
    of the question: called per row, a seven-word question paid for seven reads of
    pg_stats. Counted by PostgreSQL's own function statistics for this transaction."""
    question = "How do replicas share rate limits, budgets and cached answers safely?"
    calls = (
        "SELECT pg_stat_get_xact_function_calls("
        "'ragship_common_lexemes(double precision)'::regprocedure)"
    )

    async def work(session: AsyncSession) -> tuple[int, int]:
        await session.execute(text("SET LOCAL track_functions = 'pl'"))
        lexemes = (
            await session.execute(
                text("SELECT length(to_tsvector('english', :q))"), {"q": question}
            )
        ).scalar_one()
        await search(session, embedder, question)
        return lexemes, (await session.execute(text(calls))).scalar_one()

    lexemes, called = in_session(db_url, work)
    assert lexemes >= 5, "the question must have several lexemes"
    assert called == 1


def test_in_autocommit_a_question_is_one_round_trip_and_its_settings_end_with_it(
    db_url: str, embedder: Embedder, corpus: IngestReport, tmp_path: Path
) -> None:
    """In an autocommit session (the chat path's), `hybrid_search` writes its settings and
    the search before PostgreSQL's first answer (libpq traces each message as it goes out:
    F from the client, B from the server) and sends nothing after it: one round trip. The
    two are one implicit transaction, so the settings apply to the search and are gone for
    the session's next statement. Sent one at a time in BEGIN and COMMIT, as before, they
    took four round trips, each holding the pooled connection through a turn of the loop."""
    question = "How do I roll back a release when the migration failed?"
    trace = tmp_path / "libpq.trace"
    embedding = embedder.embed_one(question)
    settings = "SELECT current_setting('hnsw.ef_search')"

    async def work() -> tuple[int, str, str]:
        engine = make_async_engine(db_url)
        try:
            async with autocommit_scope(async_sessionmaker(engine)) as session:
                connection = await session.connection()
                raw = (await connection.get_raw_connection()).driver_connection
                with trace.open("w") as sink:
                    raw.pgconn.trace(sink.fileno())
                    raw.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
                    try:
                        found = await hybrid_search(
                            session,
                            query=question,
                            embedding=embedding,
                            top_k=5,
                            candidates=40,
                            min_similarity=0.25,
                            rrf_k=60,
                            ef_search=123,
                        )
                    finally:
                        raw.pgconn.untrace()
                after = (await session.execute(text(settings))).scalar_one()
                return len(found), raw.info.transaction_status.name, after
        finally:
            await engine.dispose()

    found, status, after = asyncio.run(work())
    assert found > 0
    assert (status, after) == ("IDLE", "40")
    traced = trace.read_text()
    sent, answered = traced.split("\nB\t", 1)  # what went out before the server's first answer
    assert "set_config" in sent and "ragship_common_lexemes" in sent  # the search
    assert sent.count("\tSync") == 1, sent[-200:]  # one implicit transaction
    assert "BEGIN" not in traced and "COMMIT" not in traced
    assert not any(line.startswith("F") for line in answered.splitlines()), "a second round trip"
