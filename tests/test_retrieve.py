"""Hybrid retrieval against the ingested docs: relevance, thresholds, and bound parameters."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db import make_async_engine
from app.rag.embedder import Embedder
from app.rag.retrieve import Passage, hybrid_search, keyword_search
from ingest.pipeline import IngestReport
from tests.conftest import scalar


def search(db_url: str, embedder: Embedder, query: str, **options: float) -> list[Passage]:
    async def go() -> list[Passage]:
        engine = make_async_engine(db_url)
        try:
            async with async_sessionmaker(engine)() as session:
                params = {
                    "top_k": 5,
                    "candidates": 40,
                    "min_similarity": 0.25,
                    "rrf_k": 60,
                    **options,
                }
                return await hybrid_search(
                    session, query=query, embedding=embedder.embed_one(query), **params
                )  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_relevant_section_ranks_first(
    db_url: str, embedder: Embedder, corpus: IngestReport
) -> None:
    top = search(db_url, embedder, "What happens if ingest is interrupted halfway?")
    assert top[0].source == "docs/ingest.md" and "interrupt" in top[0].heading_path.lower()


def test_paraphrase_without_shared_words_still_finds_it(
    db_url: str, embedder: Embedder, corpus: IngestReport
) -> None:
    top = search(db_url, embedder, "splitting texts into pieces before vectorising")
    assert any(p.anchor == "chunking" for p in top[:3])


def test_out_of_scope_returns_nothing(
    db_url: str, embedder: Embedder, corpus: IngestReport
) -> None:
    assert search(db_url, embedder, "best recipe for banana bread") == []


def test_top_k_and_threshold_are_honoured(
    db_url: str, embedder: Embedder, corpus: IngestReport
) -> None:
    assert len(search(db_url, embedder, "ingest documents", top_k=2)) == 2
    assert search(db_url, embedder, "ingest documents", min_similarity=0.99) == []


def test_hostile_query_text_is_only_data(
    db_url: str, embedder: Embedder, db_engine: Engine, corpus: IngestReport
) -> None:
    search(db_url, embedder, "'); DROP TABLE chunks; -- & | ! :* <->")
    assert scalar(db_engine, "SELECT count(*) FROM chunks") == corpus.chunks


def test_a_sentence_shaped_question_gets_keyword_candidates(
    db_url: str, corpus: IngestReport
) -> None:
    """Words of the question that no chunk holds (and an AND of all of them would need)
    must not empty the keyword side: any lexeme the corpus holds brings its chunks."""

    async def go(query: str) -> list[int]:
        engine = make_async_engine(db_url)
        try:
            async with async_sessionmaker(engine)() as session:
                return await keyword_search(session, query=query, candidates=40)
        finally:
            await engine.dispose()

    question = "Could you please tell me how the quokka-loving team configures pgvector nowadays?"
    found = asyncio.run(go(question))
    assert found, "a question phrased as a sentence got no keyword candidates"
    assert asyncio.run(go("the and of")) == []
