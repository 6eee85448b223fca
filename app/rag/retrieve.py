"""Hybrid retrieval: pgvector cosine similarity and PostgreSQL full text, fused by reciprocal rank.

The keyword side matches chunks holding *any* of the question's lexemes (the question's
`plainto_tsquery` with its ANDs turned into ORs), so a question phrased as a sentence
still gets keyword candidates; chunks are ranked by `ts_rank`, where a lexeme in the
title or heading path (weight A) counts twice one in the text (weight D). Not more: every
chunk of a page shares its title, so a heavier title ranks all of a page's sections above
the one section whose text answers (measured in docs/retrieval.md).

Every value is a bound parameter. A passage must also clear a minimum cosine similarity,
so an out-of-scope question retrieves nothing rather than the least-bad chunk. On a large
corpus some chunk clears a low minimum by chance (a question about banana bread meets the
tutorial's list of fruits), so a question may also have to pass a relevance gate: it
retrieves passages only when a candidate is confidently similar, or similar enough and
holds a good share of the question's keywords (`Relevance`; measured in docs/retrieval.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from sqlalchemy import TextClause
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import pipelined
from app.rag.corpus_fit import CorpusFit
from app.rag.search_sql import HYBRID_SQL, HYBRID_WHOLE_SQL, KEYWORD_SQL, PLAN_SQL
from app.settings import Settings

# A lexeme in more than this share of the chunks is common, and the keyword side's second
# tier leaves it out (search_sql.py): a word in one chunk of twenty says little about which
# passage answers (inverse document frequency).
COMMON_SHARE = 0.05

# Defaults of the settings RETRIEVAL_KEYWORD_POOL and RETRIEVAL_EF_SEARCH (docs/configuration.md).
KEYWORD_POOL = 500
EF_SEARCH = 200


def _plan_per_query(*, ef_search: int, generic: bool = False) -> tuple[TextClause, dict[str, str]]:
    """The statement that sets, for the rest of the transaction: pgvector's HNSW scan keeps
    `ef_search` candidates, how statements are planned, and that a seq scan starts at the
    table's first page. With synchronized scans (PostgreSQL's default, for a table over a
    quarter of shared_buffers) the third tier's "scan order" began where the last scan
    stopped, so the same question ranked a different pool each time: all 100 of `bench
    scale`'s 100k questions did, twice in a row. Sent in one round trip with the search that
    needs it (`pipelined`).

    The tiers are planned with their bound values (`force_custom_plan`): a generic plan of
    the keyword side cannot tell a common OR, best scanned in order, from a rare one, best
    read from GIN. With ``generic`` (the whole-corpus statement, which has no such choice)
    the plan is made once per connection and reused (`force_generic_plan`; psycopg prepares
    a statement on its sixth run on a connection): no planning per search: 0.74 ms off a
    search at the median on the docs (`python -m bench retrieve_round_trips`, idle loop)."""
    mode = "force_generic_plan" if generic else "force_custom_plan"
    return PLAN_SQL, {"ef_search": str(ef_search), "plan_cache_mode": mode}


@dataclass(frozen=True)
class Relevance:
    """The relevance gate: a question retrieves passages only when at least one candidate
    that clears the minimum similarity also has a cosine similarity of `similarity` or
    more, or holds at least `keyword_share` (0..1) of the question's distinct lexemes in
    its title, heading path or text. Otherwise it retrieves nothing. `OFF` lets every
    question through, as a bare minimum similarity does."""

    similarity: float
    keyword_share: float

    OFF: ClassVar[Relevance]


Relevance.OFF = Relevance(similarity=-1.0, keyword_share=0.0)


async def keyword_search(
    session: AsyncSession, *, query: str, candidates: int, pool: int = KEYWORD_POOL
) -> list[int]:
    """Ids of the chunks the keyword side ranks for `query`, best first (at most
    `candidates`, ranked among at most `pool` matches); empty when the question has no
    lexeme (only stop words)."""
    params = {"query": query, "candidates": candidates, "pool": pool, "common_share": COMMON_SHARE}
    _, rows = await pipelined(
        session, [_plan_per_query(ef_search=EF_SEARCH), (KEYWORD_SQL, params)], commit=False
    )
    return [r[0] for r in rows or []]


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    document_id: int
    source: str
    title: str
    heading_path: str
    anchor: str
    text: str
    score: float
    similarity: float

    @property
    def url(self) -> str:
        return f"/sources/{self.document_id}#{self.anchor}"


Statement = tuple[TextClause, dict[str, Any]]
# A query embedding: its floats, or pgvector's text form of them already made (`vector_text`).
QueryVector = list[float] | str


def vector_text(embedding: QueryVector) -> str:
    """pgvector's text form of the embedding ("[0.1,0.2,...]"), as psycopg sends a value
    with no SQLAlchemy type. pgvector stores single-precision floats (its `vector_in` reads
    each with `strtof`), so each value is rounded to float32 and written with 9 significant
    digits, enough to read back the same float32 (C's FLT_DECIMAL_DIG): the vector the
    server gets is the one `pgvector.Vector(...).to_text()` gave it. One format string for
    the whole vector: about 0.15 ms for 384 floats, against 0.6 ms for `to_text`'s
    shortest double repr of each (`python -m bench hotpath`). A caller that binds the
    same vector in two statements still makes it once and passes the text."""
    if isinstance(embedding, str):
        return embedding
    values = np.asarray(embedding, dtype=np.float32)
    return _vector_format(len(values)) % tuple(values.tolist())


@lru_cache(maxsize=4)
def _vector_format(dimensions: int) -> str:
    return "[" + ",".join(["%.9g"] * dimensions) + "]"


def search_statements(
    *,
    query: str,
    embedding: QueryVector,
    top_k: int,
    candidates: int,
    min_similarity: float,
    rrf_k: int,
    relevance: Relevance = Relevance.OFF,
    pool: int = KEYWORD_POOL,
    ef_search: int = EF_SEARCH,
    whole_corpus: bool = False,
) -> list[Statement]:
    """The hybrid search as statements for `pipelined`: the transaction's settings, then the
    search, whose rows `passages_of` reads. For a caller that sends other statements in
    the same round trip (app/prepare.py: the response cache's lookup); `hybrid_search`
    sends them alone. Arguments as `hybrid_search`'s; `whole_corpus` (only for a corpus
    of at most `pool` chunks, `CorpusFit`) ranks every keyword match in one scan, which
    for such a corpus gives the same passages as the bounded tiers."""
    params: dict[str, Any] = {
        "embedding": vector_text(embedding),  # psycopg gets the values as they are
        "query": query,
        "candidates": max(candidates, top_k),
        "min_similarity": min_similarity,
        "rrf_k": rrf_k,
        "top_k": top_k,
        "confident_similarity": relevance.similarity,
        "keyword_share": relevance.keyword_share,
        "pool": pool,
        "common_share": COMMON_SHARE,
    }
    plan, values = _plan_per_query(
        ef_search=max(ef_search, candidates, top_k), generic=whole_corpus
    )
    return [(plan, dict(values)), (HYBRID_WHOLE_SQL if whole_corpus else HYBRID_SQL, params)]


def passages_of(rows: list[tuple[Any, ...]] | None) -> list[Passage]:
    """The search statement's rows (the last of `search_statements`) as passages."""
    return [
        Passage(
            chunk_id=chunk_id,
            document_id=document_id,
            source=source,
            title=title,
            heading_path=heading_path,
            anchor=anchor,
            text=passage,
            score=float(score),
            similarity=float(similarity),
        )
        for (chunk_id, document_id, source, title, heading_path, anchor, passage, score,
             similarity) in rows or []
    ]  # fmt: skip


async def hybrid_search(
    session: AsyncSession,
    *,
    query: str,
    embedding: list[float],
    top_k: int,
    candidates: int,
    min_similarity: float,
    rrf_k: int,
    relevance: Relevance = Relevance.OFF,
    pool: int = KEYWORD_POOL,
    ef_search: int = EF_SEARCH,
) -> list[Passage]:
    """The `top_k` best passages for the question, best first (RRF of the vector and the
    keyword side, each `candidates` long), each with a cosine similarity of at least
    `min_similarity`; empty when none clears it or the question fails the `relevance` gate
    (an empty list means: nothing in the corpus is relevant, so do not ask the model).
    The keyword side ranks at most `pool` matches; the vector side's HNSW scan keeps
    `ef_search` candidates (pgvector's hnsw.ef_search, for the rest of the transaction).

    The transaction's settings and the search leave in one round trip (`pipelined`). In
    autocommit (`autocommit_scope`; the chat path's `autocommit_connection`) that is all: the two
    statements, up to the pipeline's one Sync, are one implicit transaction, which the
    settings last for. Sent one at a time inside BEGIN and COMMIT, as before, they were
    four round trips, each holding the pooled connection through a turn of a busy event
    loop (issue 17). Raises sqlalchemy.exc.DBAPIError as any statement does."""
    statements = search_statements(
        query=query,
        embedding=embedding,
        top_k=top_k,
        candidates=candidates,
        min_similarity=min_similarity,
        rrf_k=rrf_k,
        relevance=relevance,
        pool=pool,
        ef_search=ef_search,
    )
    _, rows = await pipelined(session, statements, commit=False)
    return passages_of(rows)


def configured_statements(
    settings: Settings, *, query: str, embedding: QueryVector, fit: CorpusFit | None = None
) -> list[Statement]:
    """`search_statements` with the retrieval settings (RETRIEVAL_*, RRF_K, RELEVANCE_*).
    With `fit`, its check comes first when one is due (`CorpusFit.check`; `CorpusFit.sent`
    says whether it did, and its rows go to `fit.saw`), and the search ranks the whole
    corpus when the last check saw it fit in the pool; the search stays last."""
    checking = fit.check(settings.retrieval_keyword_pool) if fit is not None else []
    return checking + search_statements(
        query=query,
        embedding=embedding,
        top_k=settings.retrieval_top_k,
        candidates=settings.retrieval_candidates,
        min_similarity=settings.retrieval_min_similarity,
        rrf_k=settings.rrf_k,
        pool=settings.retrieval_keyword_pool,
        ef_search=settings.retrieval_ef_search,
        relevance=Relevance(settings.relevance_similarity, settings.relevance_keyword_share),
        whole_corpus=fit is not None and fit.fits,
    )


async def configured_search(
    session: AsyncSession,
    settings: Settings,
    *,
    query: str,
    embedding: list[float],
    fit: CorpusFit | None = None,
) -> list[Passage]:
    """`hybrid_search` with the retrieval settings (RETRIEVAL_*, RRF_K, RELEVANCE_*): the
    chat path's search (with the worker's `fit`, `Services.corpus_fit`), which the
    benchmarks time as it is."""
    statements = configured_statements(settings, query=query, embedding=embedding, fit=fit)
    results = await pipelined(session, statements, commit=False)
    if fit is not None and fit.sent(statements):
        fit.saw(results[0])
    return passages_of(results[-1])
