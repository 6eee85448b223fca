"""Hybrid retrieval against the ingested docs: relevance, thresholds, and bound parameters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db import make_async_engine, make_sync_engine
from app.rag.embedder import Embedder
from app.rag.retrieve import Passage, Relevance, hybrid_search, keyword_search
from app.settings import Settings
from ingest.pipeline import IngestReport, ingest_paths
from tests.conftest import scalar

DEFAULTS = Settings(_env_file=None)
SHIPPED = Relevance(DEFAULTS.relevance_similarity, DEFAULTS.relevance_keyword_share)


def search(
    db_url: str, embedder: Embedder, query: str, **options: float | Relevance
) -> list[Passage]:
    async def go() -> list[Passage]:
        engine = make_async_engine(db_url)
        try:
            async with async_sessionmaker(engine)() as session:
                params = {
                    "top_k": 5,
                    "candidates": 40,
                    "min_similarity": 0.25,
                    "rrf_k": 60,
                    "relevance": SHIPPED,
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


# A tutorial section whose example lists fruits: a question about fruit meets it by chance.
LISTS = """# Data structures

## More on lists

The list data type has some more methods. Here are all of the methods of list objects:
append, extend, insert, remove, pop, clear, index, count, sort, reverse and copy.

An example that uses most of the list methods:

```
>>> fruits = ['orange', 'apple', 'pear', 'banana', 'kiwi', 'apple', 'banana']
>>> fruits.count('apple')
2
>>> fruits.index('banana')
3
```
"""
BY_CHANCE = "Which fruits go into a smoothie?"  # similarity 0.31, one word in three in the text


def _one_page_db(
    new_database: Callable[[], str], embedder: Embedder, folder: Path, name: str, page: str
) -> str:
    """A fresh database holding only `page`, ingested as `name`.md; returns its URL."""
    (folder / f"{name}.md").write_text(page)
    url = new_database()
    engine = make_sync_engine(url)
    try:
        ingest_paths([folder], engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=40)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="module")
def lists_db(new_database: Callable[[], str], embedder: Embedder, tmp_path_factory: Path) -> str:
    folder = tmp_path_factory.mktemp("lists")  # type: ignore[attr-defined]
    return _one_page_db(new_database, embedder, folder, "lists", LISTS)


def test_a_chance_match_clears_the_minimum_but_not_the_relevance_gate(
    lists_db: str, embedder: Embedder
) -> None:
    """The fruit list is similar enough to clear RETRIEVAL_MIN_SIMILARITY, but neither
    confidently similar nor holding the question's words: with the gate, nothing."""
    ungated = search(lists_db, embedder, BY_CHANCE, relevance=Relevance.OFF)
    assert [p.anchor for p in ungated] == ["more-on-lists"]
    assert DEFAULTS.retrieval_min_similarity <= ungated[0].similarity < SHIPPED.similarity
    assert search(lists_db, embedder, BY_CHANCE) == []


def test_keywords_let_a_weakly_similar_passage_through_the_gate(
    lists_db: str, embedder: Embedder
) -> None:
    """Only the keyword route open (no similarity is confident enough): a question whose
    words the passage holds gets it, one whose words it mostly lacks gets nothing."""
    keywords_only = Relevance(similarity=1.0, keyword_share=DEFAULTS.relevance_keyword_share)
    question = "How do I count the apples in a list of fruits?"  # count, apple, list, fruit
    found = search(lists_db, embedder, question, relevance=keywords_only)
    assert [p.anchor for p in found] == ["more-on-lists"]
    assert search(lists_db, embedder, BY_CHANCE, relevance=keywords_only) == []


# A page with a section that answers the question below and one that only clears the
# minimum similarity (0.31 on its own: below the gate's 0.32, none of the question's words).
RELEASES = """# Project notes

## Rolling back a release

To roll back a release, deploy the previous image tag again: `make deploy TARGET=fly
IMAGE=ragship:previous`. The database stays at its migration; roll back a migration with
`alembic downgrade -1` first if the release added one.

## Changelog

Each version lists what changed: new settings, removed settings and fixes. Read it before
you upgrade.
"""


@pytest.fixture(scope="module")
def releases_db(new_database: Callable[[], str], embedder: Embedder, tmp_path_factory: Path) -> str:
    folder = tmp_path_factory.mktemp("releases")  # type: ignore[attr-defined]
    return _one_page_db(new_database, embedder, folder, "releases", RELEASES)


def test_the_gate_keeps_every_passage_of_a_relevant_question(
    releases_db: str, embedder: Embedder
) -> None:
    """The gate judges the question, not each passage: once one passage passes it, the
    others that clear the minimum similarity come along, however weak on their own."""
    question = "How do I roll back a release?"
    gated = search(releases_db, embedder, question)
    assert [p.anchor for p in gated] == ["rolling-back-a-release", "changelog"]
    assert gated == search(releases_db, embedder, question, relevance=Relevance.OFF)
    weak = [p for p in gated if p.similarity < SHIPPED.similarity]
    assert weak, "the question needs a passage that would fail the gate on its own"


def test_chunk_tsvectors_are_kept_in_the_row(db_engine: Engine) -> None:
    """Migration 0025: the keyword side reads every scanned chunk's tsvector, so it is
    stored MAIN (in the row when it fits), not EXTENDED (moved out to TOAST first)."""
    storage = scalar(
        db_engine,
        "SELECT attstorage FROM pg_attribute "
        "WHERE attrelid = 'chunks'::regclass AND attname = 'tsv'",
    )
    assert storage == "m"
